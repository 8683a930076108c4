// Many processes on one Postgres and Redis (issue 15): real daemons as child processes running
// test/fixtures/fleet. Every pipeline is owned by one process at a time (lease table and each
// process's /status, sampled); blocks posted to any process reach the owner; a paused owner's
// late write is refused by the epoch fence; kills, SIGTERM handovers and new processes move
// pipelines around and the tables always end equal to the plain fold of what was posted.
// Replay: each test's seed is in its name and in every fold failure.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';
import { Shape, ShapeStream } from '@electric-sql/client';
import { afterEach, describe, expect, it } from 'vitest';
import type { StatusSnapshot } from '../../src/status-types.ts';
import { fixtureProject, getJson, statusRecorder, waitFor } from '../helpers/daemon-process.ts';
import { useTestDatabase } from '../helpers/database.ts';
import {
  expectSingleOwners,
  FLEET_TTL_MS,
  FleetChains,
  heldBy,
  keepPosting,
  LOAD_SLACK_MS,
  launchMember,
  leaseTable,
  type Member,
  metricTotal,
  ownerNow,
  startMember,
  stopMembers,
} from '../helpers/fleet.ts';

const db = useTestDatabase('strata_fleet');
const members: Member[] = [];
/** Random kills across the three processes: 8 in the suite; `npm run chaos:fleet` runs 20. */
const KILLS = Number(process.env.STRATA_FLEET_KILLS ?? 8);
const names = (count: number) => Array.from({ length: count }, (_, index) => `m${index + 1}`);

afterEach(async () => {
  await stopMembers(members.splice(0));
  // Each test starts from empty tables: the next one's fold starts at block 1.
  await db.query(`DELETE FROM strata.pipeline_leases`);
  await db.query(`DELETE FROM strata.fleet_processes`);
  await db.query(`DELETE FROM strata.ingest_blocks`);
  for (const pipeline of names(4)) {
    await db.query(`DROP SCHEMA IF EXISTS pipeline_${pipeline} CASCADE`);
    await db.query('DELETE FROM strata.pipelines WHERE name = $1', [pipeline]);
  }
});

/** Waits until every lease is live and held by one of `members`, in the given counts. */
async function converged(counts: (held: number[]) => boolean, timeoutMs: number, what: string) {
  return waitFor(
    async () => Promise.all(members.map(async (member) => (await heldBy(member))?.length ?? -1)),
    counts,
    timeoutMs,
    what,
  );
}

/** An owner of m1 (the first process), then a standby joining it (the one-pipeline tests). */
async function ownerAndStandby(
  ownerEnv: Record<string, string> = {},
  standbyEnv: Record<string, string> = {},
): Promise<[Member, Member]> {
  const owner = await startMember(db, 1, ownerEnv);
  members.push(owner);
  await converged(([a]) => a === 1, 20_000, 'the first process owning m1');
  const standby = await startMember(db, 1, standbyEnv);
  members.push(standby);
  return [owner, standby];
}

