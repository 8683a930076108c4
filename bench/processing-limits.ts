// bench/processing's in-memory limits, run in a worker thread like the processing actor (same
// thread kind, same heap settings — a worker's V8 defaults differ from the main thread's, and the
// young generation size alone moved these figures by 30%):
//  (a) the processing actor's work without a database: source, handlers, store, change encoding
//      (reads answered "absent" without a database);
//  (c) a plain-JavaScript fold of the same erc20 handler logic over the same generated events:
//      Maps of plain objects, no store, no checkpoints, no encoding — what the handlers cost
//      with nothing of Strata around them.
// Both read the same GeneratorSource batch by batch (so both pay the source), and both keep
// their working set bounded the same way (dropped once it passes 100,000 objects). Rounds
// alternate (a) and (c) so a noisy machine slows both alike; the bench prints the medians.

import { parentPort, workerData } from 'node:worker_threads';
import { buildConfig, type PipelineConfig } from '../src/config.ts';
import type { Queryable } from '../src/db/pool.ts';
import { createLogger } from '../src/logger.ts';
import { BatchExecutor, type LoadStrategy } from '../src/processing/batch-executor.ts';
import { collectBatchChanges } from '../src/processing/collect-changes.ts';
import { EffectStore } from '../src/processing/effect-store.ts';
import { InMemoryStore } from '../src/processing/in-memory-store.ts';
import { LoadLayer } from '../src/processing/load-layer.ts';
import { loadPipelineModulesFromSources } from '../src/processing/pipeline-modules.ts';
import { GeneratorSource } from '../src/sources/generator.ts';
import type { Block } from '../src/sources/types.ts';

export interface LimitsRequest {
  events: number;
  eventsPerBlock: number;
  project: string;
  /** Rounds of (a, auto) then (c); the other strategies run once. */
  rounds: number;
  strategies: LoadStrategy[];
}

export interface LimitsResult {
  /** Seconds per run of (a), by strategy (auto: one per round). */
  inMemory: Record<string, number[]>;
  /** Seconds per run of (c). */
  plainFold: number[];
}

const WORKING_SET_CAP = 100_000;

/** The project's (first) pipeline as the daemon configures it. */
export async function pipelineConfig(project: string): Promise<PipelineConfig> {
  const config = await buildConfig({ flags: { project }, env: {} });
  return config.pipelines[0]!;
}

/** The pipeline's generator sized to `events`. */
export function generatorFor(
  pipeline: PipelineConfig,
  events: number,
  eventsPerBlock: number,
): GeneratorSource {
  if (pipeline.source.kind !== 'generator') throw new Error(`${pipeline.name} must use the generator`);
  return new GeneratorSource({ ...pipeline.source, blocks: events / eventsPerBlock, eventsPerBlock });
}

/** The pipeline's handlers over `store`, reading through `db` (or a stand-in answering nothing). */
export function executorFor(
  pipeline: PipelineConfig,
  modules: Awaited<ReturnType<typeof loadPipelineModulesFromSources>>,
  store: InMemoryStore,
  db: Queryable,
  strategy: LoadStrategy,
): BatchExecutor {
  const log = createLogger({ level: 'warn', format: 'json' });
  return new BatchExecutor({
    pipeline: pipeline.name,
    ...modules,
    store,
    loader: new LoadLayer(db, pipeline.name, store),
    effects: new EffectStore(db, log),
    log,
    strategy,
    handlerOptions: pipeline.options,
  });
}

const sourceFor = (pipeline: PipelineConfig, request: LimitsRequest) =>
  generatorFor(pipeline, request.events, request.eventsPerBlock);

/** Reads the source batch by batch; returns the seconds it took. */
export async function eachBatch(
  source: GeneratorSource,
  batchSize: number,
  onBatch: (blocks: Block[], firstCheckpoint: number) => void | Promise<void>,
): Promise<number> {
  const started = performance.now();
  let checkpoint = 0;
  let after = 0;
  for (;;) {
    const blocks = await source.read(after, batchSize);
    if (blocks.length === 0) break;
    await onBatch(blocks, checkpoint + 1);
    checkpoint += blocks.length;
    after = blocks[blocks.length - 1]!.number;
  }
  return (performance.now() - started) / 1_000;
}

