// Runs a benchmark's limit in a worker thread with the processing actor's settings
// (src/daemon/actors.ts: its young generation size alone moved limits by 30%) and returns the
// one message the worker posts. The limit runs compiled to JavaScript, as the daemon's actors do
// (bin/compile-runtime.mjs): through tsx, every function is wrapped to keep its name, and the
// limit would measure code the daemon no longer runs.

import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { compiledCopy } from '../bin/compile-runtime.mjs';
import { PROCESSING_YOUNG_GENERATION_MB } from '../src/daemon/actors.ts';

const ROOT = path.resolve(import.meta.dirname, '..');

/** The compiled copy of one of this package's TypeScript modules. */
async function compiled(entry: URL): Promise<URL> {
  const copy = await compiledCopy({ folders: ['src', 'workers', 'bench'] });
  return pathToFileURL(path.join(copy, path.relative(ROOT, fileURLToPath(entry)).replace(/\.ts$/, '.js')));
}

export async function inProcessingThread<T>(
  entry: URL,
  workerData: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<T> {
  const worker = new Worker(new URL('../workers/bootstrap.mjs', import.meta.url), {
    workerData: { entry: (await compiled(entry)).href, ...workerData },
    env,
    resourceLimits: { maxYoungGenerationSizeMb: PROCESSING_YOUNG_GENERATION_MB },
  });
  const result = await new Promise<T>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`${entry.pathname} exited (${code}) without a result`)));
  });
  await worker.terminate();
  return result;
}
