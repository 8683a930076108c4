// Main-thread side of the transpile pool: piscina workers (workers/transpile.mjs) running
// oxc-transform, so CPU-bound transpiles never block the event loop that serves HTTP and renews
// Redis leases. A syntax error comes back as a structured diagnostic, not an exception, so the
// module service can hand the same diagnostic to every waiter and never cache it.

import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import { PACKAGE_ROOT } from '../package-root.ts';

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

interface PendingTask {
  file: string;
  source: string;
  resolve: (result: TranspileResult) => void;
  reject: (error: unknown) => void;
}

export class TranspilePool {
  private readonly pool: Piscina;
  private readonly threads: number;
  /** Requests of the current tick, sent together (see `flush`). */
  private pending: PendingTask[] = [];

  constructor(options: TranspilePoolOptions = {}) {
    const threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism()));
    this.threads = threads;
    this.pool = new Piscina({
      filename: pathToFileURL(path.join(PACKAGE_ROOT, 'workers/transpile.mjs')).href,
      minThreads: options.minThreads ?? threads,
      maxThreads: threads,
      idleTimeout: 60_000,
    });
  }

  transpile(file: string, source: string): Promise<TranspileResult> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => this.flush());
      this.pending.push({ file, source, resolve, reject });
    });
  }

  /**
   * Sends the tick's requests in chunks. A round trip through the pool costs the main thread about
   * as much as a small transpile (measured in bench/transpile), and on 2 cores the main thread
   * shares them with the workers, so a burst (a cold start: every handler module at once) goes as
   * a few chunks per thread instead of one message per module. A lone request is a chunk of one.
   */
  private flush(): void {
    const tasks = this.pending;
    this.pending = [];
    const size = Math.min(16, Math.max(1, Math.ceil(tasks.length / (this.threads * 4))));
    for (let start = 0; start < tasks.length; start += size) {
      const chunk = tasks.slice(start, start + size);
      (this.pool.run(chunk.map(({ file, source }) => ({ file, source }))) as Promise<TranspileResult[]>).then(
        (results) => {
          for (const [index, task] of chunk.entries()) task.resolve(results[index]!);
        },
        (error: unknown) => {
          for (const task of chunk) task.reject(error);
        },
      );
    }
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
