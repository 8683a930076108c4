// Fuzzing the ingest API on a running daemon: 2,000 random mutations of valid requests (field
// drops, type swaps, huge / negative / fractional numbers, NUL, lone surrogates, invalid UTF-8,
// deep nesting, broken chains, duplicate log indexes, bodies mixing `blocks` with block fields,
// other content types, replacement branches at random depths). Every answer is 200 or a 4xx with
// a registry code, never a 5xx; afterwards the daemon is up, the pipeline not failed, the log
// holds exactly the accepted chain and the tables equal its fold.
// Replay a failure with STRATA_FUZZ_SEED=<the seed in the message>; more requests with
// STRATA_FUZZ_REQUESTS; STRATA_FUZZ_CHECK_EVERY=N compares with the fold every N requests too.
import { describe, expect, it } from 'vitest';
import { isErrorCode } from '../../src/errors.ts';
import { mulberry32 } from '../../src/sources/generator.ts';
import type { StatusSnapshot } from '../../src/status-types.ts';
import {
  type DaemonProcess,
  fixtureProject,
  getJson,
  startDaemonProcess,
  waitFor,
} from '../helpers/daemon-process.ts';
import { useTestDatabase } from '../helpers/database.ts';
import { expectFold, randomStream, type StreamBlock } from '../helpers/model-stream.ts';

const db = useTestDatabase();

const MAX_REORG_DEPTH = 10;

type Json = Record<string, unknown>;

/** What the log must hold: the accepted blocks, in order. */
class AcceptedChain {
  blocks: Array<StreamBlock & { hash: string | null }> = [];
  highWater = 0;

  get head(): (StreamBlock & { hash: string | null }) | undefined {
    return this.blocks[this.blocks.length - 1];
  }

  accept(sent: Json[]): void {
    const blocks = sent.map((block) => ({
      number: block.number as number,
      timestamp: block.timestamp as number,
      hash: (block.hash as string | null | undefined) ?? null,
      events: (block.events as Json[]).map((event) => ({
        name: event.name as string,
        payload: event.payload as Record<string, unknown>,
      })),
    }));
    const first = blocks[0]!.number;
    this.blocks = [...this.blocks.filter((block) => block.number < first), ...blocks];
    this.highWater = Math.max(this.highWater, blocks[blocks.length - 1]!.number);
  }
}

