// Main-thread side of the transpile pool: piscina workers (workers/transpile.mjs) running
// oxc-transform, so CPU-bound transpiles never block the event loop that serves HTTP and renews
// Redis leases. A syntax error comes back as a structured diagnostic, not an exception, so the
// module service can hand the same diagnostic to every waiter and never cache it.

import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';

export interface TranspileDiagnostic {
  file: string;
  line: number;
  column: number;
  message: string;
  code: 'STRATA_ERR_MODULE_SYNTAX';
  frame: string | null;
  more: number;
}

export type TranspileResult =
  | { ok: true; code: string; map: string; durationMs: number }
  | { ok: false; diagnostic: TranspileDiagnostic; durationMs: number };

/** Part of every cache key and ETag: a transpiler upgrade must not serve old output. */
export const TRANSPILER_VERSION = `oxc-${(createRequire(import.meta.url)('oxc-transform/package.json') as { version: string }).version}`;

export interface TranspilePoolOptions {
  threads?: number;
  /** Threads kept alive when idle (default: all; the daemon starts them on first use). */
  minThreads?: number;
}

export class TranspilePool {
  private readonly pool: Piscina;

  constructor(options: TranspilePoolOptions = {}) {
    const threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism()));
    this.pool = new Piscina({
      filename: new URL('../../workers/transpile.mjs', import.meta.url).href,
      minThreads: options.minThreads ?? threads,
      maxThreads: threads,
      idleTimeout: 60_000,
    });
  }

  transpile(file: string, source: string): Promise<TranspileResult> {
    return this.pool.run({ file, source }) as Promise<TranspileResult>;
  }

  stats(): { threads: number; utilization: number; completed: number; queued: number } {
    return {
      threads: this.pool.threads.length,
      utilization: this.pool.utilization,
      completed: this.pool.completed,
      queued: this.pool.queueSize,
    };
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
