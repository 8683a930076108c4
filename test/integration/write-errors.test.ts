// Write-time failures on a real daemon and Postgres: NUL bytes (which Postgres refuses in text
// and jsonb) are stored escaped without losing anything else of the transaction; a set Postgres
// refuses for another reason stops the pipeline with an error naming the entity, id and block.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureProject, startDaemonProcess } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { type StreamBlock, writeStream } from '../helpers/model-stream.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const put = (id: string, extra: Record<string, unknown> = {}) => ({
  name: 'put',
  payload: {
    id,
    owner: 'o1',
    value: '5',
    label: 'clean',
    tags: ['t'],
    meta: { k: 1 },
    price: '1.5',
    ...extra,
  },
});

async function run(stream: StreamBlock[]) {
  await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
  await db.query('DROP SCHEMA IF EXISTS pipeline_model CASCADE');
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'strata-write-errors-')), 'stream.ndjson');
  writeStream(file, stream);
  const daemon = startDaemonProcess(
    { DATABASE_URL: db.url, MODEL_FILE: file, MODEL_BATCH_SIZE: '10' },
    ['--exit-when-caught-up'],
    fixtureProject('model'),
  );
  return { daemon, exit: await daemon.exited };
}

describe('write errors', () => {
  it('NUL bytes deep in payloads are stored escaped; nothing else in the transaction is lost', async () => {
    const { exit, daemon } = await run([
      { number: 1, timestamp: 1_700_000_000, events: [put('a')] },
      {
        number: 2,
        timestamp: 1_700_000_012,
        events: [
          put('b', {
            label: 'has\u0000nul',
            tags: ['t\u0000g', 'plain'],
            meta: { deep: [{ s: 'x\u0000y' }], plain: 'ok', 'k\u0000': 1, lone: 'p\udc00q' },
          }),
          // The six characters \u0000 (no NUL) in the same rows: stored as they are, never mended.
          put('d', { label: 'lit\\u0000', tags: ['lit\\u0000'], meta: { s: 'lit\\u0000' } }),
          { name: 'seen', payload: { owner: 'o1' } },
        ],
      },
      { number: 3, timestamp: 1_700_000_024, events: [put('c')] },
    ]);
    expect(exit.code).toBe(0);
    const items = await db.query<{ id: string; label: string; tags: string[]; meta: unknown }>(
      'SELECT id, label, tags, meta FROM pipeline_model."Item" ORDER BY id',
    );
    expect(items).toEqual([
      { id: 'a', label: 'clean', tags: ['t'], meta: { k: 1 } },
      {
        id: 'b',
        label: 'has\\u0000nul',
        tags: ['t\\u0000g', 'plain'],
        meta: { deep: [{ s: 'x\\u0000y' }], plain: 'ok', 'k\\u0000': 1, lone: 'p\\udc00q' },
      },
      { id: 'c', label: 'clean', tags: ['t'], meta: { k: 1 } },
      { id: 'd', label: 'lit\\u0000', tags: ['lit\\u0000'], meta: { s: 'lit\\u0000' } },
    ]);
    expect(await db.query('SELECT id, seen FROM pipeline_model."Owner"')).toEqual([{ id: 'o1', seen: 1 }]);
    expect(
      daemon.logs.some(
        (entry) =>
          entry.msg === 'NUL bytes or lone surrogates refused by Postgres; retrying with them escaped',
      ),
    ).toBe(true);
  });

  it('a set Postgres refuses is bisected to its row: the error names the entity, id and block', async () => {
    const { exit, daemon } = await run([
      { number: 1, timestamp: 1_700_000_000, events: [put('a'), put('b')] },
      { number: 2, timestamp: 1_700_000_012, events: [put('c'), put('d')] },
      // 2^300 passes the handler's bigint check but not the column's numeric(78,0).
      {
        number: 3,
        timestamp: 1_700_000_024,
        events: [put('e'), put('huge', { value: (2n ** 300n).toString() })],
      },
      { number: 4, timestamp: 1_700_000_036, events: [put('f')] },
    ]);
    expect(exit.code).toBe(1);
    const fatal = JSON.stringify(daemon.logs.filter((entry) => (entry.level as number) >= 50));
    expect(fatal).toContain('STRATA_ERR_WRITE_FAILED');
    expect(fatal).toContain('Item \\"huge\\" set at block 3 by the put handler (log index 1)');
    expect(fatal).toContain('numeric field overflow');
    // The writer stopped this pipeline only; --exit-when-caught-up then ends the batch job with 1.
    expect(daemon.logs.some((line) => String(line.msg).startsWith('pipeline failed'))).toBe(true);
    expect(
      daemon.logs.some((line) => String(line.msg).startsWith('every pipeline caught up or failed')),
    ).toBe(true);
    // Nothing of the failing batch is half-stored.
    expect(await db.query('SELECT id FROM pipeline_model."Item"')).toEqual([]);
  });
});
