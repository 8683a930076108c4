// Crash safety and bounded memory on the erc20 example, on real Postgres:
//  - kill -9 of the daemon at random points, then a run to the end: the tables equal the
//    reference fold (nothing lost, nothing applied twice). 10 kills in the suite (each is a daemon
//    start, ~3.5 s of the suite's time); `npm run chaos:crash` runs 40;
//  - a tiny in-memory target: objects stay within target + one batch, and the run completes.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/sources/generator.ts';
import type { StatusSnapshot } from '../../src/status-types.ts';
import { type DaemonProcess, getJson, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import {
  erc20Reference,
  erc20Source,
  erc20Tables,
  expectErc20Reference,
} from '../helpers/erc20-reference.ts';

const ERC20_PROJECT = path.resolve(import.meta.dirname, '../../examples/erc20');
const KILLS = Number(process.env.STRATA_CRASH_ITERATIONS ?? 10);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

function erc20Daemon(env: Record<string, string>, args: string[] = []): DaemonProcess {
  return startDaemonProcess(
    { DATABASE_URL: db.url, ERC20_ADDRESSES: '2000', ERC20_EVENTS_PER_BLOCK: '10', ...env },
    args,
    ERC20_PROJECT,
  );
}

async function reset(): Promise<void> {
  await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
  await db.query('DROP SCHEMA IF EXISTS pipeline_erc20 CASCADE');
}

async function committed(): Promise<number> {
  const rows = await db
    .query<{ committed_checkpoint: string }>(
      `SELECT committed_checkpoint FROM strata.pipelines WHERE name = 'erc20'`,
    )
    .catch(() => []);
  return Number(rows[0]?.committed_checkpoint ?? 0);
}

describe('crash safety (erc20, Postgres)', () => {
  it(`kill -9 at ${KILLS} random points, then a clean run: tables equal the reference`, async () => {
    await reset();
    // Kill points are seeded; replay a failure with STRATA_CRASH_SEED.
    const seed = Number(process.env.STRATA_CRASH_SEED ?? Date.now() % 100_000);
    const random = mulberry32(seed);
    const blocks = 12_000;
    const env = { ERC20_SEED: '11', ERC20_BLOCKS: String(blocks), ERC20_BATCH_SIZE: '40' };
    const progress: number[] = [];
    for (let i = 0; i < KILLS; i++) {
      const daemon = erc20Daemon(env);
      // Somewhere between the actors' start and well into the writes.
      await waitFor(
        async () => daemon.logs.some((l) => l.msg === 'strata daemon running'),
        (running) => running,
        30_000,
        'actors running',
      );
      await new Promise((resolve) => setTimeout(resolve, random() * 700));
      daemon.kill('SIGKILL');
      expect((await daemon.exited).signal).toBe('SIGKILL');
      progress.push(await committed());
    }
    // The committed checkpoint never goes backwards across kills.
    expect(
      [...progress].sort((a, b) => a - b),
      `seed ${seed}`,
    ).toEqual(progress);
    expect(progress[progress.length - 1], `seed ${seed}`).toBeGreaterThan(0); // kills landed during writes
    const last = erc20Daemon(env, ['--exit-when-caught-up']);
    expect((await last.exited).code, `seed ${seed}`).toBe(0);
    expect(await committed()).toBe(blocks);
    await expectErc20Reference((sql) => db.query(sql) as never, 11, blocks);
    // A bound, not a measure: 41 daemon starts (`chaos:crash`, four threads each) take ~150 s on
    // an idle 2-core box and over 300 s beside two CPU hogs.
  }, 600_000);

  it("a writer that dies before COMMIT gets every uncommitted row re-sent, the unread entities' too", async () => {
    await reset();
    // Transfer and Allowance are never read by a handler: their rows are held per batch, outside
    // the store's map (AppendedBatches), and the re-send after the writer's restart must hold them.
    // The small in-memory target keeps processing a few batches ahead of the writer, so the crash
    // comes while the store still appends (the last 200 blocks, inside the reorg threshold, keep
    // history and move the rows into the map).
    const daemon = erc20Daemon({
      ERC20_SEED: '13',
      ERC20_BLOCKS: '3000',
      ERC20_BATCH_SIZE: '20',
      STRATA_IN_MEMORY_OBJECTS_TARGET: '5000',
      STRATA_TEST_FAULT: 'persistence:crash-before-commit:3',
    });
    const url = await daemon.url;
    const { body: status } = await waitFor(
      () => getJson<StatusSnapshot>(`${url}/status`),
      ({ body }) => body.pipelines[0]?.committedCheckpoint === 3_000,
      120_000,
      'all 3000 blocks committed after the writer crash',
    );
    expect(status.actors.find((actor) => actor.name === 'persistence')).toMatchObject({ restarts: 1 });
    expect(daemon.logs.some((l) => l.msg === 're-sent uncommitted changes to the restarted writer')).toBe(
      true,
    );
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    await expectErc20Reference((sql) => db.query(sql) as never, 13, 3_000);
  });

  it('a small in-memory target bounds memory to target + one batch and the run completes', async () => {
    await reset();
    const target = 1_500;
    const batchBlocks = 20; // 200 events: ≤ 3 changes and ≤ 2 loaded rows each
    const daemon = erc20Daemon({
      ERC20_SEED: '12',
      ERC20_BLOCKS: '5000',
      ERC20_BATCH_SIZE: String(batchBlocks),
      STRATA_IN_MEMORY_OBJECTS_TARGET: String(target),
    });
    const url = await daemon.url;
    const { body: status } = await waitFor(
      () => getJson<StatusSnapshot>(`${url}/status`),
      ({ body }) =>
        body.pipelines[0]?.state === 'caught-up' && body.pipelines[0].committedCheckpoint === 5_000,
      120_000,
      'all 5000 blocks committed',
    );
    const pipeline = status.pipelines[0]!;
    expect(pipeline.peakInMemoryObjects).toBeGreaterThan(0);
    expect(pipeline.peakInMemoryObjects).toBeLessThanOrEqual(target + batchBlocks * 10 * 5);
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    const expected = erc20Reference(erc20Source(12), 5_000);
    const actual = await erc20Tables((sql) => db.query(sql) as never);
    expect(actual.accounts).toEqual(expected.accounts);
    expect(actual.transfers).toBe(expected.transfers);
  });
});
