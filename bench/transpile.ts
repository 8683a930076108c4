// bench/transpile: the module cache (src/transpile/) on real Postgres (L2) and Redis (coalescing).
//  1. Cold fleet: 4 processes request the same 200 modules at once with empty caches → total
//     transpiles (target exactly 200) and wall time, vs one process transpiling the 200 alone.
//  2. L1 hit lookups per second (target ≥ 1,000,000/s), and L2 hit latency p50/p99 (fresh L1).
//  3. The pool (2 threads) vs calling oxc-transform directly in one thread, same modules, same
//     run (target ≥ 1.6× on 2 cores), and the pool's per-task overhead on a tiny module.
// Run: `npm run bench:transpile` (DATABASE_URL / REDIS_URL as for the tests).

import { mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { transformSync } from 'oxc-transform';
import { migrate } from '../src/db/migrator.ts';
import { createDb } from '../src/db/pool.ts';
import { createLogger } from '../src/logger.ts';
import { LocalCoalescer } from '../src/transpile/coalescer.ts';
import { L2Store } from '../src/transpile/l2-store.ts';
import { ModuleService } from '../src/transpile/module-service.ts';
import { TranspilePool } from '../src/transpile/transpile-pool.ts';
import { createTestDatabase, REDIS_URL } from '../test/helpers/database.ts';
import { startPeer } from '../test/helpers/module-peers.ts';

const MODULES = Number(process.env.MODULES ?? 200);
const FLEET = Number(process.env.FLEET ?? 4);
const log = createLogger({ level: 'silent', format: 'json' });

/** A realistic handler-sized TypeScript module (~12 KB): types, interfaces, classes, generics. */
function moduleSource(index: number): string {
  let source = `// module ${index}\nimport type { Readonly as R } from './types-${index}';\n`;
  for (let i = 0; i < 40; i++) {
    source += `export interface Row${i}<T extends string = string> { id: T; value: bigint; tags: readonly string[]; at?: Date }
export class Store${i}<K extends string> {
  private readonly rows = new Map<K, Row${i}<K>>();
  constructor(private readonly name: string = 'store-${index}-${i}') {}
  upsert(row: Row${i}<K>): this { this.rows.set(row.id, { ...row, tags: [...row.tags] }); return this; }
  total(): bigint { let sum = 0n; for (const row of this.rows.values()) sum += row.value * ${i + 1}n; return sum; }
}
export const handler${i} = async (event: { payload: { from: string; to: string; value: string } }): Promise<number> =>
  event.payload.from.length + event.payload.to.length + Number(BigInt(event.payload.value) % ${index + 7}n);
`;
  }
  return source;
}

function project(count: number, salt: string): { root: string; names: string[] } {
  const root = mkdtempSync(path.join(tmpdir(), 'strata-bench-transpile-'));
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    writeFileSync(path.join(root, `m${i}.ts`), `${moduleSource(i)}// ${salt}\n`);
    names.push(`m${i}`);
  }
  return { root, names };
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const database = await createTestDatabase('strata_bench_transpile');
try {
  await migrate({ url: database.url, log, connectTimeoutMs: 5_000 });
  console.log(
    `bench/transpile — ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}, Node ${process.version}, ${MODULES} modules of ~${fmt(moduleSource(0).length / 1024, 1)} KB\n`,
  );

  // ─── 1. cold fleet vs one process ───
  const fleetRun = async (processes: number, label: string) => {
    const { root, names } = project(MODULES, `${label}-${Date.now()}`);
    const prefix = `bench-transpile-${label}-${Date.now()}`;
    const peers = Array.from({ length: processes }, () =>
      startPeer({
        PEER_ROOT: root,
        DATABASE_URL: database.url,
        REDIS_URL,
        PEER_PREFIX: prefix,
        PEER_THREADS: '2',
      }),
    );
    await Promise.all(peers.map((peer) => peer.ready));
    const started = performance.now();
    const replies = await Promise.all(peers.map((peer) => peer.request(names)));
    const wallMs = performance.now() - started;
    await Promise.all(peers.map((peer) => peer.close()));
    const sum = (read: (r: (typeof replies)[number]) => number) =>
      replies.reduce((total, r) => total + read(r), 0);
    return {
      wallMs,
      transpiles: sum((r) => r.stats.transpiles),
      joins: sum((r) => r.stats.crossProcessJoins),
      l2Hits: sum((r) => r.stats.l2Hits),
      fallbacks: sum((r) => r.stats.waitTimeoutFallbacks),
    };
  };
  const alone = await fleetRun(1, 'alone');
  const fleet = await fleetRun(FLEET, 'fleet');
  console.log('1. Cold fleet');
  console.log(
    `   ${FLEET} processes × ${MODULES} modules: ${fleet.transpiles} transpiles in total (target exactly ${MODULES}), ` +
      `${fleet.joins} cross-process joins, ${fleet.l2Hits} L2 hits, ${fleet.fallbacks} wait fallbacks, wall ${fmt(fleet.wallMs)} ms`,
  );
  console.log(`   reference, 1 process alone: ${alone.transpiles} transpiles, wall ${fmt(alone.wallMs)} ms`);
  console.log(`   fleet wall / alone wall: ${fmt(fleet.wallMs / alone.wallMs, 2)}\n`);

  // ─── 2. L1 and L2 hits ───
  const db = createDb({ url: database.url, max: 4, connectTimeoutMs: 5_000, applicationName: 'bench', log });
  const pool = new TranspilePool({ threads: 2 });
  const { root, names } = project(MODULES, `hits-${Date.now()}`);
  const service = () =>
    new ModuleService({
      root,
      pool,
      l2: new L2Store(db, `file://${root}`),
      coalescer: new LocalCoalescer(),
      log,
      freshness: 'watch', // as the daemon runs it: the watcher keeps L1 fresh
    });
  const warm = service();
  await Promise.all(names.map((name) => warm.get(name)));
  for (const name of names) await warm.get(name); // aliases learnt, L1 filled
  const lookups = 2_000_000;
  let started = performance.now();
  for (let i = 0; i < lookups; i++) await warm.get(names[i % names.length]!);
  const l1PerSecond = lookups / ((performance.now() - started) / 1_000);
  started = performance.now();
  for (let i = 0; i < lookups; i++) warm.peek(names[i % names.length]!);
  const peekPerSecond = lookups / ((performance.now() - started) / 1_000);
  const l2Samples: number[] = [];
  for (let round = 0; round < 5; round++) {
    const cold = service(); // a new process: empty L1, L2 filled by `warm`
    for (const name of names) {
      const t = performance.now();
      const result = await cold.get(name);
      l2Samples.push(performance.now() - t);
      if (result.cache !== 'l2') throw new Error(`expected an L2 hit, got ${result.cache}`);
    }
  }
  l2Samples.sort((a, b) => a - b);
  console.log('2. Hits');
  console.log(
    `   L1 hit lookups: ${fmt(l1PerSecond)}/s via await get() (target ≥ 1,000,000/s); ${fmt(peekPerSecond)}/s via peek()`,
  );
  console.log(
    `   L2 hit (fresh L1, ${l2Samples.length} lookups of ~${fmt(moduleSource(0).length / 1024, 1)} KB modules): ` +
      `p50 ${fmt(quantile(l2Samples, 0.5), 2)} ms, p99 ${fmt(quantile(l2Samples, 0.99), 2)} ms\n`,
  );

  // ─── 3. pool vs direct ───
  const sources = names.map((_, i) => ({ file: `m${i}.ts`, source: moduleSource(i) }));
  const rounds = 3;
  for (const { file, source } of sources.slice(0, 20)) transformSync(file, source, { sourcemap: true }); // warm-up
  await Promise.all(sources.slice(0, 20).map(({ file, source }) => pool.transpile(file, source)));
  const directMs: number[] = [];
  const pooledMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let t = performance.now();
    // The same output the pool hands back: code and the source map as a JSON string.
    for (const { file, source } of sources)
      JSON.stringify(transformSync(file, source, { lang: 'ts', sourcemap: true }).map);
    directMs.push(performance.now() - t);
    t = performance.now();
    await Promise.all(sources.map(({ file, source }) => pool.transpile(file, source)));
    pooledMs.push(performance.now() - t);
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const tiny = 'export const a: number = 1;';
  const tinyTasks = 2_000;
  let t = performance.now();
  for (let i = 0; i < tinyTasks; i++)
    JSON.stringify(transformSync('tiny.ts', tiny, { lang: 'ts', sourcemap: true }).map);
  const tinyDirectUs = ((performance.now() - t) / tinyTasks) * 1_000;
  t = performance.now();
  for (let i = 0; i < tinyTasks; i++) await pool.transpile('tiny.ts', tiny);
  const tinyPooledUs = ((performance.now() - t) / tinyTasks) * 1_000;
  console.log('3. Pool vs direct');
  console.log(
    `   ${MODULES} modules, median of ${rounds}: direct oxc in one thread ${fmt(median(directMs))} ms, ` +
      `pool (2 threads) ${fmt(median(pooledMs))} ms → ${fmt(median(directMs) / median(pooledMs), 2)}× (target ≥ 1.6×)`,
  );
  console.log(
    `   per-task overhead (tiny module, one at a time): direct ${fmt(tinyDirectUs, 1)} µs, pool ${fmt(tinyPooledUs, 1)} µs → ${fmt(tinyPooledUs - tinyDirectUs, 1)} µs per task`,
  );
  await pool.close();
  await db.close();
} finally {
  await database.drop();
}
