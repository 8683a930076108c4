import { collectBatchChanges } from '../src/processing/collect-changes.ts';
import { InMemoryStore } from '../src/processing/in-memory-store.ts';
import { loadPipelineModules } from '../src/processing/pipeline-modules.ts';
import { eachBatch, executorFor, generatorFor, pipelineConfig } from './processing-limits.ts';
const pipeline = await pipelineConfig(new URL('../examples/credits', import.meta.url).pathname);
const modules = await loadPipelineModules(pipeline);
for (const n of [50000, 100000, 200000]) {
const store = new InMemoryStore(modules.schema);
const executor = executorFor(pipeline, modules, store, { query: async () => ({ rows: [] }) } as never, pipeline.loadStrategy);
const s = await eachBatch(generatorFor(pipeline, n, 10), pipeline.batchSize, async (blocks, cp) => {
  await executor.run(blocks, cp, false);
  collectBatchChanges(store, false);
});
let live = 0, most = new Map();
for (const row of store.table('CreditLot').rows()) if ((row.amountRemaining as bigint) > 0n) { live++; most.set(row.address, (most.get(row.address) ?? 0) + 1); }
console.log(n, s.toFixed(2), Math.round(n / s), 'ev/s', 'live lots', live, 'max live per address', Math.max(...most.values()));
}
