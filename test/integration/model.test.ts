// Model test: random event streams through the real daemon (NDJSON source, worker threads, the
// single writer, Postgres) must leave exactly the tables a plain fold of the stream computes —
// with eviction forced by a tiny in-memory target, both load strategies, and batch sizes from
// one block to the whole stream.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureProject, startDaemonProcess } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { expectFold, randomStream, writeStream } from '../helpers/model-stream.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const cases = [
  { seed: 1, blocks: 600, batchSize: 7, target: 40, strategy: 'two-pass' },
  { seed: 2, blocks: 600, batchSize: 1, target: 100_000, strategy: 'prefetch' },
  { seed: 3, blocks: 600, batchSize: 50, target: 25, strategy: 'prefetch' },
  { seed: 4, blocks: 600, batchSize: 1_000, target: 100_000, strategy: 'two-pass' },
  { seed: 5, blocks: 600, batchSize: 20, target: 60, strategy: 'auto' },
] as const;

describe('model: random streams end as the reference fold', () => {
  for (const c of cases) {
    it(`seed ${c.seed}: ${c.blocks} blocks, batch ${c.batchSize}, target ${c.target}, ${c.strategy}`, async () => {
      await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
      await db.query('DROP SCHEMA IF EXISTS pipeline_model CASCADE');
      const stream = randomStream(c.seed, c.blocks);
      const file = path.join(mkdtempSync(path.join(tmpdir(), 'strata-model-')), 'stream.ndjson');
      writeStream(file, stream);
      const daemon = startDaemonProcess(
        {
          DATABASE_URL: db.url,
          MODEL_FILE: file,
          MODEL_BATCH_SIZE: String(c.batchSize),
          MODEL_LOAD_STRATEGY: c.strategy,
          STRATA_IN_MEMORY_OBJECTS_TARGET: String(c.target),
        },
        ['--exit-when-caught-up'],
        fixtureProject('model'),
      );
      expect((await daemon.exited).code).toBe(0);
      await expectFold(stream, (sql) => db.query(sql) as never);
    });
  }

  it('embedded PGlite (the unnest write path): seed 6 ends as the fold too', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'strata-model-'));
    const stream = randomStream(6, 400);
    const file = path.join(dir, 'stream.ndjson');
    writeStream(file, stream);
    const daemon = startDaemonProcess(
      {
        MODEL_FILE: file,
        MODEL_BATCH_SIZE: '9',
        STRATA_DATA_DIR: path.join(dir, 'data'),
        STRATA_IN_MEMORY_OBJECTS_TARGET: '50',
      },
      ['--exit-when-caught-up'],
      fixtureProject('model'),
    );
    expect((await daemon.exited).code).toBe(0);
    const pglite = new PGlite(path.join(dir, 'data', 'pgdata'));
    try {
      await expectFold(
        stream,
        async (sql) => (await pglite.query<Record<string, unknown>>(sql)).rows as never,
      );
    } finally {
      await pglite.close();
    }
  });
});
