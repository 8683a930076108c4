// The ERC20 workload of the open-indexer-benchmark over the deterministic generator:
// `strata start --project examples/erc20`. Sizes can be overridden from the environment
// (bench/processing.ts does) — ERC20_BLOCKS × ERC20_EVENTS_PER_BLOCK events in all — and reorgs
// injected (ERC20_REORG_EVERY / ERC20_REORG_DEPTH), as the reorg tests and benchmark do.
import { defineProject } from 'strata';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

export default defineProject({
  pipelines: [
    {
      name: 'erc20',
      // ERC20_SOURCE=ingest: blocks come from the ingest API instead (bench/live-reorg posts them).
      source:
        process.env.ERC20_SOURCE === 'ingest'
          ? { kind: 'ingest' as const }
          : {
              kind: 'generator',
              workload: 'erc20',
              seed: env('ERC20_SEED', 1),
              blocks: env('ERC20_BLOCKS', 100_000), // 1,000,000 events
              eventsPerBlock: env('ERC20_EVENTS_PER_BLOCK', 10),
              addresses: env('ERC20_ADDRESSES', 50_000),
              distribution: 'skewed',
              liveBlockIntervalMs: 0, // a finite backfill: the pipeline is caught up at its end
              // ERC20_REORG_EVERY=100 ERC20_REORG_DEPTH=10: a reorg of depth 1..10 every 100 blocks
              ...(process.env.ERC20_REORG_EVERY === undefined
                ? {}
                : {
                    reorgs: { every: env('ERC20_REORG_EVERY', 100), maxDepth: env('ERC20_REORG_DEPTH', 10) },
                  }),
            },
      maxReorgDepth: env('ERC20_MAX_REORG_DEPTH', 200),
      fullHistory: process.env.ERC20_FULL_HISTORY === 'true',
      schema: './schema.ts',
      handlers:
        process.env.ERC20_EFFECT === 'true' ? ['./handlers.ts', './effect-handlers.ts'] : './handlers.ts',
      batchSize: env('ERC20_BATCH_SIZE', 500),
      // auto (the default) unless the benchmark asks for one idea alone
      loadStrategy: (process.env.ERC20_LOAD_STRATEGY ?? 'auto') as 'auto' | 'two-pass' | 'prefetch',
    },
  ],
});