/** (a): the processing actor's work, without a database. */
async function inMemory(pipeline: PipelineConfig, request: LimitsRequest, strategy: LoadStrategy) {
  const modules = await loadPipelineModulesFromSources(pipeline);
  const store = new InMemoryStore(modules.schema);
  const noDatabase = { query: async () => ({ rows: [] }) } as never;
  const executor = executorFor(pipeline, modules, store, noDatabase, strategy);
  // As the actor starting from the first block: every table is empty, so held whole
  // (LoadLayer.markEmptyTablesComplete).
  for (const table of store.tables.values()) table.markComplete();
  return eachBatch(sourceFor(pipeline, request), pipeline.batchSize, async (blocks, firstCheckpoint) => {
    await executor.run(blocks, firstCheckpoint, false);
    collectBatchChanges(store, false); // encoded as the actor sends it
    store.dropCommittedAppends(firstCheckpoint + blocks.length - 1); // as the actor at each commit
    // Everything is "committed" at once: the same capacity rule as the daemon's first tier.
    if (store.size() > WORKING_SET_CAP)
      store.dropCommitted(firstCheckpoint + blocks.length - 1, WORKING_SET_CAP / 2, WORKING_SET_CAP);
  });
}

interface Account {
  id: string;
  balance: bigint;
  transfersOut: number;
  transfersIn: number;
}

/** (c): examples/erc20/handlers.ts as a plain fold (same reads, same rows, same order). */
function plainFold(pipeline: PipelineConfig, request: LimitsRequest): Promise<number> {
  const accounts = new Map<string, Account>();
  const transfers = new Map<string, object>();
  const allowances = new Map<string, object>();
  const account = (id: string): Account =>
    accounts.get(id) ?? { id, balance: 0n, transfersOut: 0, transfersIn: 0 };
  return eachBatch(sourceFor(pipeline, request), pipeline.batchSize, (blocks) => {
    for (const block of blocks) {
      for (const event of block.events) {
        const payload = event.payload as Record<string, string>;
        if (event.name === 'Transfer') {
          const value = BigInt(payload.value!);
          const sender = account(payload.from!);
          accounts.set(sender.id, {
            ...sender,
            balance: sender.balance - value,
            transfersOut: sender.transfersOut + 1,
          });
          const receiver = account(payload.to!);
          accounts.set(receiver.id, {
            ...receiver,
            balance: receiver.balance + value,
            transfersIn: receiver.transfersIn + 1,
          });
          const id = `${block.number}-${event.logIndex}`;
          transfers.set(id, {
            id,
            from: payload.from,
            to: payload.to,
            value,
            blockNumber: block.number,
            timestamp: new Date(block.timestamp * 1000),
          });
        } else if (event.name === 'Approval') {
          const id = `${payload.owner}-${payload.spender}`;
          allowances.set(id, {
            id,
            owner: payload.owner,
            spender: payload.spender,
            value: BigInt(payload.value!),
          });
        }
      }
    }
    // The fold keeps every account and allowance: only transfers, written once, are dropped.
    if (accounts.size + transfers.size + allowances.size > WORKING_SET_CAP) transfers.clear();
  });
}

async function measure(request: LimitsRequest): Promise<LimitsResult> {
  const pipeline = await pipelineConfig(request.project);
  const result: LimitsResult = { inMemory: {}, plainFold: [] };
  const record = (strategy: string, seconds: number) => {
    result.inMemory[strategy] ??= [];
    result.inMemory[strategy].push(seconds);
  };
  for (let round = 0; round < request.rounds; round++) {
    record('auto', await inMemory(pipeline, request, 'auto'));
    result.plainFold.push(await plainFold(pipeline, request));
  }
  for (const strategy of request.strategies) {
    if (strategy !== 'auto') record(strategy, await inMemory(pipeline, request, strategy));
  }
  return result;
}

if (parentPort !== null && workerData?.limits !== undefined) {
  parentPort.postMessage(await measure(workerData.limits as LimitsRequest));
}