describe('ingest fuzz', () => {
  it('2,000 mutated requests: 200 or 4xx with a code, never 5xx; the tables equal the fold of what was accepted', async () => {
    const seed = Number(process.env.STRATA_FUZZ_SEED ?? Date.now() % 1_000_000);
    const requests = Number(process.env.STRATA_FUZZ_REQUESTS ?? 2_000);
    await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
    await db.query('DROP SCHEMA IF EXISTS pipeline_model CASCADE');
    const daemon: DaemonProcess = startDaemonProcess(
      {
        DATABASE_URL: db.url,
        MODEL_SOURCE: 'ingest',
        MODEL_MAX_REORG_DEPTH: String(MAX_REORG_DEPTH),
        MODEL_BATCH_SIZE: '4',
        STRATA_HISTORY_PRUNE_MS: '50',
      },
      [],
      fixtureProject('model'),
    );
    try {
      const base = await daemon.url;
      const url = `${base}/v1/pipelines/model/events`;
      const random = mulberry32(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      const int = (below: number) => Math.floor(random() * below);
      const streamEvents = randomStream(seed, 4_000).map((block) => block.events);
      let nextEvents = 0;
      let nextHash = 0;
      const chain = new AcceptedChain();
      const checkEvery = Number(process.env.STRATA_FUZZ_CHECK_EVERY ?? 0);
      const waitForTip = (hash: string | null, what: string) =>
        waitFor(
          () =>
            db.query<{ committed_block_hash: string | null }>(
              `SELECT committed_block_hash FROM strata.pipelines WHERE name = 'model'`,
            ),
          (rows) => rows[0]?.committed_block_hash === hash,
          90_000,
          `${what} committed`,
        );
      const outcomes = new Map<string, number>();

      /** A valid request: an append of 1..5 blocks, or a replacement branch 1..15 blocks deep. */
      const validRequest = (): Json[] => {
        const replace = chain.blocks.length > 5 && random() < 0.25;
        const depth = replace ? 1 + int(Math.min(15, chain.blocks.length - 1)) : 0;
        const kept = chain.blocks.slice(0, chain.blocks.length - depth);
        let parent = kept[kept.length - 1];
        const count = 1 + int(5);
        const blocks: Json[] = [];
        for (let i = 0; i < count; i++) {
          const number = (parent?.number ?? 0) + 1;
          const hash = `h${nextHash++}`;
          blocks.push({
            number,
            timestamp: 1_700_000_000 + number * 12,
            hash,
            parentHash: parent?.hash ?? null,
            // A copy: mutations change it in place.
            events: structuredClone(streamEvents[nextEvents++ % streamEvents.length]!),
          });
          parent = { number, hash, timestamp: 0, events: [] };
        }
        return blocks;
      };

      const someBlock = (blocks: Json[]) => pick(blocks);
      const someEvent = (blocks: Json[]): Json | undefined => {
        const events = someBlock(blocks).events as Json[];
        return events.length === 0 ? undefined : pick(events);
      };

      /** Mutations of a valid request's blocks (in place); each names itself for the outcome table. */
      const blockMutations: Array<[string, (blocks: Json[]) => void]> = [
        [
          'drop a block field',
          (b) => delete someBlock(b)[pick(['number', 'timestamp', 'events', 'hash', 'parentHash'])],
        ],
        [
          'drop an event field',
          (b) => {
            const e = someEvent(b);
            if (e) delete e[pick(['name', 'payload', 'logIndex'])];
          },
        ],
        [
          'swap a block field type',
          (b) => {
            someBlock(b)[pick(['number', 'timestamp', 'events', 'hash'])] = pick([
              '7',
              true,
              {},
              [],
              null,
              'x',
            ]);
          },
        ],
        [
          'swap an event field type',
          (b) => {
            const e = someEvent(b);
            if (e) e[pick(['name', 'payload', 'logIndex'])] = pick([7, 'x', [], true, null]);
          },
        ],
        [
          'odd block number',
          (b) => {
            someBlock(b).number = pick([-1, 1.5, 2 ** 53, 2 ** 50, 1e300, Number.MAX_SAFE_INTEGER]);
          },
        ],
        [
          'odd timestamp',
          (b) => {
            someBlock(b).timestamp = pick([-5, 0.5, 2 ** 53, 1e20, 253_402_300_800]);
          },
        ],
        [
          'odd log index',
          (b) => {
            const e = someEvent(b);
            if (e) e.logIndex = pick([-1, 1.5, 2 ** 31, 1e30]);
          },
        ],
        [
          'duplicate log index',
          (b) => {
            const events = someBlock(b).events as Json[];
            if (events.length > 1) {
              events[0]!.logIndex = 5;
              events[1]!.logIndex = 5;
            }
          },
        ],
        [
          'NUL in a name or hash',
          (b) => {
            const e = someEvent(b);
            if (e && random() < 0.5) e.name = 'put\u0000';
            else someBlock(b).hash = 'h\u0000x';
          },
        ],
        [
          'NUL in a payload',
          (b) => {
            const e = someEvent(b);
            if (e) (e.payload as Json).label = 'a\u0000b';
          },
        ],
        [
          'lone surrogate in a payload',
          (b) => {
            const e = someEvent(b);
            if (e) (e.payload as Json).note = 'x\ud800y';
          },
        ],
        [
          'broken parent hash',
          (b) => {
            someBlock(b).parentHash = `nope-${int(1e6)}`;
          },
        ],
        [
          'numbers not increasing',
          (b) => {
            if (b.length > 1) b[1]!.number = b[0]!.number;
          },
        ],
        [
          'replacement below the stored chain',
          (b) => {
            b[0]!.number = Math.max(1, (b[0]!.number as number) - 1 - int(40));
          },
        ],
        [
          'no hash on a replacement',
          (b) => {
            delete b[0]!.hash;
            delete b[0]!.parentHash;
            b[0]!.number = Math.max(1, (b[0]!.number as number) - 1);
          },
        ],
      ];
      /** Mutations of the whole body (after its blocks were built). */
      const bodyMutations: Array<[string, (blocks: Json[]) => { body: string | Buffer; type?: string }]> = [
        ['blocks mixed with block fields', (b) => ({ body: JSON.stringify({ blocks: b, ...b[0] }) })],
        ['empty blocks', () => ({ body: '{"blocks":[]}' })],
        [
          'truncated JSON',
          (b) => {
            const text = JSON.stringify({ blocks: b });
            return { body: text.slice(0, int(text.length)) };
          },
        ],
        [
          'invalid UTF-8',
          (b) => {
            const text = Buffer.from(JSON.stringify({ blocks: b }));
            const at = text.indexOf('"', int(text.length));
            return {
              body:
                at < 0
                  ? Buffer.from([0xff])
                  : Buffer.concat([
                      text.subarray(0, at + 1),
                      Buffer.from([0xc3, 0x28]),
                      text.subarray(at + 1),
                    ]),
            };
          },
        ],
        ['text/plain', (b) => ({ body: JSON.stringify({ blocks: b }), type: 'text/plain' })],
        ['not an object', () => ({ body: pick(['[]', '7', '"x"', 'null', 'true']) })],
        // Spliced into the text: the test itself could not stringify thousands of levels.
        [
          'nested too deep',
          (b) => {
            const levels = 70 + int(8_000);
            const text = JSON.stringify({ blocks: b });
            const nested = `"payload":{"deep":${'['.repeat(levels)}${']'.repeat(levels)},`;
            return {
              body: text.includes('"payload":{"') ? text.replace('"payload":{', nested) : '['.repeat(levels),
            };
          },
        ],
      ];

      for (let request = 0; request < requests; request++) {
        const blocks = validRequest();
        let name = 'valid';
        let body: string | Buffer;
        let type = 'application/json';
        const roll = random();
        if (roll < 0.2) {
          body = JSON.stringify({ blocks });
        } else if (roll < 0.85) {
          const [mutation, apply] = pick(blockMutations);
          name = mutation;
          apply(blocks);
          body = JSON.stringify(random() < 0.8 || blocks.length !== 1 ? { blocks } : blocks[0]);
        } else {
          const [mutation, build] = pick(bodyMutations);
          name = mutation;
          const built = build(blocks);
          body = built.body;
          type = built.type ?? type;
        }
        const response = await fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
        const answer = (await response.json()) as { error?: { code: unknown }; alreadyStored?: boolean };
        const where = `seed ${seed}, request ${request} (${name}): ${response.status} ${JSON.stringify(answer).slice(0, 300)}`;
        expect(response.status < 500, where).toBe(true);
        if (response.status === 200) {
          if (answer.alreadyStored !== true)
            chain.accept(JSON.parse(body.toString()).blocks ?? [JSON.parse(body.toString())]);
        } else {
          expect(response.status >= 400, where).toBe(true);
          expect(isErrorCode(answer.error?.code), where).toBe(true);
        }
        const key = `${name} → ${response.status}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        // Now and then let processing catch up, so replacements also roll back stored state.
        if (random() < 0.02) await new Promise((resolve) => setTimeout(resolve, 50));
        // STRATA_FUZZ_CHECK_EVERY=N: also compare with the fold every N requests, which names the
        // request after which a failure first shows (the hunt that found the unchained replacement).
        if (checkEvery > 0 && request % checkEvery === 0 && chain.head?.hash) {
          await waitForTip(chain.head.hash, `request ${request}'s tip`);
          await expectFold(chain.blocks, (sql) => db.query(sql) as never).catch((error: Error) => {
            throw new Error(`diverged by request ${request}: ${error.message}`);
          });
        }
      }

      // One last valid append makes a hashed tip to wait for.
      const last = validRequest().slice(0, 1);
      const tipParent = chain.head;
      last[0] = { ...last[0]!, number: (tipParent?.number ?? 0) + 1, parentHash: tipParent?.hash ?? null };
      const final = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ blocks: last }),
      });
      expect(final.status, `seed ${seed}: ${await final.clone().text()}`).toBe(200);
      chain.accept(last);

      const tip = chain.head!;
      await waitForTip(tip.hash, `the tip ${tip.number}`);
      expect(daemon.child.exitCode).toBeNull();
      expect((await getJson(`${base}/livez`)).status).toBe(200);
      const { body: status } = await getJson<StatusSnapshot>(`${base}/status`);
      expect(status.pipelines[0]?.state, `seed ${seed}`).not.toBe('failed');
      const stored = await db.query<{ number: string; hash: string | null }>(
        `SELECT number, hash FROM strata.ingest_blocks WHERE pipeline = 'model' ORDER BY number`,
      );
      expect(
        stored.map((row) => [Number(row.number), row.hash]),
        `seed ${seed}`,
      ).toEqual(chain.blocks.map((block) => [block.number, block.hash]));
      await expectFold(chain.blocks, (sql) => db.query(sql) as never);
      console.log(
        `fuzz seed ${seed}: ${requests} requests, ${chain.blocks.length} blocks accepted; outcomes:\n${[
          ...outcomes,
        ]
          .sort()
          .map(([key, count]) => `  ${key}: ${count}`)
          .join('\n')}`,
      );
      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
    } catch (error) {
      const warnings = daemon.logs.filter((line) => (line.level as number) >= 40).slice(-5);
      throw new Error(
        `seed ${seed} (replay: STRATA_FUZZ_SEED=${seed}): ${(error as Error).message}; last warnings: ${JSON.stringify(warnings)}`,
        { cause: error },
      );
    } finally {
      daemon.kill('SIGKILL');
    }
  }, 300_000);
});
