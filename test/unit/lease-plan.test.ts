// The fleet's spread (src/coordination/lease-plan.ts) against random fleets: processes join, stop
// (SIGTERM) and die, each takes the plan's decisions in turn with the view of that moment, and the
// lease table is a plain Map. Checked: a pipeline never has two owners; once the fleet is quiet,
// the spread is even (⌈P/N⌉ at most, ⌊P/N⌋ at least, within caps) and another round moves nothing.
// Replay: the seed is in every failure message.
import { describe, expect, it } from 'vitest';
import {
  fleetTargets,
  type PlanLease,
  type PlanProcess,
  planLeases,
} from '../../src/coordination/lease-plan.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

const TTL = 1_000;

function runSeed(seed: number): void {
  const random = mulberry32(seed);
  const int = (below: number) => Math.floor(random() * below);
  const pipelineCount = 1 + int(9);
  const pipelines = Array.from({ length: pipelineCount }, (_, index) => `p${index}`);
  const owners = new Map<string, string | null>(pipelines.map((pipeline) => [pipeline, null]));
  let processes: PlanProcess[] = [];
  let nextId = 0;
  const where = (step: number, what: string) => `seed ${seed}, step ${step}: ${what}`;

  const leases = (): PlanLease[] =>
    pipelines.map((pipeline) => ({
      pipeline,
      owner: owners.get(pipeline) ?? null,
      expiresInMs: owners.get(pipeline) === null ? -1 : TTL,
    }));
  const heldBy = (id: string) => new Set(pipelines.filter((pipeline) => owners.get(pipeline) === id));
  const round = () => {
    let moved = 0;
    for (const process of [...processes]) {
      const plan = planLeases({
        me: process.id,
        processes,
        leases: leases(),
        held: heldBy(process.id),
        ttlMs: TTL,
      });
      for (const pipeline of plan.release) {
        owners.set(pipeline, null);
        moved += 1;
      }
      for (const pipeline of plan.acquire) {
        // The database grants a free lease only.
        if (owners.get(pipeline) !== null) continue;
        owners.set(pipeline, process.id);
        moved += 1;
      }
    }
    return moved;
  };

  for (let step = 0; step < 40; step++) {
    const roll = random();
    if (roll < 0.4 || processes.length === 0) {
      processes.push({
        id: `proc-${String(nextId++).padStart(3, '0')}`,
        maxPipelines: random() < 0.2 ? 1 + int(3) : 1_000,
        stopping: false,
      });
    } else if (roll < 0.55) {
      const victim = processes[int(processes.length)]!;
      victim.stopping = true; // SIGTERM: it hands over, then leaves
    } else if (roll < 0.7) {
      const dead = processes[int(processes.length)]!;
      processes = processes.filter((process) => process !== dead);
      for (const pipeline of pipelines) if (owners.get(pipeline) === dead.id) owners.set(pipeline, null); // expired
    }
    // A few rounds, as the processes' looks interleave.
    for (let i = 0; i < 1 + int(3); i++) round();
    processes = processes.filter((process) => !(process.stopping && heldBy(process.id).size === 0));
  }
  // Quiet: the fleet settles, then stays put.
  for (let i = 0; i < 10 && round() > 0; i++);
  expect(round(), where(99, 'a settled fleet moves nothing more')).toBe(0);
  const takers = processes.filter((process) => !process.stopping);
  const capacity = takers.reduce((sum, process) => sum + process.maxPipelines, 0);
  const owned = pipelines.filter((pipeline) => owners.get(pipeline) !== null).length;
  expect(owned, where(99, 'every pipeline owned (within the caps)')).toBe(Math.min(pipelineCount, capacity));
  const counts = takers.map((process) => heldBy(process.id).size);
  const uncapped = takers.filter((process) => process.maxPipelines >= pipelineCount);
  if (uncapped.length === takers.length && takers.length > 0) {
    expect(Math.max(...counts), where(99, 'at most ⌈P/N⌉')).toBeLessThanOrEqual(
      Math.ceil(pipelineCount / takers.length),
    );
    expect(Math.min(...counts), where(99, 'at least ⌊P/N⌋')).toBeGreaterThanOrEqual(
      Math.floor(pipelineCount / takers.length),
    );
  }
  for (const process of takers) {
    expect(heldBy(process.id).size, where(99, `${process.id} within its cap`)).toBeLessThanOrEqual(
      process.maxPipelines,
    );
  }
}

describe('the fleet spread', () => {
  it('deals 4 pipelines over 3 processes as 2/1/1, current owners first', () => {
    const processes = ['a', 'b', 'c'].map((id) => ({ id, maxPipelines: 10, stopping: false }));
    expect([...fleetTargets(processes, 4).values()]).toEqual([2, 1, 1]);
    // c owns two already: it keeps them, a and b get one each.
    expect(fleetTargets(processes, 4, new Map([['c', 2]])).get('c')).toBe(2);
    // A stopping process gets nothing; a capped one no more than its cap.
    processes[0]!.stopping = true;
    processes[1]!.maxPipelines = 1;
    expect(Object.fromEntries(fleetTargets(processes, 4))).toEqual({ a: 0, b: 1, c: 3 });
  });

  it('hands over only what another process waits for', () => {
    const processes = [
      { id: 'a', maxPipelines: 10, stopping: false },
      { id: 'b', maxPipelines: 0, stopping: false },
    ];
    const leases = ['p1', 'p2'].map((pipeline) => ({ pipeline, owner: 'a', expiresInMs: 500 }));
    const plan = planLeases({ me: 'a', processes, leases, held: new Set(['p1', 'p2']), ttlMs: TTL });
    expect(plan.release).toEqual([]);
  });

  for (const seed of Array.from({ length: 200 }, (_, index) => 7_000 + index)) {
    it(`random fleets settle evenly and stay put (seed ${seed})`, () => runSeed(seed));
  }
});
