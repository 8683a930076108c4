// The module service (main-thread side of the module cache): a project's source files served as
// transpiled JavaScript, through
//   L1 (in-process LRU bounded by bytes) → in-process in-flight dedup → L2 (Postgres, shared by
//   the fleet) → cross-process coalescing (a `Coalescer`) → the transpile pool (piscina + oxc).
//
// Invariants (each has a test in test/integration/module-cache.test.ts):
//  - Paths are canonical: `handlers`, `handlers.ts` and `./x/../handlers.ts` are one entry;
//    nothing outside the project root is ever read (no traversal, no symlink escape).
//  - The key of a transpile is (canonical path, source hash, transpiler version): an edited file
//    or an upgraded transpiler never gets old bytes, even before an invalidation arrives.
//  - Generation guards: invalidation bumps a per-path and a global generation synchronously,
//    before any await. A transpile snapshots them before its first await and skips its L1 write
//    if they moved (its own caller still gets its bytes). The L2 write is fenced by the row
//    generation captured at the L2 read (src/transpile/l2-store.ts).
//  - In-flight dedup: concurrent requests for one key share one promise; the entry is deleted on
//    settle only if it is still the same promise; invalidation forgets it (later callers start
//    afresh); an error (a syntax error's diagnostic) is shared by every waiter and never cached.
//  - L2 is an accelerator: a failed L2 read or write is logged and counted, never surfaced.
//  - Freshness of L1: with `freshness: 'hash'` every request re-reads and hashes the file before
//    L1 (always right, ~10 µs). With `freshness: 'watch'` (the daemon, which always runs the file
//    watcher) an L1 hit answers from memory — request path → canonical path → entry, no file
//    system access — and the watcher's invalidation keeps it fresh. That is what lets L1 serve
//    millions of lookups a second; misses still hash the source, so keys stay content-addressed.

import { createHash } from 'node:crypto';
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { isInside } from '../path-inside.ts';
import type { Coalescer } from './coalescer.ts';
import type { L2Store } from './l2-store.ts';
import { TRANSPILER_VERSION, type TranspileDiagnostic, type TranspilePool } from './transpile-pool.ts';

export type CacheLayer = 'l1' | 'l2' | 'coalesced' | 'miss';

export interface ModuleResult {
  canonicalPath: string;
  code: string;
  map: string;
  /** Quoted strong ETag: the source's content hash and the transpiler version. */
  etag: string;
  cache: CacheLayer;
}

export interface PreparedModule {
  canonicalPath: string;
  source: string;
  sourceHash: string;
  etag: string;
}

interface L1Entry {
  sourceHash: string;
  code: string;
  map: string;
  /** The answer to an L1 hit, built once (a hit allocates nothing). */
  hit: ModuleResult;
}

export interface ModuleServiceStats {
  l1Hits: number;
  l2Hits: number;
  inProcessJoins: number;
  crossProcessJoins: number;
  transpiles: number;
  syntaxErrors: number;
  staleWritesRejected: number;
  l1WritesSkipped: number;
  l2Failures: number;
  waitTimeoutFallbacks: number;
  transpileMs: number[];
}

/** The module service's counters plus transpile quantiles and the pool's figures. */
export type ModuleCacheStatus = Omit<ModuleServiceStats, 'transpileMs'> & {
  transpileP50Ms: number;
  transpileP99Ms: number;
  pool: { threads: number; utilization: number; completed: number; queued: number };
};

export interface ModuleServiceOptions {
  /** Project root: the only folder modules are served from. */
  root: string;
  pool: TranspilePool;
  l2: L2Store | null;
  coalescer: Coalescer;
  log: Logger;
  /** L1 bound in bytes of transpiled code and maps (default 64 MiB). */
  l1MaxBytes?: number;
  /** How an L1 hit knows it is fresh (see the invariants above); default 'hash'. */
  freshness?: 'hash' | 'watch';
  /** Called with each transpile's duration (the daemon feeds its histogram). */
  onTranspile?: (durationMs: number) => void;
}

