// One process of a module-cache fleet, for the cross-process tests and bench/transpile: a real
// ModuleService on Postgres (L2) and Redis (coalescing) in its own OS process, driven over stdio.
//   env: PEER_ROOT (project folder), DATABASE_URL, REDIS_URL (optional), PEER_PREFIX (Redis
//        namespace), PEER_WAIT_MS (bounded wait of a loser), PEER_THREADS (pool threads)
//   stdin, one JSON per line: { "get": ["a", "b", …] } → all requested concurrently, then
//        { "results": [{ path, cache, code | codeLength }], "stats": {…}, "ms": wall time }
//   stdout: { "ready": true } once Redis is connected (or right away without Redis).
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { createDb } from '../../src/db/pool.ts';
import { createLogger } from '../../src/logger.ts';
import { type Coalescer, LocalCoalescer, RedisCoalescer } from '../../src/transpile/coalescer.ts';
import { L2Store } from '../../src/transpile/l2-store.ts';
import { ModuleService } from '../../src/transpile/module-service.ts';
import { TranspilePool } from '../../src/transpile/transpile-pool.ts';

const root = process.env.PEER_ROOT!;
const log = createLogger({ level: 'silent', format: 'json' });
const db = createDb({
  url: process.env.DATABASE_URL!,
  max: 8,
  connectTimeoutMs: 5_000,
  applicationName: 'module-peer',
  log,
});
const pool = new TranspilePool({ threads: Number(process.env.PEER_THREADS ?? 1) });
let coalescer: Coalescer = new LocalCoalescer();
const connections: Redis[] = [];
if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') {
  const client = new Redis(process.env.REDIS_URL, { maxRetriesPerRequest: 1 });
  const subscriber = new Redis(process.env.REDIS_URL);
  for (const connection of [client, subscriber]) connection.on('error', () => undefined);
  connections.push(client, subscriber);
  await Promise.all(connections.map((c) => (c.status === 'ready' ? undefined : once(c, 'ready'))));
  coalescer = new RedisCoalescer({
    client,
    subscriber,
    log,
    prefix: process.env.PEER_PREFIX ?? 'strata:modules',
    waitMs: Number(process.env.PEER_WAIT_MS ?? 5_000),
  });
}
const modules = new ModuleService({ root, pool, l2: new L2Store(db, `file://${root}`), coalescer, log });

const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
write({ ready: true });

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { get?: string[] };
  if (command.get === undefined) break;
  const started = performance.now();
  const results = await Promise.all(
    command.get.map(async (requested) => {
      const result = await modules.get(requested);
      return {
        path: result.canonicalPath,
        cache: result.cache,
        ...(result.code.length < 10_000 ? { code: result.code } : { codeLength: result.code.length }),
      };
    }),
  );
  const { transpileMs: _ms, ...stats } = modules.stats;
  write({ results, stats, ms: performance.now() - started });
}
for (const connection of connections) connection.disconnect();
await pool.close();
await db.close();
