// Effects and raw events on a real daemon and Postgres (test/fixtures/effects):
//  - across restarts: `cache: true` outputs are stored with their batch and answered from the
//    database after a restart; a changed output schema invalidates them on reload (recomputed,
//    counted in /metrics); `cache: false` outputs are never stored; identical calls run once;
//  - raw events: one row per event, NUL bytes deep in payloads stored escaped, nothing else of
//    the transaction lost.
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RateLimiter } from '../../src/processing/effects.ts';
import { fixtureProject, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const TOKENS = Array.from({ length: 20 }, (_, i) => `token-${i}`);

/** Blocks `from..to`, each with 10 quote events over the 20 tokens (every token many times). */
function blocks(from: number, to: number, extra: (number: number) => object[] = () => []): string {
  const lines: string[] = [];
  for (let number = from; number <= to; number++) {
    const events = Array.from({ length: 10 }, (_, i) => ({
      name: 'quote',
      payload: { token: TOKENS[(number * 7 + i) % TOKENS.length] },
    }));
    lines.push(
      JSON.stringify({ number, timestamp: 1_700_000_000 + number, events: [...events, ...extra(number)] }),
    );
  }
  return `${lines.join('\n')}\n`;
}

function runs(log: string, effect: string): number {
  if (!existsSync(log)) return 0;
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith(`${effect} `)).length;
}

async function metric(url: string, effect: string, result: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('strata_effect_calls{') &&
        l.includes(`effect="${effect}"`) &&
        l.includes(`result="${result}"`),
    );
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

describe('effects', () => {
  it('cache across restarts: stored, invalidated by a changed output schema, cache:false never stored', async () => {
    await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
    await db.query('DROP SCHEMA IF EXISTS pipeline_fx CASCADE');
    const dir = mkdtempSync(path.join(tmpdir(), 'strata-effects-'));
    const file = path.join(dir, 'stream.ndjson');
    const env = (variant: string, log: string) => ({
      DATABASE_URL: db.url,
      EFFECTS_FILE: file,
      EFFECT_VARIANT: variant,
      EFFECT_LOG: path.join(dir, log),
    });

    // Run 1: every token's price runs exactly once (identical calls share one run), stored.
    writeFileSync(file, blocks(1, 100));
    const first = startDaemonProcess(
      env('v1', 'run1.log'),
      ['--exit-when-caught-up'],
      fixtureProject('effects'),
    );
    expect((await first.exited).code).toBe(0);
    expect(runs(path.join(dir, 'run1.log'), 'price')).toBe(20);
    expect(runs(path.join(dir, 'run1.log'), 'echo')).toBe(20);
    const stored = await db.query<{ effect: string; output: { usd: number; source?: string } }>(
      'SELECT effect, output FROM strata.effect_cache ORDER BY input_key',
    );
    expect(stored).toHaveLength(20);
    expect(new Set(stored.map((row) => row.effect))).toEqual(new Set(['price'])); // echo: cache false
    expect(stored[0]!.output).toEqual({ usd: 'token-0'.length * 1.5 });

    // Run 2 with a changed output schema: the stored v1 outputs fail it → recomputed, counted.
    appendFileSync(file, blocks(101, 150));
    const second = startDaemonProcess(env('v2', 'run2.log'), [], fixtureProject('effects'));
    const url = await second.url;
    await waitFor(
      () =>
        db.query<{ committed_block: string }>(
          `SELECT committed_block FROM strata.pipelines WHERE name = 'fx'`,
        ),
      (rows) => Number(rows[0]?.committed_block) === 150,
      30_000,
      'run 2 committed',
    );
    expect(runs(path.join(dir, 'run2.log'), 'price')).toBe(20);
    expect(await metric(url, 'price', 'invalidated')).toBe(20);
    expect(await metric(url, 'price', 'run')).toBe(20);
    expect(await metric(url, 'price', 'memory_hit')).toBeGreaterThan(400);
    second.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    const quotes = await db.query<{ source: string }>('SELECT DISTINCT source FROM pipeline_fx."Quote"');
    expect(quotes).toEqual([{ source: 'v2' }]);
    const restored = await db.query<{ output: { source?: string } }>(
      `SELECT output FROM strata.effect_cache WHERE effect = 'price'`,
    );
    expect(restored.every((row) => row.output.source === 'v2')).toBe(true);

    // Run 3, same schema: answered from the database, nothing recomputed; echo runs again
    // (memory only).
    appendFileSync(file, blocks(151, 200));
    const third = startDaemonProcess(
      env('v2', 'run3.log'),
      ['--exit-when-caught-up'],
      fixtureProject('effects'),
    );
    expect((await third.exited).code).toBe(0);
    expect(runs(path.join(dir, 'run3.log'), 'price')).toBe(0);
    expect(runs(path.join(dir, 'run3.log'), 'echo')).toBe(20);
    expect(await db.count(`SELECT count(*) FROM strata.effect_cache WHERE effect = 'echo'`)).toBe(0);

    // Raw events: one row per event of the three runs.
    expect(await db.count('SELECT count(*) FROM pipeline_fx."_raw_events"')).toBe(2_000);
  });

  it('raw events: NUL bytes deep in payloads are stored escaped, nothing else in the transaction lost', async () => {
    await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
    await db.query('DROP SCHEMA IF EXISTS pipeline_fx CASCADE');
    const dir = mkdtempSync(path.join(tmpdir(), 'strata-effects-'));
    const file = path.join(dir, 'stream.ndjson');
    const nul = (number: number) =>
      number === 3
        ? [
            {
              name: 'note',
              payload: { text: 'a\u0000b', deep: { list: [{ v: 'x\u0000' }, 1] }, lone: 'p\ud800q' },
            },
          ]
        : [];
    writeFileSync(file, blocks(1, 5, nul));
    const daemon = startDaemonProcess(
      { DATABASE_URL: db.url, EFFECTS_FILE: file, EFFECT_LOG: path.join(dir, 'log') },
      ['--exit-when-caught-up'],
      fixtureProject('effects'),
    );
    expect((await daemon.exited).code).toBe(0);
    expect(daemon.logs.some((line) => String(line.msg).includes('lone surrogates refused'))).toBe(true);
    const rows = await db.query<{ name: string; payload: Record<string, unknown> }>(
      'SELECT name, payload FROM pipeline_fx."_raw_events" ORDER BY checkpoint_id, log_index',
    );
    expect(rows).toHaveLength(51);
    const note = rows.find((row) => row.name === 'note')!;
    expect(note.payload).toEqual({
      text: 'a\\u0000b',
      deep: { list: [{ v: 'x\\u0000' }, 1] },
      lone: 'p\\ud800q',
    });
    // The same transaction's entities and effect outputs are all there.
    expect(await db.count('SELECT count(*) FROM pipeline_fx."Quote"')).toBe(20);
    expect(await db.count('SELECT count(*) FROM strata.effect_cache')).toBe(20);
  });

  it('a rate limit queues excess calls: 12 calls at 4 per 150 ms take two more windows', async () => {
    const limiter = new RateLimiter(4, 150);
    const started = Date.now();
    const times = await Promise.all(
      Array.from({ length: 12 }, () => limiter.acquire().then(() => Date.now() - started)),
    );
    expect(times.slice(0, 4).every((t) => t < 100)).toBe(true);
    expect(times.slice(4, 8).every((t) => t >= 145)).toBe(true);
    expect(times.slice(8).every((t) => t >= 295)).toBe(true);
  });
});
