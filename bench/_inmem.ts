import { buildConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { BatchExecutor } from '../src/processing/batch-executor.ts';
import { collectBatchChanges, encodeChanges } from '../src/processing/change-codec.ts';
import { InMemoryStore } from '../src/processing/in-memory-store.ts';
import { LoadLayer } from '../src/processing/load-layer.ts';
import { loadPipelineModules } from '../src/processing/processing-actor.ts';
import { GeneratorSource } from '../src/sources/generator.ts';

const config = await buildConfig({ flags: { project: '/work/main/examples/erc20' }, env: {} });
const pipeline = config.pipelines[0]!;
const { schema, handlers } = await loadPipelineModules(pipeline);
const store = new InMemoryStore(schema);
const empty = { query: async () => ({ rows: [] }) } as never;
const strategy = (process.env.S ?? 'two-pass') as 'two-pass';
const ex = new BatchExecutor({
  pipeline: 'erc20',
  schema,
  handlers,
  store,
  loader: new LoadLayer(empty, 'erc20', store),
  log: createLogger({ level: 'warn', format: 'json' }),
  strategy,
});
const source = new GeneratorSource(pipeline.source as never);
const t0 = performance.now();
let gen = 0,
  exec = 0,
  enc = 0;
let cp = 0;
let after = 0;
for (;;) {
  let t = performance.now();
  const blocks = await source.read(after, 500);
  gen += performance.now() - t;
  if (blocks.length === 0) break;
  t = performance.now();
  await ex.run(blocks, cp + 1, false);
  exec += performance.now() - t;
  t = performance.now();
  const { changes } = collectBatchChanges(store);
  store.endBatch();
  if (!process.env.NOENC) encodeChanges(changes);
  enc += performance.now() - t;
  cp += blocks.length;
  after = blocks[blocks.length - 1]!.number;
  if (store.size() > 100000) store.dropCommitted(cp);
}
const total = performance.now() - t0;
console.log({
  strategy,
  totalMs: Math.round(total),
  gen: Math.round(gen),
  exec: Math.round(exec),
  enc: Math.round(enc),
  evps: Math.round((1e6 / total) * 1000),
});
