// The embedded default: no DATABASE_URL, PGlite in the daemon process behind its socket server,
// reached by the actors' ordinary `pg` pools. What `npm start` runs on a fresh machine.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StatusSnapshot } from '../../src/status-types.ts';
import { getJson, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';

describe('embedded PGlite daemon', () => {
  it('processes the stream on PGlite, persists it under the data dir, and resumes after a restart', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'strata-embedded-'));
    const env = { TEST_BLOCKS: '1500', STRATA_DATA_DIR: dataDir };
    const first = startDaemonProcess(env);
    try {
      const url = await first.url;
      const status = await waitFor(
        () => getJson<StatusSnapshot>(`${url}/status`),
        ({ body }) => body.pipelines[0]?.committedCheckpoint === 1500,
        90_000,
        'all blocks committed on PGlite',
      );
      expect(status.body.database).toMatchObject({ kind: 'embedded', storage: 'disk' });
      expect((await getJson(`${url}/readyz`)).status).toBe(200);
      first.kill('SIGTERM');
      expect((await first.exited).code).toBe(0);
    } finally {
      first.kill('SIGKILL');
    }

    // Same data dir: the committed checkpoint survived, nothing is reprocessed.
    const second = startDaemonProcess(env);
    try {
      const url = await second.url;
      const status = await waitFor(
        () => getJson<StatusSnapshot>(`${url}/status`),
        ({ body }) => body.pipelines[0]?.state === 'caught-up',
        90_000,
        'caught up after restart',
      );
      expect(status.body.pipelines[0]).toMatchObject({ committedCheckpoint: 1500, eventsProcessed: 0 });
      expect(second.logs.some((l) => l.msg === 'pipeline resuming' && l.resumeFrom === 1501)).toBe(true);
      second.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
    } finally {
      second.kill('SIGKILL');
    }
  });
});