const EXTENSIONS = ['', '.ts', '.tsx', '.mts', '.js', '.mjs'];

export class ModuleSyntaxError extends StrataError {
  readonly diagnostic: TranspileDiagnostic;
  constructor(diagnostic: TranspileDiagnostic) {
    super(
      'STRATA_ERR_MODULE_SYNTAX',
      `${diagnostic.file}:${diagnostic.line}:${diagnostic.column}: ${diagnostic.message}`,
      { details: { diagnostic } },
    );
    this.diagnostic = diagnostic;
  }
}

export class ModuleService {
  readonly stats: ModuleServiceStats = {
    l1Hits: 0,
    l2Hits: 0,
    inProcessJoins: 0,
    crossProcessJoins: 0,
    transpiles: 0,
    syntaxErrors: 0,
    staleWritesRejected: 0,
    l1WritesSkipped: 0,
    l2Failures: 0,
    waitTimeoutFallbacks: 0,
    transpileMs: [],
  };
  private readonly options: ModuleServiceOptions;
  private rootReal: string | null = null;
  private readonly l1: LRUCache<string, L1Entry>;
  private readonly inFlight = new Map<string, Promise<ModuleResult>>();
  private readonly pathGenerations = new Map<string, number>();
  /** Request path → canonical path, learnt on resolution (the 'watch' fast path). */
  private readonly aliases = new Map<string, string>();
  private globalGeneration = 0;

  constructor(options: ModuleServiceOptions) {
    this.options = options;
    this.l1 = new LRUCache<string, L1Entry>({
      maxSize: options.l1MaxBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (entry) => Math.max(1, entry.code.length + entry.map.length),
    });
  }

  /** The folder modules are served from (canonical paths are relative to its real path). */
  get root(): string {
    return this.options.root;
  }

  /** The canonical project-relative path of a request path, or a NOT_FOUND error. */
  async resolve(requestPath: string): Promise<string> {
    this.rootReal ??= await realpath(this.options.root);
    return resolveModulePath(this.rootReal, requestPath);
  }

  /** Source hash and ETag without transpiling (for If-None-Match → 304). */
  async fingerprint(canonicalPath: string): Promise<{ source: string; sourceHash: string; etag: string }> {
    const source = await readFile(path.join(this.rootReal!, canonicalPath), 'utf8');
    const sourceHash = createHash('sha256').update(source).digest('hex').slice(0, 32);
    return { source, sourceHash, etag: `"${sourceHash}-${TRANSPILER_VERSION}"` };
  }

  async get(requestPath: string): Promise<ModuleResult> {
    return this.peek(requestPath) ?? this.getPrepared(await this.prepare(requestPath));
  }

  /**
   * The L1 answer without touching the file system, when freshness comes from the watcher; else
   * undefined (the caller goes through `prepare`).
   */
  peek(requestPath: string): ModuleResult | undefined {
    if (this.options.freshness !== 'watch') return undefined;
    const canonical = this.aliases.get(requestPath);
    const entry = canonical === undefined ? undefined : this.l1.get(canonical);
    if (entry === undefined) return undefined;
    this.stats.l1Hits += 1;
    return entry.hit;
  }

  /**
   * Resolution and fingerprint of a request, done once (the HTTP route needs the ETag first).
   * `servable` refuses a resolved path (404) before its file is read.
   */
  async prepare(requestPath: string, servable?: (canonicalPath: string) => boolean): Promise<PreparedModule> {
    const canonicalPath = await this.resolve(requestPath);
    if (servable !== undefined && !servable(canonicalPath)) throw notFound(requestPath);
    if (this.aliases.size > 100_000) this.aliases.clear(); // bounded against path-probing clients
    this.aliases.set(requestPath, canonicalPath);
    return { canonicalPath, ...(await this.fingerprint(canonicalPath)) };
  }

