// The handler API against a real LoadLayer on Postgres, in-thread: what handlers can do, and the
// clear errors they get when they misuse it. Every failed batch leaves the store as it was.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/pool.ts';
import { StrataError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { BatchExecutor } from '../../src/processing/batch-executor.ts';
import { EffectStore } from '../../src/processing/effect-store.ts';
import { createHandlers, type HandlerRegistry } from '../../src/processing/handler-api.ts';
import { InMemoryStore } from '../../src/processing/in-memory-store.ts';
import { LoadLayer } from '../../src/processing/load-layer.ts';
import { createPipelineTables } from '../../src/schema/ddl.ts';
import { defineSchema, type Schema } from '../../src/schema/define-schema.ts';
import { t } from '../../src/schema/fields.ts';
import type { Block } from '../../src/sources/types.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const schema = defineSchema({
  Token: { fields: { id: t.text(), owner: t.text(), amount: t.bigint(), seen: t.timestamptz().nullable() } },
});

let database: TestDatabase;
let db: Db;
const log = createLogger({ level: 'silent', format: 'json' });

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb({ url: database.url, max: 4, connectTimeoutMs: 5_000, applicationName: 'test', log });
  await createPipelineTables(db, 'api', schema);
  await db.query(
    `INSERT INTO "pipeline_api"."Token" (id, owner, amount) VALUES ('t1', 'alice', 10), ('t2', 'alice', 20), ('t3', 'bob', 30)`,
  );
});
afterAll(async () => {
  await db?.close();
  await database?.drop();
});

function executor(
  registry: HandlerRegistry<typeof schema>,
  strategy: 'two-pass' | 'prefetch' | 'auto' = 'two-pass',
  pipeline = 'api',
) {
  const handlers = registry as unknown as HandlerRegistry<Schema>;
  const store = new InMemoryStore(schema);
  const loader = new LoadLayer(db, pipeline, store);
  return {
    store,
    loader,
    executor: new BatchExecutor({
      pipeline,
      effects: new EffectStore(db, createLogger({ level: 'silent', format: 'json' })),
      schema,
      handlers: handlers.handlers,
      store,
      loader,
      log,
      strategy,
    }),
  };
}

const block = (number: number, events: Array<[string, Record<string, unknown>]>): Block => ({
  number,
  hash: null,
  parentHash: null,
  timestamp: 1_700_000_000 + number,
  events: events.map(([name, payload], logIndex) => ({ name, payload, logIndex })),
});

