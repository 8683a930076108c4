// bench/fleet.ts's throughput project: FLEET_BENCH_PIPELINES (default 4) erc20 pipelines over the
// deterministic generator, FLEET_BENCH_BLOCKS blocks of 10 events each, every one a finite
// backfill. Run on one process, then spread over two.
import { defineProject } from 'strata';

const count = Number(process.env.FLEET_BENCH_PIPELINES ?? 4);
const blocks = Number(process.env.FLEET_BENCH_BLOCKS ?? 10_000);

export default defineProject({
  pipelines: Array.from({ length: count }, (_, index) => ({
    name: `f${index + 1}`,
    source: {
      kind: 'generator' as const,
      workload: 'erc20' as const,
      seed: index + 1,
      blocks,
      eventsPerBlock: 10,
      addresses: 50_000,
      distribution: 'skewed' as const,
      liveBlockIntervalMs: 0,
    },
    schema: '../../examples/erc20/schema.ts',
    handlers: '../../examples/erc20/handlers.ts',
    batchSize: 500,
  })),
});