  async getPrepared({ canonicalPath, source, sourceHash, etag }: PreparedModule): Promise<ModuleResult> {
    const cached = this.l1.get(canonicalPath);
    if (cached !== undefined && cached.sourceHash === sourceHash) {
      this.stats.l1Hits += 1;
      return cached.hit;
    }
    const key = `${canonicalPath}\0${sourceHash}\0${TRANSPILER_VERSION}`;
    const running = this.inFlight.get(key);
    if (running !== undefined) {
      this.stats.inProcessJoins += 1;
      return { ...(await running), cache: 'coalesced' };
    }
    // Snapshot the generations before the first await (see the invariants above).
    const snapshot = { path: this.pathGenerations.get(canonicalPath) ?? 0, global: this.globalGeneration };
    const work = this.load(canonicalPath, source, sourceHash, etag, snapshot);
    this.inFlight.set(key, work);
    const forget = () => {
      if (this.inFlight.get(key) === work) this.inFlight.delete(key);
    };
    work.then(forget, forget);
    return work;
  }

  /** Figures for /status and /metrics. */
  status(): ModuleCacheStatus {
    const { transpileMs, ...counters } = this.stats;
    const sorted = [...transpileMs].sort((a, b) => a - b);
    const at = (q: number) =>
      sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return {
      ...counters,
      transpileP50Ms: Math.round(at(0.5) * 100) / 100,
      transpileP99Ms: Math.round(at(0.99) * 100) / 100,
      pool: this.options.pool.stats(),
    };
  }

  /** Drops paths (or everything) from L1, in-flight and L2, and bumps their generations. */
  async invalidate(paths: readonly string[] | 'all'): Promise<void> {
    this.invalidateLocal(paths);
    try {
      if (paths === 'all') await this.options.l2?.wipe();
      else await this.options.l2?.invalidate(paths);
    } catch (error) {
      this.stats.l2Failures += 1;
      this.options.log.warn({ err: error }, 'module cache: L2 invalidation failed');
    }
  }

  /**
   * The synchronous part of an invalidation (L1, in-flight, generations) — all a peer needs when
   * another process already tombstoned L2. Nothing started before this call may fill L1 after it.
   */
  invalidateLocal(paths: readonly string[] | 'all'): void {
    if (paths === 'all') {
      this.globalGeneration += 1;
      this.l1.clear();
      this.inFlight.clear();
      this.aliases.clear();
      return;
    }
    // An added or deleted file can change what any alias resolves to (`m` → `m.ts` or `m.tsx`);
    // aliases are re-learnt by the next resolution, which is cheap.
    this.aliases.clear();
    for (const canonical of paths) {
      this.pathGenerations.set(canonical, (this.pathGenerations.get(canonical) ?? 0) + 1);
      this.l1.delete(canonical);
      for (const key of this.inFlight.keys()) if (key.startsWith(`${canonical}\0`)) this.inFlight.delete(key);
    }
  }

  private async load(
    canonicalPath: string,
    source: string,
    sourceHash: string,
    etag: string,
    snapshot: { path: number; global: number },
  ): Promise<ModuleResult> {
    const fromL2 = await this.readL2(canonicalPath, sourceHash);
    let result: ModuleResult;
    if (fromL2.entry !== null) {
      this.stats.l2Hits += 1;
      result = {
        canonicalPath,
        code: fromL2.entry.body!,
        map: fromL2.entry.sourceMap ?? '',
        etag,
        cache: 'l2',
      };
    } else {
      const coalesced = await this.options.coalescer.run(
        `${canonicalPath}\0${sourceHash}\0${TRANSPILER_VERSION}`,
        () => this.transpileAndStore(canonicalPath, source, sourceHash, fromL2.generation),
        async () => (await this.readL2(canonicalPath, sourceHash)).entry,
      );
      if (coalesced.outcome === 'joined') this.stats.crossProcessJoins += 1;
      if (coalesced.outcome === 'fallback') this.stats.waitTimeoutFallbacks += 1;
      result = {
        canonicalPath,
        code: coalesced.value.code,
        map: coalesced.value.map,
        etag,
        cache: coalesced.outcome === 'joined' ? 'coalesced' : 'miss',
      };
    }
    const moved =
      (this.pathGenerations.get(canonicalPath) ?? 0) !== snapshot.path ||
      this.globalGeneration !== snapshot.global;
    if (moved) this.stats.l1WritesSkipped += 1;
    else {
      const hit = Object.freeze({ ...result, cache: 'l1' as const });
      this.l1.set(canonicalPath, { sourceHash, code: result.code, map: result.map, hit });
    }
    return result;
  }

