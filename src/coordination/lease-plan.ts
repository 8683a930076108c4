// How pipelines spread over the fleet, as a pure function of what one look at the lease table
// shows (no I/O; test/unit/lease-plan.test.ts). Every process computes the same targets from the
// same view — pipelines dealt round-robin to the live processes, those owning most first (ties by
// id), skipping a process at its STRATA_MAX_PIPELINES cap — so the fleet converges without
// talking: each process hands over what it holds beyond its target and takes free leases up to
// it. With P pipelines and N processes, nobody's target exceeds ⌈P/N⌉ while another's is below
// ⌊P/N⌋; dealing to the current owners first moves no pipeline that need not move (after a
// takeover, the pipeline stays where it went).

/** A live process as the plan sees it. */
export interface PlanProcess {
  id: string;
  maxPipelines: number;
  /** Handing its pipelines over (SIGTERM): its target is 0. */
  stopping: boolean;
}

/** A lease as the plan sees it. */
export interface PlanLease {
  pipeline: string;
  /** Null: released. */
  owner: string | null;
  /** Milliseconds until it expires, database time (negative: expired). */
  expiresInMs: number;
}

export interface LeasePlanInput {
  me: string;
  processes: readonly PlanProcess[];
  leases: readonly PlanLease[];
  /** Pipelines this process holds now. */
  held: ReadonlySet<string>;
  ttlMs: number;
}

export interface LeasePlan {
  /** How many pipelines each live process should own. */
  targets: ReadonlyMap<string, number>;
  /** Free leases to try to acquire, in order. */
  acquire: string[];
  /** Held pipelines to hand over. */
  release: string[];
}

/**
 * Targets: the pipelines dealt one at a time to the processes — those owning most first, then by
 * id — within their caps.
 */
export function fleetTargets(
  processes: readonly PlanProcess[],
  pipelineCount: number,
  owned: ReadonlyMap<string, number> = new Map(),
): Map<string, number> {
  const ordered = [...processes].sort(
    (a, b) => (owned.get(b.id) ?? 0) - (owned.get(a.id) ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  const targets = new Map<string, number>(ordered.map((process) => [process.id, 0]));
  const takers = ordered.filter((process) => !process.stopping);
  let left = pipelineCount;
  while (left > 0) {
    let dealt = false;
    for (const process of takers) {
      if (left === 0) break;
      const target = targets.get(process.id)!;
      if (target >= process.maxPipelines) continue;
      targets.set(process.id, target + 1);
      left -= 1;
      dealt = true;
    }
    if (!dealt) break; // every cap reached: the rest stay unowned (the fleet status shows them)
  }
  return targets;
}

export function planLeases(input: LeasePlanInput): LeasePlan {
  const { me, leases, held, ttlMs } = input;
  const processes = input.processes.some((process) => process.id === me)
    ? input.processes
    : [...input.processes, { id: me, maxPipelines: 0, stopping: true }];
  const live = new Set(processes.map((process) => process.id));
  const isFree = (lease: PlanLease) =>
    lease.owner === null || lease.expiresInMs < 0 || !live.has(lease.owner);
  const ownedBy = new Map<string, number>();
  for (const lease of leases) {
    if (lease.owner !== null && !isFree(lease)) ownedBy.set(lease.owner, (ownedBy.get(lease.owner) ?? 0) + 1);
  }
  const targets = fleetTargets(processes, leases.length, ownedBy);
  const mine = targets.get(me) ?? 0;
  const self = processes.find((process) => process.id === me)!;

  // Free for longer than a TTL: no process's target took it (their views differed, or caps):
  // anyone with room takes it rather than leave it unowned.
  const isAbandoned = (lease: PlanLease) => lease.expiresInMs < -ttlMs;

  const acquire: string[] = [];
  let owned = held.size;
  for (const lease of leases) {
    if (held.has(lease.pipeline) || !isFree(lease)) continue;
    if (owned < mine || (isAbandoned(lease) && owned < self.maxPipelines && !self.stopping)) {
      acquire.push(lease.pipeline);
      owned += 1;
    }
  }

  // Hand over only what another process is waiting to take: it is below its target.
  const waiting = [...targets].reduce(
    (sum, [id, target]) => (id === me ? sum : sum + Math.max(0, target - (ownedBy.get(id) ?? 0))),
    0,
  );
  const excess = Math.max(0, held.size - mine);
  const release = [...held]
    .sort()
    .reverse()
    .slice(0, self.stopping ? held.size : Math.min(excess, waiting));
  return { targets, acquire, release };
}