describe('a fleet of daemons on one database', () => {
  it('two then three processes share four pipelines, one owner each at every instant (seed 1501)', async () => {
    const seed = 1501;
    const chains = new FleetChains(names(4), seed);
    members.push(await startMember(db, 4));
    await converged(([a]) => a === 4, 20_000, 'the first process owning all four');
    members.push(await startMember(db, 4));
    const urls = () => members.map((member) => member.url);
    // Blocks flow through both processes while the second gets its share.
    const deadline = Date.now() + 3 * FLEET_TTL_MS;
    let sampled = 0;
    while (Date.now() < deadline || sampled < 10) {
      await chains.postSome(urls());
      await expectSingleOwners(db, members);
      sampled += 1;
    }
    await converged(([a, b]) => a === 2 && b === 2, 30_000, 'a 2/2 spread');
    members.push(await startMember(db, 4));
    const thirdJoinedAt = Date.now();
    const unownedSince = new Map<string, number>();
    let longestUnownedMs = 0;
    const third = Date.now() + 3 * FLEET_TTL_MS;
    while (Date.now() < third) {
      await chains.postSome(urls());
      await expectSingleOwners(db, members);
      for (const lease of await leaseTable(db)) {
        if (lease.live) unownedSince.delete(lease.pipeline);
        else if (!unownedSince.has(lease.pipeline)) unownedSince.set(lease.pipeline, Date.now());
        else longestUnownedMs = Math.max(longestUnownedMs, Date.now() - unownedSince.get(lease.pipeline)!);
      }
    }
    // Within 3 TTLs of the third process joining — plus 4 s for a handover (an actor stopping at
    // its batch boundary, the writer committing) on a machine busy with the rest of the suite.
    const spread = await converged(
      (held) => held.every((count) => count >= 1) && held.reduce((a, b) => a + b, 0) === 4,
      Math.max(0, thirdJoinedAt + 3 * FLEET_TTL_MS - Date.now()) + 4_000 + LOAD_SLACK_MS,
      'a 2/1/1 spread within 3 TTLs (+4 s, + the load slack)',
    );
    expect([...spread].sort()).toEqual([1, 1, 2]);
    expect(longestUnownedMs, 'no pipeline unowned longer than TTL + 2 s').toBeLessThanOrEqual(
      FLEET_TTL_MS + 2_000 + LOAD_SLACK_MS,
    );
    await chains.expectFolded(db);
    // Each process's /status names every process and every lease's owner (its view is its last
    // look's: wait for one after the spread settled).
    const ids = members.map((m) => m.id).sort();
    await waitFor(
      () => getJson<StatusSnapshot>(`${members[0]!.url}/status`),
      ({ body }) =>
        isDeepStrictEqual(body.fleet!.processes.map((process) => process.id).sort(), ids) &&
        body.fleet!.leases.every((lease) => lease.owner !== null && ids.includes(lease.owner)),
      5 * FLEET_TTL_MS,
      "the first process's /status naming every process and owner",
    );
  });

  it('a paused owner loses its pipeline; after SIGCONT its late write is refused by the epoch fence (seed 1502)', async () => {
    const seed = 1502;
    const chains = new FleetChains(['m1'], seed);
    // The owner's every write waits 800 ms first, so when it is paused a write is pending.
    const [owner, other] = await ownerAndStandby({ STRATA_TEST_FAULT: 'persistence:write-delay:800' });
    for (let i = 0; i < 10; i++) await chains.post(other.url, 'm1', 3);
    await waitFor(
      () => getJson<StatusSnapshot>(`${owner.url}/status`),
      ({ body }) => (body.pipelines[0]?.processedCheckpoint ?? 0) > 0,
      20_000,
      'the owner processing blocks posted to the other process',
    );
    await chains.post(other.url, 'm1', 3);
    // Paused with a write in flight (processed beyond what is committed; each write first waits
    // 800 ms), so that it is attempted after SIGCONT. Paused with none, the old owner may find its
    // lease gone first and step down without a write to refuse (seen under two CPU hogs).
    await waitFor(
      () => getJson<StatusSnapshot>(`${owner.url}/status`),
      ({ body }) => {
        const pipeline = body.pipelines[0];
        return pipeline !== undefined && pipeline.processedCheckpoint > pipeline.committedCheckpoint;
      },
      20_000,
      'a write in flight on the owner',
    );
    owner.daemon.kill('SIGSTOP');
    const pausedAt = Date.now();
    // Blocks keep arriving through the other process, which takes the pipeline over.
    const posting = keepPosting(chains, () => [other.url]);
    await waitFor(
      () => ownerNow(db, 'm1'),
      (owner) => owner === other.id,
      FLEET_TTL_MS + 20_000,
      'takeover',
    ).catch(async (error: Error) => {
      // Seen once in a CI run (not reproduced alone or under load): say what the standby saw.
      const lines = other.daemon.logs.slice(-30).map((line) => JSON.stringify(line));
      throw new Error(
        `${error.message}; leases: ${JSON.stringify(await leaseTable(db))}; standby's last logs:\n${lines.join('\n')}`,
      );
    });
    expect(Date.now() - pausedAt).toBeLessThanOrEqual(FLEET_TTL_MS + 2_000 + LOAD_SLACK_MS);
    await posting.stop();
    for (let i = 0; i < 5; i++) await chains.post(other.url, 'm1', 3);
    owner.daemon.kill('SIGCONT');
    // The old owner tried to write (its pending batch) and was refused; it stepped down, alive.
    await waitFor(
      () => metricTotal(owner, 'strata_lease_fenced_writes_total'),
      (refused) => refused >= 1,
      20_000,
      'a refused write on the old owner',
    );
    await waitFor(
      () => heldBy(owner),
      (held) => held !== null && held.length === 0,
      20_000,
      'the old owner stepping down',
    );
    expect(owner.daemon.child.exitCode).toBeNull();
    expect((await fetch(`${owner.url}/readyz`)).status).toBe(200);
    expect(owner.daemon.logs.some((line) => String(line.msg).startsWith('pipeline lease lost'))).toBe(true);
    for (let i = 0; i < 5; i++) await chains.post(owner.url, 'm1', 2); // ingest still works there
    await chains.expectFolded(db);
    const [lease] = await leaseTable(db);
    expect(lease!.owner).toBe(other.id);
    expect(lease!.epoch).toBe(2);
  });

  it('SIGTERM hands the pipeline over: the next owner resumes right after the last committed batch (seed 1503)', async () => {
    const seed = 1503;
    const chains = new FleetChains(['m1'], seed);
    const [first, second] = await ownerAndStandby();
    for (let i = 0; i < 20; i++) await chains.post(second.url, 'm1', 5);
    // `strata reset` refuses to drop a pipeline a live process writes, and drops nothing.
    const reset = spawnSync(
      process.execPath,
      ['bin/strata.mjs', 'reset', 'm1', '--project', fixtureProject('fleet'), '--database-url', db.url],
      {
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '', FLEET_PIPELINES: '1', STRATA_LOG_FORMAT: 'json' },
      },
    );
    expect(reset.status).not.toBe(0);
    expect(reset.stdout + reset.stderr).toContain('STRATA_ERR_PIPELINE_RUNNING');
    expect(await db.count('SELECT count(*) FROM strata.pipelines WHERE name = $1', ['m1'])).toBe(1);
    const stoppedAt = Date.now();
    first.daemon.kill('SIGTERM');
    expect((await first.daemon.exited).code).toBe(0);
    await waitFor(
      () => ownerNow(db, 'm1'),
      (owner) => owner === second.id,
      FLEET_TTL_MS + 20_000,
      'takeover',
    );
    // A handover, not an expiry.
    expect(Date.now() - stoppedAt).toBeLessThan(FLEET_TTL_MS + 2_000 + LOAD_SLACK_MS);
    const handedAt = first.daemon.logs.find((line) => line.msg === 'intake stopped');
    const resumed = await waitFor(
      async () =>
        second.daemon.logs.find(
          (line) => line.msg === 'pipeline resuming' || line.msg === 'pipeline starting from the first block',
        ),
      (line) => line !== undefined,
      20_000,
      'the second process resuming m1',
    );
    expect(handedAt, 'the owner stopped its intake').toBeDefined();
    // Nothing processed by the first process is processed again.
    expect(resumed!.resumeFrom).toBe((handedAt!.processedCheckpoint as number) + 1);
    expect(
      first.daemon.logs.some(
        (line) => line.msg === 'pipeline handed over (its writer committed what was processed)',
      ),
    ).toBe(true);
    for (let i = 0; i < 5; i++) await chains.post(second.url, 'm1', 3);
    await chains.expectFolded(db);
  });

  it(`kill -9 of the owner: another process takes over within TTL + 2 s; ${KILLS} random kills across three processes leave the fold (seed 1504)`, async () => {
    const seed = 1504;
    const pipelines = names(3);
    const chains = new FleetChains(pipelines, seed);
    for (let i = 0; i < 3; i++) members.push(await startMember(db, 3));
    await converged((held) => held.every((count) => count === 1), 30_000, 'a 1/1/1 spread');
    for (let i = 0; i < 5; i++) await chains.postSome(members.map((m) => m.url));
    // One kill, timed: the lease of a dead process is taken within TTL + 2 s.
    const victim = members[0]!;
    const [victimPipeline] = (await heldBy(victim))!;
    victim.daemon.kill('SIGKILL');
    const killedAt = Date.now();
    await victim.daemon.exited;
    const survivors = members.slice(1).map((member) => member.id);
    await waitFor(
      () => ownerNow(db, victimPipeline!),
      (owner) => owner !== null && survivors.includes(owner),
      FLEET_TTL_MS + 20_000,
      'takeover after kill -9',
    );
    expect(Date.now() - killedAt).toBeLessThanOrEqual(FLEET_TTL_MS + 2_000 + LOAD_SLACK_MS);
    members.shift();
    // Kills at random moments — a process listening or still starting — each restarted at
    // once, blocks flowing through the processes that answer.
    const slots = [
      launchMember(db, 3),
      ...members.map((member) => ({ daemon: member.daemon, ready: Promise.resolve(member) })),
    ];
    members.length = 0;
    const readyUrls = async () => {
      const settled = await Promise.all(
        slots.map((slot) => Promise.race([slot.ready.then((member) => member.url), Promise.resolve(null)])),
      );
      return settled.filter((url): url is string => url !== null);
    };
    let random = seed;
    const next = () => {
      random = (random * 1_103_515_245 + 12_345) % 2_147_483_648;
      return random / 2_147_483_648;
    };
    for (let kill = 0; kill < KILLS; kill++) {
      const until = Date.now() + 200 + next() * 800;
      while (Date.now() < until) {
        const urls = await readyUrls();
        if (urls.length > 0) await chains.postSome(urls);
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const index = Math.floor(next() * slots.length);
      slots[index]!.daemon.kill('SIGKILL');
      await slots[index]!.daemon.exited;
      slots[index] = launchMember(db, 3);
    }
    members.push(...(await Promise.all(slots.map((slot) => slot.ready))));
    for (let i = 0; i < 5; i++) await chains.postSome(members.map((m) => m.url));
    await chains.expectFolded(db, 120_000);
  }, 300_000);

  it('survives its database connections being terminated and its Redis stopping and coming back (seed 1505)', async () => {
    const seed = 1505;
    const chains = new FleetChains(names(2), seed);
    // A Redis of this test's own, so stopping it disturbs no other test.
    const port = 16_400 + Math.floor(Math.random() * 1_000);
    const startRedis = () =>
      spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        {
          stdio: 'ignore',
        },
      );
    let redis: ChildProcess = startRedis();
    try {
      const env = { REDIS_URL: `redis://127.0.0.1:${port}` };
      members.push(await startMember(db, 2, env), await startMember(db, 2, env));
      await converged(([a, b]) => a === 1 && b === 1, 30_000, 'a 1/1 spread');
      const epochs = (await leaseTable(db)).map((lease) => lease.epoch);
      const urls = members.map((member) => member.url);
      const flow = async (ms: number) => {
        const until = Date.now() + ms;
        while (Date.now() < until) await chains.postSome(urls);
      };
      await flow(500);
      for (let i = 0; i < 3; i++) {
        await db.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name IN ('strata-persistence', 'strata-main')`,
        );
        await flow(400);
      }
      await chains.expectFolded(db);
      // The writes were retried and the leases kept: no pipeline changed hands.
      expect((await leaseTable(db)).map((lease) => lease.epoch)).toEqual(epochs);
      redis.kill('SIGKILL');
      await new Promise((resolve) => redis.once('exit', resolve));
      await flow(1_500); // owners find blocks posted elsewhere by polling
      await chains.expectFolded(db);
      redis = startRedis();
      await flow(1_500);
      await chains.expectFolded(db);
      for (const member of members) {
        expect(member.daemon.child.exitCode).toBeNull();
        expect((await fetch(`${member.url}/livez`)).status).toBe(200);
      }
      expect((await leaseTable(db)).map((lease) => lease.epoch)).toEqual(epochs);
    } finally {
      redis.kill('SIGKILL');
    }
  });

  it('a shape served through a process that does not own the pipeline stays live across a handover (seed 1506)', async () => {
    const seed = 1506;
    const chains = new FleetChains(['m1'], seed);
    // The standby holds the lease 2 s before it has taken the pipeline over (its materializer does
    // not know the shape yet): requests meanwhile must be told to retry (503), not to refetch (409).
    const [owner, other] = await ownerAndStandby({}, { STRATA_TEST_FAULT: 'fleet:take-delay:2000' });
    for (let i = 0; i < 5; i++) await chains.post(other.url, 'm1', 3);
    const recorder = statusRecorder();
    const stop = new AbortController();
    const shape = new Shape(
      new ShapeStream<{ id: string; version: number }>({
        url: `${other.url}/v1/shape`,
        params: { table: 'm1.Item', columns: ['id', 'version'] } as never,
        signal: stop.signal,
        fetchClient: recorder.fetch,
      }),
    );
    const table = async () =>
      Object.fromEntries(
        (await db.query<{ id: string; version: number }>('SELECT id, version FROM pipeline_m1."Item"')).map(
          (row) => [row.id, row.version],
        ),
      );
    const synced = (what: string) =>
      waitFor(
        async () => {
          const client = Object.fromEntries(shape.currentRows.map((row) => [row.id, row.version]));
          return isDeepStrictEqual(client, await table()) && Object.keys(client).length > 0;
        },
        (equal) => equal,
        30_000,
        what,
      );
    try {
      await chains.expectFolded(db);
      await synced('the client (through the other process) equal to the table');
      for (let i = 0; i < 5; i++) await chains.post(other.url, 'm1', 3);
      await chains.expectFolded(db);
      await synced('live changes forwarded from the owner');
      owner.daemon.kill('SIGTERM');
      await owner.daemon.exited;
      await waitFor(
        () => ownerNow(db, 'm1'),
        (owner) => owner === other.id,
        FLEET_TTL_MS + 20_000,
        'handover',
      );
      for (let i = 0; i < 5; i++) await chains.post(other.url, 'm1', 3);
      await chains.expectFolded(db);
      await synced('live changes served by the new owner, same handle');
      expect(recorder.statuses).not.toContain(409);
    } finally {
      stop.abort();
    }
  });
});
