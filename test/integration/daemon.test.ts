// The daemon as a user runs it: a real child process on real Postgres, processing the generator
// stream through real worker threads into tables that must equal an independent fold.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StatusSnapshot } from '../../src/status-types.ts';
import { type DaemonProcess, getJson, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { referenceTotals, TEST_SOURCE } from '../helpers/reference.ts';

let db: TestDatabase;
const running: DaemonProcess[] = [];
beforeAll(async () => {
  db = await createTestDatabase();
});
// A test that failed halfway must not leave its daemon writing into the next test's tables.
afterEach(() => {
  for (const daemon of running.splice(0)) daemon.kill('SIGKILL');
});
afterAll(async () => {
  await db?.drop();
});

function start(env: Record<string, string>) {
  const daemon = startDaemonProcess({ DATABASE_URL: db.url, ...env });
  running.push(daemon);
  return daemon;
}

async function resetDatabase(): Promise<void> {
  await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
  await db.query('DROP SCHEMA IF EXISTS pipeline_credits CASCADE');
}

async function committedCheckpoint(): Promise<number> {
  const rows = await db.query<{ committed_checkpoint: string }>(
    `SELECT committed_checkpoint FROM strata.pipelines WHERE name = 'credits'`,
  );
  return Number(rows[0]?.committed_checkpoint ?? 0);
}

async function expectTablesToEqualReference(lastBlock: number): Promise<void> {
  const expected = referenceTotals(TEST_SOURCE, lastBlock);
  const rows = await db.query<{ id: string; credited: string; debited: string; events: number }>(
    'SELECT id, credited, debited, events FROM pipeline_credits."AccountTotal"',
  );
  const actual = new Map(
    rows.map((row) => [
      row.id,
      { credited: Number(row.credited), debited: Number(row.debited), events: row.events },
    ]),
  );
  expect(actual.size).toBe(expected.size);
  expect(actual).toEqual(expected);
}

describe('strata start (child process, Postgres)', () => {
  it('processes the stream end to end, reports it, and serves health, status and metrics', async () => {
    await resetDatabase();
    const daemon = start({ TEST_BLOCKS: '3000' });
    const url = await daemon.url;

    const status = await waitFor(
      () => getJson<StatusSnapshot>(`${url}/status`),
      // …and every actor has reported its pool at least once (pongs come once a ping interval)
      ({ body }) => body.pipelines[0]?.committedCheckpoint === 3000 && 'persistence' in body.database.pools,
      60_000,
      'all 3000 blocks committed',
    );
    expect(status.status).toBe(200);
    expect(status.body.process).toMatchObject({ state: 'running', pid: daemon.child.pid, version: '0.1.0' });
    expect(status.body.actors.map((a) => a.name)).toEqual([
      'persistence',
      'materializer',
      'processing:credits',
    ]);
    for (const actor of status.body.actors) {
      expect(actor).toMatchObject({
        state: 'running',
        incarnation: 1,
        restarts: 0,
        inFlightCalls: expect.any(Number),
      });
    }
    expect(status.body.pipelines[0]).toMatchObject({
      processedCheckpoint: 3000,
      eventsProcessed: 30_000,
      state: 'caught-up',
    });
    expect(status.body.database.kind).toBe('postgres');
    expect(Object.keys(status.body.database.pools)).toContain('persistence');

    expect((await getJson(`${url}/livez`)).status).toBe(200);
    const ready = await getJson<{ status: string }>(`${url}/readyz`);
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready' } });

    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^strata_build_info\{version="0\.1\.0",node="v[\d.]+"\} 1$/m);
    expect(metrics).toMatch(/^strata_actor_up\{actor="persistence"\} 1$/m);
    expect(metrics).toMatch(/^strata_pipeline_committed_checkpoint\{pipeline="credits"\} 3000$/m);
    expect(metrics).toMatch(/^strata_actor_heap_used_bytes\{actor="processing:credits"\} \d+/m);

    const missing = await getJson<{ error: { code: string } }>(`${url}/nope`);
    expect(missing).toMatchObject({ status: 404, body: { error: { code: 'STRATA_ERR_NOT_FOUND' } } });

    await expectTablesToEqualReference(3000);

    daemon.kill('SIGTERM');
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
  });

  it('the processing actor answers pings and reports its rate through a backfill that needs no I/O', async () => {
    // The generator answers without I/O and every read hits memory: a loop that never gave the
    // event loop a turn starved pings (the supervisor killed the actor as unresponsive) and the
    // progress timer (0 blk/s through the whole backfill). A 500 ms ping makes 1 s of silence
    // fatal: the old loop was silent for the whole backfill (seconds), a batch takes milliseconds,
    // and a busy machine's GC pauses stay well below it. The stream (10M events) outlasts the
    // test on any machine: a backfill that ended before /status (reported once a second) showed
    // it proved nothing, and the test watches a fixed stretch of it instead.
    await resetDatabase();
    const daemon = start({ TEST_BLOCKS: '1000000', STRATA_PING_INTERVAL_MS: '500' });
    const url = await daemon.url;
    const pipelineStatus = async () => (await getJson<StatusSnapshot>(`${url}/status`)).body;
    const during = await waitFor(
      pipelineStatus,
      (body) => body.pipelines[0]?.state === 'backfill' && (body.pipelines[0]?.blocksPerSecond ?? 0) > 0,
      60_000,
      'a backfill progress report with a rate',
    );
    expect(during.pipelines[0]!.eventsPerSecond).toBeGreaterThan(0);
    // Three more seconds (six ping intervals) of backfill, its commits advancing.
    const watchedFrom = Date.now();
    const later = await waitFor(
      pipelineStatus,
      (body) =>
        Date.now() - watchedFrom >= 3_000 &&
        body.pipelines[0]!.committedCheckpoint > during.pipelines[0]!.committedCheckpoint,
      60_000,
      'three seconds of backfill with commits',
    );
    expect(later.pipelines[0]).toMatchObject({ state: 'backfill' });
    expect(later.pipelines[0]!.blocksPerSecond).toBeGreaterThan(0);
    for (const actor of later.actors)
      expect(actor, actor.name).toMatchObject({ incarnation: 1, restarts: 0 });
    expect(daemon.logs.filter((entry) => entry.msg === 'actor unresponsive; terminating')).toEqual([]);
    daemon.kill('SIGTERM');
    expect(await daemon.exited).toEqual({ code: 0, signal: null });
  });

  it('SIGTERM during processing drains the writer, exits 0, and a restart resumes to the same final state', async () => {
    await resetDatabase();
    // 400k events: the signal lands after the first commit, with most of the stream still ahead;
    // small enough that the resume to the end holds on a busy machine.
    const env = { TEST_BLOCKS: '40000', TEST_BATCH_SIZE: '50' };
    const first = start(env);
    await first.url;
    // Signal as soon as the first commits land, while most of the stream is still ahead.
    await waitFor(
      () => committedCheckpoint(),
      (checkpoint) => checkpoint > 0,
      60_000,
      'first commit',
    );
    first.kill('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });

    // Everything processed before the signal was committed: the writer's flush reported the
    // same checkpoint the intake stopped at, and the tables match the stream up to it.
    const intake = first.logs.find((l) => l.msg === 'intake stopped');
    const flushed = first.logs.find((l) => l.msg === 'writer flushed') as
      | { committed: { credits: number } }
      | undefined;
    expect(intake).toBeDefined();
    expect(flushed?.committed.credits).toBe(intake?.processedCheckpoint);
    const stoppedAt = await committedCheckpoint();
    expect(stoppedAt).toBe(intake?.processedCheckpoint);
    expect(stoppedAt).toBeLessThan(40_000);
    await expectTablesToEqualReference(stoppedAt);

    const second = start(env);
    const secondUrl = await second.url;
    await waitFor(
      () => getJson<StatusSnapshot>(`${secondUrl}/status`),
      ({ body }) => body.pipelines[0]?.committedCheckpoint === 40_000,
      180_000,
      'resume to the end',
    );
    expect(second.logs.some((l) => l.msg === 'pipeline resuming' && l.resumeFrom === stoppedAt + 1)).toBe(
      true,
    );
    await expectTablesToEqualReference(40_000);
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  }, 240_000);

  it('a writer that dies before COMMIT is restarted, the batches are re-sent, nothing is lost or doubled', async () => {
    await resetDatabase();
    const daemon = start({
      TEST_BLOCKS: '3000',
      TEST_BATCH_SIZE: '20',
      STRATA_TEST_FAULT: 'persistence:crash-before-commit:3',
    });
    const url = await daemon.url;
    const status = await waitFor(
      () => getJson<StatusSnapshot>(`${url}/status`),
      ({ body }) => body.pipelines[0]?.committedCheckpoint === 3000,
      60_000,
      'all blocks committed after the writer crash',
    );
    const writer = status.body.actors.find((a) => a.name === 'persistence')!;
    expect(writer).toMatchObject({ incarnation: 2, restarts: 1, state: 'running' });
    expect(writer.lastExitReason).toMatch(/crash/);
    expect(daemon.logs.some((l) => l.msg === 're-sent uncommitted changes to the restarted writer')).toBe(
      true,
    );
    await expectTablesToEqualReference(3000);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
  });

  it('a writer restarted while a batch is half executed gets no part of that batch: a kill -9 then loses nothing and doubles nothing', async () => {
    await resetDatabase();
    // Batch 1 (blocks 1-20) is the writer's first transaction, abandoned before COMMIT; the
    // restarted writer asks for everything uncommitted while batch 2 waits in block 25's handler
    // with blocks 21-24 in the store. Those must not be written as part of checkpoint 20.
    const first = start({
      TEST_BLOCKS: '200',
      TEST_BATCH_SIZE: '20',
      TEST_PAUSE_AT_BLOCK: '25',
      TEST_PAUSE_MS: '5000',
      STRATA_TEST_FAULT: 'persistence:crash-before-commit:1',
    });
    await first.url;
    await waitFor(
      () => committedCheckpoint(),
      (checkpoint) => checkpoint >= 20,
      60_000,
      'the re-sent batches committed',
    );
    first.kill('SIGKILL');
    await first.exited;
    const second = start({ TEST_BLOCKS: '200', TEST_BATCH_SIZE: '20' });
    const url = await second.url;
    await waitFor(
      () => getJson<StatusSnapshot>(`${url}/status`),
      ({ body }) => body.pipelines[0]?.committedCheckpoint === 200,
      60_000,
      'all blocks committed after the restart',
    );
    await expectTablesToEqualReference(200);
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  });

  it('a writer that dies after COMMIT, before reporting it, is restarted and the commit reported again', async () => {
    await resetDatabase();
    // One batch, one transaction: nothing written later would report a newer commit.
    const daemon = start({
      TEST_BLOCKS: '40',
      TEST_BATCH_SIZE: '100',
      STRATA_TEST_FAULT: 'persistence:crash-after-commit:1',
    });
    const url = await daemon.url;
    const status = await waitFor(
      () => getJson<StatusSnapshot>(`${url}/status`),
      ({ body }) => body.pipelines[0]?.committedCheckpoint === 40,
      30_000,
      'the commit made before the crash reported',
    );
    expect(status.body.actors.find((a) => a.name === 'persistence')).toMatchObject({ incarnation: 2 });
    await expectTablesToEqualReference(40);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
  });

  it('an actor that crash-loops at start makes the process exit 75', async () => {
    await resetDatabase();
    const daemon = start({ STRATA_TEST_FAULT: 'processing:crash-at-start', STRATA_RESTART_INTENSITY: '2' });
    const exit = await daemon.exited;
    expect(exit).toEqual({ code: 75, signal: null });
    expect(
      daemon.logs.some(
        (l) => (l.err as { code?: string } | undefined)?.code === 'STRATA_ERR_RESTART_INTENSITY',
      ),
    ).toBe(true);
  });

  it('invalid configuration exits 1 listing every problem', async () => {
    const daemon = start({
      STRATA_LOG_LEVEL: 'loud',
      STRATA_PING_INTERVAL_MS: '-5',
      DATABASE_URL: 'mysql://nope',
    });
    const exit = await daemon.exited;
    expect(exit.code).toBe(1);
    const output = daemon.stderr.join('');
    expect(output).toMatch(/STRATA_ERR_CONFIG_INVALID/);
    expect(output).toMatch(/3 problems/);
    expect(output).toMatch(/DATABASE_URL/);
    expect(output).toMatch(/STRATA_PING_INTERVAL_MS/);
    expect(output).toMatch(/STRATA_LOG_LEVEL/);
  });
});