describe('handler API', () => {
  it('reads committed rows in one grouped query per entity and merges getWhere with memory', async () => {
    const handlers = createHandlers(schema);
    const seen: unknown[] = [];
    handlers.onEvent<{ id: string }>('read', async ({ event, context }) => {
      const token = await context.Token.get(event.payload.id);
      if (!context.isPreload) seen.push(token?.amount);
    });
    handlers.onEvent('mint', ({ context }) => {
      context.Token.set({ id: 't4', owner: 'alice', amount: 5n, seen: null });
    });
    handlers.onEvent('list', async ({ context }) => {
      const rows = await context.Token.getWhere({ owner: { _eq: 'alice' }, amount: { _lt: 20n } });
      if (!context.isPreload) seen.push(rows.map((row) => row.id).sort());
    });
    const { executor: run, loader } = executor(handlers);
    await run.run(
      [
        block(1, [
          ['read', { id: 't1' }],
          ['read', { id: 't3' }],
          ['read', { id: 'nope' }],
          ['mint', {}],
          ['list', {}],
        ]),
      ],
      1,
      false,
    );
    expect(seen).toEqual([10n, 30n, undefined, ['t1', 't4']]);
    // ids: one query for the three ids; getWhere: one filtered query.
    expect(loader.stats.queries).toBe(2);
  });

  it('getWhere: filters sharing all but their _eq field load in one query; rows come back in orderBy order', async () => {
    const handlers = createHandlers(schema);
    const seen: unknown[] = [];
    handlers.onEvent<{ owner: string }>('list', async ({ event, context }) => {
      const rows = await context.Token.getWhere(
        { owner: { _eq: event.payload.owner }, amount: { _gt: 5n } },
        { orderBy: [['amount', 'desc']] },
      );
      if (!context.isPreload) seen.push(rows.map((row) => row.id));
    });
    handlers.onEvent('mint', ({ context }) => {
      context.Token.set({ id: 't0', owner: 'alice', amount: 15n, seen: null });
    });
    handlers.onEvent('listAll', async ({ context }) => {
      // No orderBy: by id, whatever was in memory first.
      const rows = await context.Token.getWhere({ amount: { _gte: 10n } });
      if (!context.isPreload) seen.push(rows.map((row) => row.id));
    });
    const { executor: run, loader } = executor(handlers);
    await run.run(
      [
        block(1, [
          ['mint', {}],
          ['list', { owner: 'alice' }],
          ['list', { owner: 'bob' }],
          ['listAll', {}],
        ]),
      ],
      1,
      false,
    );
    expect(seen).toEqual([['t2', 't0', 't1'], ['t3'], ['t0', 't1', 't2', 't3']]);
    // alice's and bob's filters: one `owner = ANY($1) AND amount > $2` query; listAll its own.
    expect(loader.stats.queries).toBe(2);
  });

  it('auto: prefetch learns getWhere filters and ids with a suffix from payload fields, then loads them before the handlers run', async () => {
    const handlers = createHandlers(schema);
    const seen: unknown[] = [];
    handlers.onEvent<{ owner: string; ref: string }>('spend', async ({ event, context }) => {
      const mine = await context.Token.getWhere({ owner: { _eq: event.payload.owner }, amount: { _gt: 0n } });
      const marker = await context.Token.get(`${event.payload.ref}:0`);
      if (!context.isPreload) seen.push([mine.length, marker?.amount ?? null]);
    });
    const { executor: run, loader } = executor(handlers, 'auto');
    await run.run([block(1, [['spend', { owner: 'alice', ref: 'ref-1' }]])], 1, false);
    expect(run.lastLoadMode).toBe('two-pass'); // nothing learned yet
    await db.query(`INSERT INTO "pipeline_api"."Token" (id, owner, amount) VALUES ('ref-2:0', 'zed', 7)`);
    const before = loader.stats.queries;
    await run.run(
      [
        block(2, [
          ['spend', { owner: 'bob', ref: 'ref-2' }],
          ['spend', { owner: 'alice', ref: 'ref-3' }],
        ]),
      ],
      2,
      false,
    );
    // Prefetch named every read: one query for the two owners, one for the two ids, no misses.
    expect(run.lastLoadMode).toBe('prefetch');
    expect(run.executeMisses).toBe(0);
    expect(loader.stats.queries - before).toBe(2);
    expect(seen).toEqual([
      [2, null],
      [1, 7n],
      [2, null],
    ]);
    await db.query(`DELETE FROM "pipeline_api"."Token" WHERE id = 'ref-2:0'`);
  });

  it('a loaded getWhere filter stays loaded across batches until the store forgets rows of its entity', async () => {
    const handlers = createHandlers(schema);
    const seen: number[] = [];
    handlers.onEvent('list', async ({ context }) => {
      const rows = await context.Token.getWhere({ owner: { _eq: 'alice' } });
      if (!context.isPreload) seen.push(rows.length);
    });
    const { executor: run, loader, store } = executor(handlers);
    await run.run([block(1, [['list', {}]])], 1, false);
    const afterFirst = loader.stats.queries;
    await run.run([block(2, [['list', {}]])], 2, false);
    expect(loader.stats.queries).toBe(afterFirst); // answered from memory
    store.dropLoaded(); // the store forgot alice's rows: the next batch reads them again
    await run.run([block(3, [['list', {}]])], 3, false);
    expect(loader.stats.queries).toBe(afterFirst + 1);
    expect(seen).toEqual([2, 2, 2]);
  });

  it('names the pipeline, block, event and log index when a handler throws, and undoes the batch', async () => {
    const handlers = createHandlers(schema);
    handlers.onEvent('mint', ({ context }) => {
      context.Token.set({ id: 'x1', owner: 'carol', amount: 1n, seen: null });
    });
    handlers.onEvent('boom', () => {
      throw new Error('kaboom');
    });
    const { executor: run, store } = executor(handlers);
    const error = (await run
      .run(
        [
          block(7, [
            ['mint', {}],
            ['boom', {}],
          ]),
        ],
        1,
        false,
      )
      .catch((e: unknown) => e)) as StrataError;
    expect(error).toBeInstanceOf(StrataError);
    expect(error.code).toBe('STRATA_ERR_HANDLER_FAILED');
    expect(error.message).toMatch(/boom failed in pipeline api at block 7, log index 1: kaboom/);
    expect(error.details).toMatchObject({ pipeline: 'api', block: 7, event: 'boom', logIndex: 1 });
    expect(store.table('Token').current('x1')).toBeUndefined();
  });

  it('rejects a value that does not match the schema, naming the field', async () => {
    const handlers = createHandlers(schema);
    handlers.onEvent('bad', ({ context }) => {
      context.Token.set({ id: 'b', owner: 'dave', amount: 12 as unknown as bigint, seen: null });
    });
    const { executor: run } = executor(handlers);
    const error = (await run
      .run([block(1, [['bad', {}]])], 1, false)
      .catch((e: unknown) => e)) as StrataError;
    expect(error.code).toBe('STRATA_ERR_HANDLER_FAILED');
    expect(error.details?.causeCode).toBe('STRATA_ERR_ENTITY_INVALID');
    expect(error.message).toMatch(/Token\.amount must be bigint, got 12 \(number\)/);
  });

  it('getOrThrow names the missing entity; bad getWhere filters are refused', async () => {
    const handlers = createHandlers(schema);
    handlers.onEvent('missing', async ({ context }) => {
      await context.Token.getOrThrow('ghost');
    });
    handlers.onEvent('filter', async ({ context }) => {
      await context.Token.getWhere({ colour: { _eq: 'red' } } as never);
    });
    const { executor: run } = executor(handlers);
    const missing = (await run
      .run([block(1, [['missing', {}]])], 1, false)
      .catch((e: unknown) => e)) as StrataError;
    expect(missing.details?.causeCode).toBe('STRATA_ERR_ENTITY_NOT_FOUND');
    expect(missing.message).toMatch(/Token ghost does not exist/);
    const filter = (await run
      .run([block(2, [['filter', {}]])], 2, false)
      .catch((e: unknown) => e)) as StrataError;
    expect(filter.details?.causeCode).toBe('STRATA_ERR_FILTER_INVALID');
    expect(filter.message).toMatch(/unknown field colour/);
  });

  it('using context after the handler resolved fails the batch with "missed an await"', async () => {
    const handlers = createHandlers(schema);
    let thrown: unknown;
    handlers.onEvent('leaky', ({ context }) => {
      // Not awaited: the write happens after the handler has returned. (The handler catches what
      // the late call throws, so this test has no unhandled rejection; the worker entry ignores
      // those of this code, since the batch fails anyway.)
      void Promise.resolve()
        .then(() => context.Token.set({ id: 'late', owner: 'eve', amount: 1n, seen: null }))
        .catch((error: unknown) => {
          thrown = error;
        });
    });
    const { executor: run, store } = executor(handlers);
    const error = (await run
      .run([block(3, [['leaky', {}]])], 1, false)
      .catch((e: unknown) => e)) as StrataError;
    expect(error.code).toBe('STRATA_ERR_CONTEXT_EXPIRED');
    expect(error.message).toMatch(
      /Token\.set was called after the leaky handler \(block 3, log index 0\) had resolved — a missed await\?/,
    );
    expect(store.table('Token').current('late')).toBeUndefined();
    expect((thrown as StrataError).code).toBe('STRATA_ERR_CONTEXT_EXPIRED');
  });

  it('prefetch learns which payload fields are ids and loads them before executing', async () => {
    const handlers = createHandlers(schema);
    handlers.onEvent<{ token: string }>('touch', async ({ event, context }) => {
      const token = await context.Token.get(event.payload.token);
      if (token !== undefined) context.Token.set({ ...token, seen: new Date(0) });
    });
    const { executor: run, loader } = executor(handlers, 'prefetch');
    await run.run([block(1, [['touch', { token: 't1' }]])], 1, false); // learns: miss in execute
    const before = loader.stats.queries;
    await run.run(
      [
        block(2, [
          ['touch', { token: 't2' }],
          ['touch', { token: 't3' }],
        ]),
      ],
      2,
      false,
    );
    // Both reads were prefetched in one query; the execute pass missed nothing.
    expect(loader.stats.queries - before).toBe(1);
  });
});

