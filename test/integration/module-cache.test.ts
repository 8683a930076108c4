// The module cache against real Postgres (L2), real Redis (coalescing) and the real piscina pool:
// the pitfalls of ../shared/reference/transpile-cache.md, one test each.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrator.ts';
import { createDb, type Db } from '../../src/db/pool.ts';
import { buildApp } from '../../src/http/app.ts';
import { etagMatches } from '../../src/http/routes/modules.ts';
import { createLogger } from '../../src/logger.ts';
import { type Coalescer, LocalCoalescer, RedisCoalescer } from '../../src/transpile/coalescer.ts';
import { ModuleInvalidation } from '../../src/transpile/invalidation.ts';
import { L2Store } from '../../src/transpile/l2-store.ts';
import { buildModules } from '../../src/transpile/module-build.ts';
import { ModuleService, ModuleSyntaxError } from '../../src/transpile/module-service.ts';
import { TranspilePool, type TranspileResult } from '../../src/transpile/transpile-pool.ts';
import { createTestDatabase, REDIS_URL, type TestDatabase } from '../helpers/database.ts';

const log = createLogger({ level: 'silent', format: 'json' });
let database: TestDatabase;
let db: Db;
let pool: TranspilePool;
const redisConnections: Redis[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate({ url: database.url, log, connectTimeoutMs: 5_000 });
  db = createDb({ url: database.url, max: 6, connectTimeoutMs: 5_000, applicationName: 'test', log });
  pool = new TranspilePool({ threads: 2 });
});
afterAll(async () => {
  for (const connection of redisConnections) connection.disconnect();
  await pool?.close();
  await db?.close();
  await database?.drop();
});

function project(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'strata-modules-'));
  for (const [file, source] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), source);
  }
  return root;
}

/** The real pool, with a gate in front of it so a test can hold a transpile mid-flight. */
class GatedPool {
  calls = 0;
  private release: (() => void) | null = null;
  private gate: Promise<void> | null = null;
  hold(): void {
    this.gate = new Promise((resolve) => {
      this.release = resolve;
    });
  }
  open(): void {
    this.release?.();
    this.gate = null;
  }
  async transpile(file: string, source: string): Promise<TranspileResult> {
    this.calls += 1;
    if (this.gate !== null) await this.gate;
    return pool.transpile(file, source);
  }
}

function service(root: string, options: { pool?: GatedPool; coalescer?: Coalescer; realm?: string } = {}) {
  const counting = options.pool ?? new GatedPool();
  return {
    pool: counting,
    modules: new ModuleService({
      root,
      pool: counting as unknown as TranspilePool,
      l2: new L2Store(db, options.realm ?? `file://${root}`),
      coalescer: options.coalescer ?? new LocalCoalescer(),
      log,
    }),
  };
}

/** A coalescer on ready connections (until then it transpiles locally, by design). */
async function redisCoalescer(prefix: string, waitMs = 5_000): Promise<RedisCoalescer> {
  const client = new Redis(REDIS_URL, { enableOfflineQueue: true });
  const subscriber = new Redis(REDIS_URL);
  redisConnections.push(client, subscriber);
  await Promise.all([client, subscriber].map((c) => (c.status === 'ready' ? undefined : once(c, 'ready'))));
  return new RedisCoalescer({ client, subscriber, log, prefix, waitMs });
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 20));

/** Waits (with a deadline, not a fixed sleep) until `reached()` holds: a busy machine may need longer than a tick. */
async function until(reached: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!reached()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await tick();
  }
}

