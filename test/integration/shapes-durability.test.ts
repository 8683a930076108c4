// Durable shapes with the official Electric client against a real daemon: clients keep their
// handles and offsets through a materializer crash (Postgres), a writer dying between COMMIT and
// sending (embedded PGlite on disk), and a daemon restart, and are never sent back to a snapshot
// (409). What the shapes must hold comes from an independent fold of the posted chain, not from
// the daemon's tables. (Its own file so it runs beside shapes.test.ts, not after it.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Shape, ShapeStream } from '@electric-sql/client';
import { describe, expect, it } from 'vitest';
import { fixtureProject, startDaemonProcess, statusRecorder, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { byId, Chain, freePort, pick, type Row } from '../helpers/shape-chain.ts';

const project = fixtureProject('../../examples/erc20');

describe.each([
  [
    'Postgres, the materializer crashing at a commit',
    (own: TestDatabase) => ({ DATABASE_URL: own.url }),
    'materializer:crash-at-commit:3',
  ],
  [
    'embedded PGlite on disk, the writer dying between COMMIT and sending the changes',
    (_own: TestDatabase) => ({}),
    'persistence:crash-after-commit:3',
  ],
])('durable shapes on %s', (_name, env, fault) => {
  it('clients keep their handles and offsets through the crash and a daemon restart: no 409, nothing missed', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'strata-shapes-'));
    const own = await createTestDatabase(); // the first test's chain is in the shared one
    const port = await freePort();
    const start = (faults: Record<string, string>) =>
      startDaemonProcess(
        { ...env(own), STRATA_DATA_DIR: dataDir, ERC20_SOURCE: 'ingest', ...faults },
        ['--port', String(port)],
        project,
      );
    let daemon = start({ STRATA_TEST_FAULT: fault });
    const base = await daemon.url;
    const chain = new Chain(base);
    const stop = new AbortController();
    const { fetch: recording, statuses } = statusRecorder();
    const stream = (params: Record<string, unknown>) =>
      new ShapeStream<Row>({
        url: `${base}/v1/shape`,
        params: params as never,
        signal: stop.signal,
        fetchClient: recording,
        // Through the restart the daemon is briefly unreachable: keep retrying.
        backoffOptions: { initialDelay: 50, maxDelay: 500, multiplier: 1.5 },
      } as never);
    try {
      await chain.push(['0xa', '0xb', 100]);
      const all = new Shape(stream({ table: 'Account' }));
      const rich = new Shape(stream({ table: 'Account', where: 'balance > $1', params: { 1: '20' } }));
      const settled = () => {
        const table = chain.accounts();
        const expected = [table, pick(table, (row) => (row.balance as bigint) > 20n)];
        return waitFor(
          async () => [all, rich].map((shape) => byId(shape.currentRows)),
          (got) => isDeepStrictEqual(got, expected),
          60_000,
          `shapes equal the fold of ${chain.blocks.length} blocks`,
        );
      };
      await settled();
      const handles = [all.handle, rich.handle];
      // One block at a time: each its own transaction, so the fault's count is reached.
      for (let i = 0; i < 6; i++) {
        await chain.push(['0xb', `0x${i}`, 10 + i]);
        await settled();
      }
      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
      // The fault did strike (and the actor was restarted) before the restart.
      expect(daemon.logs.some((line) => String(line.msg).startsWith('injected fault'))).toBe(true);
      expect(daemon.logs.some((line) => line.msg === 'restarting actor')).toBe(true);
      daemon = start({});
      await daemon.url;
      await chain.push(['0xa', '0xc', 30], ['0xb', '0xa', 1]);
      await settled();
      expect([all.handle, rich.handle]).toEqual(handles);
      expect(statuses.filter((status) => status === 409)).toEqual([]);
    } finally {
      stop.abort();
      daemon.kill();
      await daemon.exited;
      rmSync(dataDir, { recursive: true, force: true });
      await own.drop();
    }
    // A crash, a restart and PGlite on disk: ~80 s in the suite on 2 cores, past 120 s beside two
    // CPU hogs and the fleet's daemons.
  }, 300_000);
});
