// Opt-in chaos (`npm run chaos:pg-restart`): Postgres itself stopped (`-m immediate`, as a crash)
// and started again while blocks are posted and processed. The daemon stays up, /readyz reports
// the database and recovers, every acknowledged block is stored and the tables equal the fold of
// the chain. It restarts the machine's shared Postgres, so it is not part of `npm test` (other
// test files would lose their connections). Replay with STRATA_CHAOS_SEED.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/sources/generator.ts';
import { Chain, postBlocks, waitForCommittedTip } from '../helpers/chain.ts';
import { fixtureProject, getJson, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { expectFold, randomStream } from '../helpers/model-stream.ts';

const version = readdirSync('/etc/postgresql')[0]!;
const pgctl = (action: 'stop' | 'start') =>
  execFileSync(
    'pg_ctlcluster',
    ['--skip-systemctl-redirect', version, 'main', action, ...(action === 'stop' ? ['-m', 'immediate'] : [])],
    { stdio: 'inherit' },
  );

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('chaos', () => {
  it('Postgres stopped and started mid-run: the daemon stays up, acknowledged blocks stored, tables equal the fold', async () => {
    const seed = Number(process.env.STRATA_CHAOS_SEED ?? Date.now() % 100_000);
    const daemon = startDaemonProcess(
      { DATABASE_URL: db.url, MODEL_SOURCE: 'ingest', MODEL_BATCH_SIZE: '5' },
      [],
      fixtureProject('model'),
    );
    const base = await daemon.url;
    const url = `${base}/v1/pipelines/model/events`;
    const random = mulberry32(seed);
    const events = randomStream(seed, 5_000).map((block) => block.events);
    const chain = new Chain();
    let next = 0;
    let stopPosting = false;
    let retried = 0;
    const poster = (async () => {
      while (!stopPosting && next < events.length) {
        const count = 1 + Math.floor(random() * 10);
        const blocks = chain.append(events.slice(next, next + count));
        next += count;
        for (;;) {
          const response = await postBlocks(url, blocks).catch(() => null);
          if (response?.status === 200) break;
          expect(response === null || response.status === 503, JSON.stringify(response?.body)).toBe(true);
          retried += 1;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    pgctl('stop');
    const down = await waitFor(
      () => getJson<{ error?: { message: string } }>(`${base}/readyz`),
      (answer) => answer.status === 503,
      10_000,
      '/readyz to report the database',
    );
    expect(down.body.error?.message).toContain('database');
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    pgctl('start');
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    stopPosting = true;
    await poster;
    await waitForCommittedTip(db, chain, daemon, 120_000);
    expect(daemon.child.exitCode).toBeNull();
    await waitFor(
      () => getJson(`${base}/readyz`),
      (answer) => answer.status === 200,
      30_000,
      '/readyz 200',
    );
    await expectFold(chain.blocks, (sql) => db.query(sql) as never);
    console.log(
      `seed ${seed}: ${chain.blocks.length} blocks, ${retried} requests retried across the restart`,
    );
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
  }, 300_000);
});
