// bench/credits' in-memory limit, in a worker thread with the processing actor's heap settings:
// the ledger's handlers over the same generated messages with the in-memory store and no
// database, each batch's changes encoded as the actor sends them. Every lot stays in memory (a
// spend must see all of the address's lots, and there is no database to read them back from);
// history lines, written once and never read again, are dropped after each batch.

import { parentPort, workerData } from 'node:worker_threads';
import { collectBatchChanges } from '../src/processing/collect-changes.ts';
import { InMemoryStore } from '../src/processing/in-memory-store.ts';
import { loadPipelineModulesFromSources } from '../src/processing/pipeline-modules.ts';
import { eachBatch, executorFor, generatorFor, pipelineConfig } from './processing-limits.ts';

export interface CreditsLimitRequest {
  project: string;
  events: number;
  eventsPerBlock: number;
}

async function inMemory(request: CreditsLimitRequest): Promise<number> {
  const pipeline = await pipelineConfig(request.project);
  const modules = await loadPipelineModulesFromSources(pipeline);
  const store = new InMemoryStore(modules.schema);
  const noDatabase = { query: async () => ({ rows: [] }) } as never;
  const executor = executorFor(pipeline, modules, store, noDatabase, pipeline.loadStrategy);
  return eachBatch(
    generatorFor(pipeline, request.events, request.eventsPerBlock),
    pipeline.batchSize,
    async (blocks, firstCheckpoint) => {
      await executor.run(blocks, firstCheckpoint, false);
      collectBatchChanges(store, false);
      store.table('CreditHistory').dropCommitted(firstCheckpoint + blocks.length - 1);
    },
  );
}

if (parentPort !== null && workerData?.creditsLimit !== undefined) {
  parentPort.postMessage(await inMemory(workerData.creditsLimit as CreditsLimitRequest));
}