  /** Transpiles in the pool and stores the result in L2 under the captured generation. */
  private async transpileAndStore(
    canonicalPath: string,
    source: string,
    sourceHash: string,
    capturedGeneration: number | null,
  ): Promise<{ code: string; map: string }> {
    const transpiled = await this.options.pool.transpile(canonicalPath, source);
    this.stats.transpiles += 1;
    this.stats.transpileMs.push(transpiled.durationMs);
    this.options.onTranspile?.(transpiled.durationMs);
    if (this.stats.transpileMs.length > 1_000) this.stats.transpileMs.shift();
    if (!transpiled.ok) {
      this.stats.syntaxErrors += 1;
      throw new ModuleSyntaxError(transpiled.diagnostic);
    }
    if (this.options.l2 !== null && capturedGeneration !== null) {
      try {
        const written = await this.options.l2.write(
          canonicalPath,
          {
            body: transpiled.code,
            sourceMap: transpiled.map,
            sourceHash,
            transpilerVersion: TRANSPILER_VERSION,
          },
          capturedGeneration,
        );
        if (!written) this.stats.staleWritesRejected += 1;
      } catch (error) {
        this.stats.l2Failures += 1;
        this.options.log.warn({ err: error, path: canonicalPath }, 'module cache: L2 write failed');
      }
    }
    return { code: transpiled.code, map: transpiled.map };
  }

  /** A usable L2 entry (same source and transpiler) and the generation to capture; null when L2 failed. */
  private async readL2(
    canonicalPath: string,
    sourceHash: string,
  ): Promise<{ entry: { body: string | null; sourceMap: string | null } | null; generation: number | null }> {
    if (this.options.l2 === null) return { entry: null, generation: null };
    try {
      const entry = await this.options.l2.read(canonicalPath);
      const usable =
        entry.body !== null &&
        entry.sourceHash === sourceHash &&
        entry.transpilerVersion === TRANSPILER_VERSION;
      return { entry: usable ? entry : null, generation: entry.generation };
    } catch (error) {
      this.stats.l2Failures += 1;
      this.options.log.warn({ err: error, path: canonicalPath }, 'module cache: L2 read failed');
      return { entry: null, generation: null };
    }
  }
}

/**
 * The canonical path (relative to `rootReal`, a real path) of a module request: the file itself or
 * with the first extension that exists, never outside the root (symlinks included); else NOT_FOUND.
 */
export async function resolveModulePath(rootReal: string, requestPath: string): Promise<string> {
  const relative = requestPath.replace(/^\/+/, '');
  const base = path.resolve(rootReal, relative);
  if (!isInside(rootReal, base) || relative.includes('\0')) throw notFound(requestPath);
  for (const extension of EXTENSIONS) {
    const candidate = base + extension;
    try {
      if (!(await stat(candidate)).isFile()) continue;
      const real = await realpath(candidate);
      if (!isInside(rootReal, real)) throw notFound(requestPath); // a symlink out of the root
      return path.relative(rootReal, real).split(path.sep).join('/');
    } catch (error) {
      if (error instanceof StrataError) throw error;
    }
  }
  throw notFound(requestPath);
}

/** 404 for a path that is not a module of the project (missing, outside, or not in a module graph). */
export function notFound(requestPath: string): StrataError {
  return new StrataError('STRATA_ERR_MODULE_NOT_FOUND', `no module ${requestPath} in the project`);
}