describe('an entity held whole (its table was empty when processing began)', () => {
  it('answers absent ids and filters from memory, and reads the database again once it drops a row', async () => {
    await createPipelineTables(db, 'whole', schema);
    const handlers = createHandlers(schema);
    const seen: unknown[] = [];
    handlers.onEvent<{ token: string; owner: string }>('mint', async ({ event, context }) => {
      const token = await context.Token.get(event.payload.token);
      const owned = await context.Token.getWhere({ owner: { _eq: event.payload.owner } });
      if (!context.isPreload) seen.push([token?.amount ?? null, owned.length]);
      const amount = (token?.amount ?? 0n) + 1n;
      context.Token.set({ id: event.payload.token, owner: event.payload.owner, amount, seen: null });
    });
    const { executor: run, loader, store } = executor(handlers, 'auto', 'whole');
    expect(await loader.markEmptyTablesComplete()).toEqual(['Token']);
    const mint = (token: string) => ['mint', { token, owner: 'x' }] as [string, Record<string, unknown>];
    await run.run([block(1, [mint('a'), mint('b')])], 1, false);
    expect(run.lastLoadMode).toBe('none');
    expect(loader.stats.queries).toBe(0);
    // What the writer commits for that batch; then the store drops it (its capacity rule).
    await db.query(
      `INSERT INTO "pipeline_whole"."Token" (id, owner, amount) VALUES ('a', 'x', 1), ('b', 'x', 1)`,
    );
    store.dropCommitted(1);
    expect(store.table('Token').isComplete).toBe(false);
    await run.run([block(2, [mint('a')])], 2, false);
    expect(run.lastLoadMode).toBe('two-pass');
    expect(loader.stats.queries).toBeGreaterThan(0);
    expect(seen).toEqual([
      [null, 0],
      [null, 1],
      [1n, 2],
    ]);
  });

  it('is not assumed for a table that has rows', async () => {
    const { loader, store } = executor(createHandlers(schema), 'auto', 'api');
    expect(await loader.markEmptyTablesComplete()).toEqual([]);
    expect(store.table('Token').isComplete).toBe(false);
  });
});
