// Chain metadata on a real daemon and Postgres: staged by processing, folded into batch writes,
// and — on an idle pipeline, where no batch flows — still written within the throttle interval by
// the single writer's idle flush.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureProject, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

interface MetadataRow {
  committed_checkpoint: string;
  committed_block: string | null;
  source_head_block: string | null;
  processed_block: string | null;
  events_processed: string;
  first_event_at: Date | null;
  ready_at: Date | null;
  metadata_at: Date | null;
}

describe('chain metadata', () => {
  it('reaches the database with the batches and, on an idle pipeline, within the throttle interval', async () => {
    const daemon = startDaemonProcess(
      { DATABASE_URL: db.url, STRATA_METADATA_FLUSH_MS: '300' },
      [],
      fixtureProject('ingest'),
    );
    try {
      await daemon.url;
      const row = async (pipeline: string) =>
        (
          await db.query<MetadataRow>(
            `SELECT committed_checkpoint, committed_block, source_head_block, processed_block, events_processed,
                    first_event_at, ready_at, metadata_at
               FROM strata.pipelines WHERE name = $1`,
            [pipeline],
          )
        )[0];
      // 'generated' processes its 10 finite blocks, then idles: its ready-at is only known after the
      // last batch (when the source reports nothing more), so only the idle flush can write it.
      const ready = await waitFor(
        () => row('generated'),
        (r) => r?.ready_at != null,
        // A bound, not a measure: it includes the actors' start, slow on a busy machine.
        30_000,
        'ready_at written',
      );
      expect(ready).toMatchObject({ committed_block: '10', source_head_block: '10', processed_block: '10' });
      expect(Number(ready!.events_processed)).toBeGreaterThan(0);
      expect(ready!.first_event_at).not.toBeNull();
      expect(ready!.first_event_at!.getTime()).toBeLessThanOrEqual(ready!.ready_at!.getTime());

      // Idle: no batch flows, yet fresh figures keep arriving (progress every second, flush ≥ 300 ms apart).
      const before = ready!.metadata_at!.getTime();
      const later = await waitFor(
        () => row('generated'),
        (r) => r !== undefined && r.metadata_at!.getTime() >= before + 1_000,
        5_000,
        'idle flush',
      );
      expect(later!.committed_checkpoint).toBe(ready!.committed_checkpoint); // no batch was written
      expect(later!.ready_at!.getTime()).toBe(ready!.ready_at!.getTime()); // first value kept
    } finally {
      daemon.kill();
      await daemon.exited;
    }
  });
});
