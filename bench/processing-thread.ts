// Runs a benchmark's limit in a worker thread with the processing actor's settings
// (src/daemon/actors.ts: its young generation size alone moved limits by 30%) and returns the
// one message the worker posts.

import { Worker } from 'node:worker_threads';
import { PROCESSING_YOUNG_GENERATION_MB } from '../src/daemon/actors.ts';

export async function inProcessingThread<T>(
  entry: URL,
  workerData: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<T> {
  const worker = new Worker(new URL('../workers/bootstrap.mjs', import.meta.url), {
    workerData: { entry: entry.href, ...workerData },
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