describe('module cache', () => {
  it('canonical paths: aliases share one entry; nothing outside the root is served', async () => {
    const root = project({ 'a.ts': 'export const a: number = 1;', 'dir/b.tsx': 'export const b = <div/>;' });
    const outside = mkdtempSync(path.join(tmpdir(), 'strata-outside-'));
    writeFileSync(path.join(outside, 'secret.ts'), 'export const s = 1;');
    symlinkSync(path.join(outside, 'secret.ts'), path.join(root, 'link.ts'));
    const { modules, pool: counting } = service(root);
    expect(await modules.resolve('a')).toBe('a.ts');
    expect(await modules.resolve('/./dir/../a.ts')).toBe('a.ts');
    expect(await modules.resolve('dir/b')).toBe('dir/b.tsx');
    for (const bad of ['../x.ts', 'dir/../../x', 'link.ts', 'nope', `${outside}/secret.ts`]) {
      await expect(modules.resolve(bad)).rejects.toMatchObject({ code: 'STRATA_ERR_MODULE_NOT_FOUND' });
    }
    const first = await modules.get('a');
    const second = await modules.get('a.ts');
    expect([first.cache, second.cache]).toEqual(['miss', 'l1']);
    expect(counting.calls).toBe(1);
    expect(first.code).toContain('export const a = 1');
  });

  it('N concurrent readers → one transpile; L2 serves a new process; an edit is a new version', async () => {
    const root = project({ 'm.ts': 'export const m: string = "v1";' });
    const { modules, pool: counting } = service(root);
    const results = await Promise.all(Array.from({ length: 10 }, () => modules.get('m')));
    expect(counting.calls).toBe(1);
    expect(results.filter((r) => r.cache === 'miss')).toHaveLength(1);
    expect(results.filter((r) => r.cache === 'coalesced')).toHaveLength(9);
    const fresh = service(root); // another process: empty L1, same L2
    expect((await fresh.modules.get('m')).cache).toBe('l2');
    expect(fresh.pool.calls).toBe(0);
    writeFileSync(path.join(root, 'm.ts'), 'export const m: string = "v2";');
    const edited = await fresh.modules.get('m');
    expect(edited.cache).toBe('miss');
    expect(edited.code).toContain('v2');
    expect(edited.etag).not.toBe(results[0]!.etag);
  });

  it('a syntax error reaches every waiter, is never cached, and frees the slot', async () => {
    const root = project({ 'bad.ts': 'export const x: = 1;' });
    const { modules, pool: counting } = service(root);
    const outcomes = await Promise.allSettled(Array.from({ length: 3 }, () => modules.get('bad')));
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as ModuleSyntaxError;
      expect(error).toBeInstanceOf(ModuleSyntaxError);
      expect(error.diagnostic).toMatchObject({ file: 'bad.ts', line: 1, column: 17 });
    }
    expect(counting.calls).toBe(1);
    await expect(modules.get('bad')).rejects.toBeInstanceOf(ModuleSyntaxError);
    expect(counting.calls).toBe(2); // not cached
    writeFileSync(path.join(root, 'bad.ts'), 'export const x: number = 1;');
    expect((await modules.get('bad')).cache).toBe('miss');
  });

  it('invalidate during a transpile: neither L1 nor L2 is refilled with the stale bytes', async () => {
    const root = project({ 'slow.ts': 'export const s = 1;' });
    const gated = new GatedPool();
    const { modules } = service(root, { pool: gated });
    gated.hold();
    const pending = modules.get('slow');
    await until(() => gated.calls === 1, 'the transpile is in flight');
    await modules.invalidate(['slow.ts']);
    gated.open();
    expect((await pending).cache).toBe('miss'); // its caller still gets the bytes
    expect(modules.stats.l1WritesSkipped).toBe(1);
    expect(modules.stats.staleWritesRejected).toBe(1);
    const row = await new L2Store(db, `file://${root}`).read('slow.ts');
    expect(row.body).toBeNull(); // still the tombstone
    expect(row.generation).toBe(1);
    expect((await modules.get('slow')).cache).toBe('miss');
  });

  it('A in flight → invalidate → B in flight: A settling does not evict B', async () => {
    const root = project({ 'ab.ts': 'export const v = 1;' });
    const gated = new GatedPool();
    const { modules } = service(root, { pool: gated });
    gated.hold();
    const a = modules.get('ab');
    await until(() => gated.calls === 1, 'A is in flight');
    await modules.invalidate(['ab.ts']);
    const b = modules.get('ab');
    await until(() => gated.calls === 2, 'B is in flight');
    const c = modules.get('ab'); // joins B
    // c has resolved and hashed its file and is parked on B before B settles
    await until(() => modules.stats.inProcessJoins === 1, 'c joined B');
    gated.open();
    await Promise.all([a, b, c]);
    expect(gated.calls).toBe(2);
    expect((await c).cache).toBe('coalesced');
    expect((await modules.get('ab')).cache).toBe('l1'); // B filled L1 (its generation is current)
  });

  it('a bulk wipe fences writers that captured generation 0 for a path with no row', async () => {
    const root = project({});
    const l2 = new L2Store(db, `file://${root}`);
    const captured = (await l2.read('never-cached.ts')).generation;
    expect(captured).toBe(0);
    await l2.wipe();
    const entry = { body: 'stale', sourceMap: '{}', sourceHash: 'h', transpilerVersion: 'oxc-x' };
    expect(await l2.write('never-cached.ts', entry, captured)).toBe(false);
    expect((await l2.read('never-cached.ts')).body).toBeNull();
    const fresh = (await l2.read('never-cached.ts')).generation;
    expect(await l2.write('never-cached.ts', entry, fresh)).toBe(true);
  });

  it('two processes over Redis: exactly one transpile per module, no false coalescing across paths', async () => {
    const files = Object.fromEntries(
      Array.from({ length: 20 }, (_, i) => [`m${i}.ts`, `export const v${i}: number = ${i};`]),
    );
    const root = project(files);
    const prefix = `strata-test-${Date.now()}`;
    const one = service(root, { coalescer: await redisCoalescer(prefix) });
    const two = service(root, { coalescer: await redisCoalescer(prefix) });
    const names = Object.keys(files).map((file) => file.replace('.ts', ''));
    const results = await Promise.all([
      ...names.map((n) => one.modules.get(n)),
      ...names.map((n) => two.modules.get(n)),
    ]);
    expect(one.pool.calls + two.pool.calls).toBe(20);
    for (const [index, result] of results.entries())
      expect(result.code).toContain(`v${index % 20} = ${index % 20}`);
  });

  it('a winner that never reports (dead, or the wake-up lost) → the others fall back within the bounded wait', async () => {
    const root = project({ 'w.ts': 'export const w = 1;' });
    const prefix = `strata-test-dead-${Date.now()}`;
    const coalescer = await redisCoalescer(prefix, 300);
    const { modules, pool: counting } = service(root, { coalescer });
    // A "winner" holds every lease of this prefix and never publishes: the lease of a dead process.
    const client = redisConnections[redisConnections.length - 2]!;
    const { sourceHash } = await modules.fingerprint(await modules.resolve('w'));
    const key = `w.ts\0${sourceHash}\0${(await import('../../src/transpile/transpile-pool.ts')).TRANSPILER_VERSION}`;
    await client.set(`${prefix}:lease:${key}`, 'dead-winner', 'PX', 60_000);
    const started = Date.now();
    const result = await modules.get('w');
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(result.code).toContain('export const w = 1');
    expect(counting.calls).toBe(1);
    expect(modules.stats.waitTimeoutFallbacks).toBe(1);
  });

  it('shutdown with parked waiters: closing the coalescer releases them at once (nothing hangs)', async () => {
    const root = project({ 's.ts': 'export const s = 1;' });
    const prefix = `strata-test-shutdown-${Date.now()}`;
    const coalescer = await redisCoalescer(prefix, 60_000); // a wait far longer than the test
    const { modules } = service(root, { coalescer });
    const client = redisConnections[redisConnections.length - 2]!;
    const { sourceHash } = await modules.fingerprint(await modules.resolve('s'));
    const { TRANSPILER_VERSION } = await import('../../src/transpile/transpile-pool.ts');
    await client.set(
      `${prefix}:lease:s.ts\0${sourceHash}\0${TRANSPILER_VERSION}`,
      'dead-winner',
      'PX',
      60_000,
    );
    const parked = modules.get('s');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const started = Date.now();
    await coalescer.close();
    const result = await parked; // re-read L2, then its own transpile: no 60 s wait
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(result.code).toContain('export const s = 1');
  });

  it('Redis unreachable → modules are still served (transpiled locally)', async () => {
    const root = project({ 'r.ts': 'export const r = 1;' });
    const client = new Redis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    const subscriber = new Redis('redis://127.0.0.1:1', { lazyConnect: true, retryStrategy: () => null });
    client.on('error', () => undefined);
    subscriber.on('error', () => undefined);
    const coalescer = new RedisCoalescer({ client, subscriber, log, waitMs: 200 });
    const { modules } = service(root, { coalescer });
    expect((await modules.get('r')).cache).toBe('miss');
    client.disconnect();
    subscriber.disconnect();
  });

  it('an invalidation reaches every peer over Redis; the file watcher invalidates edited files', async () => {
    const root = project({ 'p.ts': 'export const p = 1;' });
    const prefix = `strata-test-inv-${Date.now()}`;
    const one = service(root);
    const two = service(root);
    const peers: ModuleInvalidation[] = [];
    for (const s of [one, two]) {
      const client = new Redis(REDIS_URL, { enableOfflineQueue: true });
      const subscriber = new Redis(REDIS_URL);
      redisConnections.push(client, subscriber);
      await Promise.all(
        [client, subscriber].map((c) => (c.status === 'ready' ? undefined : once(c, 'ready'))),
      );
      peers.push(new ModuleInvalidation({ modules: s.modules, log, redis: { client, subscriber }, prefix }));
    }
    await new Promise((resolve) => setTimeout(resolve, 300)); // subscriptions registered
    await one.modules.get('p');
    expect((await two.modules.get('p')).cache).toBe('l2');
    expect((await two.modules.get('p')).cache).toBe('l1');
    await peers[0]!.invalidate(['p.ts']);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await two.modules.get('p')).cache).toBe('miss'); // peer's L1 dropped, L2 tombstoned

    await peers[1]!.watch(root);
    writeFileSync(path.join(root, 'p.ts'), 'export const p = 2;');
    const l2 = new L2Store(db, `file://${root}`);
    const before = (await l2.read('p.ts')).generation;
    const deadline = Date.now() + 5_000;
    while ((await l2.read('p.ts')).generation === before && Date.now() < deadline) await tick();
    expect((await l2.read('p.ts')).generation).toBeGreaterThan(before);
    for (const peer of peers) peer.close();
  });

  it('builds handlers into a build folder: imports rewritten, JSON copied, stack traces map to the user file', async () => {
    const root = realpathSync(
      project({
        'handlers.ts': [
          "import { twice } from './lib/math';",
          "import data from './data.json' with { type: 'json' };",
          'export async function run(): Promise<number> {',
          "  const { lazy } = await import('./lazy.ts');",
          '  return twice(data.n) + lazy;',
          '}',
          'export function fail(): never {',
          "  throw new Error('boom');",
          '}',
        ].join('\n'),
        'lib/math.ts': 'export const twice = (n: number): number => n * 2;',
        'lazy.ts': 'export const lazy: number = 100;',
        'data.json': '{ "n": 21 }',
        'escape.ts': "import x from '../outside.ts';\nexport default x;",
      }),
    );
    writeFileSync(path.join(path.dirname(root), 'outside.ts'), 'export default 1;');
    const { modules } = service(root);
    const buildRoot = path.join(root, '.strata/build');
    const entry = path.join(root, 'handlers.ts');
    const build = await buildModules(modules, [entry], buildRoot);
    expect([...build.sources].sort()).toEqual(
      ['data.json', 'handlers.ts', 'lazy.ts', 'lib/math.ts'].map((file) => path.join(root, file)),
    );
    const script = `const m = await import(${JSON.stringify(pathToFileURL(build.builtPath(entry)).href)});
console.log(await m.run());
try { m.fail(); } catch (error) { console.log(error.stack.split('\\n')[1]); }`;
    const output = execFileSync(process.execPath, [
      '--enable-source-maps',
      '--input-type=module',
      '-e',
      script,
    ])
      .toString()
      .split('\n');
    expect(output[0]).toBe('142');
    expect(output[1]).toContain(`${path.join(root, 'handlers.ts')}:8`); // the user's file and line

    // The same graph builds to the same folder; an edit anywhere in it to a new one.
    expect((await buildModules(modules, [entry], buildRoot)).id).toBe(build.id);
    writeFileSync(path.join(root, 'lazy.ts'), 'export const lazy: number = 200;');
    const edited = await buildModules(modules, [entry], buildRoot);
    expect(edited.id).not.toBe(build.id);
    expect(existsSync(build.dir)).toBe(true); // a running pipeline may still use the old one
    await expect(buildModules(modules, [path.join(root, 'escape.ts')], buildRoot)).rejects.toMatchObject({
      code: 'STRATA_ERR_CONFIG_INVALID',
      message: expect.stringContaining("imports '../outside.ts'"),
    });
  });

  it('GET /v1/modules/*: 200 with ETag and cache layer, 304 on If-None-Match, 404 outside, 422 on a syntax error', async () => {
    const root = project({ 'h.ts': 'export const h: number = 1;', 'broken.ts': 'export const b: = 1;' });
    const { modules, pool: counting } = service(root);
    const app = buildApp({
      log,
      bodyLimitBytes: 1_000_000,
      status: () => ({}) as never,
      readiness: async () => [],
      metrics: new Registry(),
      modules: { modules },
    });
    const first = await app.inject({ method: 'GET', url: '/v1/modules/h' });
    expect(first.statusCode).toBe(200);
    expect(first.headers).toMatchObject({
      'x-strata-cache': 'miss',
      'content-type': 'text/javascript; charset=utf-8',
    });
    expect(first.body).toContain('export const h = 1');
    expect(first.body).toContain('//# sourceMappingURL=h.ts?map');
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[0-9a-f]{32}-oxc-[\d.]+"$/);
    expect((await app.inject({ method: 'GET', url: '/v1/modules/h.ts' })).headers['x-strata-cache']).toBe(
      'l1',
    );
    const notModified = await app.inject({
      method: 'GET',
      url: '/v1/modules/h',
      headers: { 'if-none-match': `W/${etag}` },
    });
    expect(notModified.statusCode).toBe(304);
    expect(counting.calls).toBe(1);
    const map = await app.inject({ method: 'GET', url: '/v1/modules/h.ts?map' });
    expect(JSON.parse(map.body)).toMatchObject({ version: 3 });
    // A traversal never reaches a file (the URL is normalized, or resolve refuses it).
    const outside = await app.inject({ method: 'GET', url: '/v1/modules/%2e%2e/package.json' });
    expect(outside.statusCode).toBe(404);
    expect(outside.body).not.toContain('"dependencies"');
    const missing = await app.inject({ method: 'GET', url: '/v1/modules/nope' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('STRATA_ERR_MODULE_NOT_FOUND');
    const broken = await app.inject({ method: 'GET', url: '/v1/modules/broken' });
    expect(broken.statusCode).toBe(422);
    expect(broken.json().error).toMatchObject({
      code: 'STRATA_ERR_MODULE_SYNTAX',
      details: { diagnostic: { file: 'broken.ts', line: 1, column: 17 } },
    });
    await app.close();
  });

  it('If-None-Match: lists, weak tags and * match the strong ETag', () => {
    const etag = '"abc-oxc-0.151.0"';
    expect(etagMatches(etag, etag)).toBe(true);
    expect(etagMatches(`W/${etag}`, etag)).toBe(true);
    expect(etagMatches(`"other", W/${etag}`, etag)).toBe(true);
    expect(etagMatches('*', etag)).toBe(true);
    expect(etagMatches('"abc"', etag)).toBe(false);
    expect(etagMatches(undefined, etag)).toBe(false);
  });
});
