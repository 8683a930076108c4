// The default demo project (`npm start` runs it when no other project is given): a credits ledger
// kept as per-lot balances (README.md here). A deterministic generator feeds it — a backfill of
// 200,000 messages, then one block a second — or, with CREDITS_SOURCE=ingest, any producer over
// POST /v1/pipelines/credits/events. CREDITS_DRAIN_POLICY=expiration drains soonest-expiring lots
// first (a pipeline keeps the policy it was built with: changing it needs `strata reset credits`).
import { defineProject } from 'strata';
import { queries } from './queries.ts';

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

export default defineProject({
  pipelines: [
    {
      name: 'credits',
      source:
        process.env.CREDITS_SOURCE === 'ingest'
          ? { kind: 'ingest' as const }
          : {
              kind: 'generator',
              workload: 'credit-ledger',
              seed: env('CREDITS_SEED', 1),
              blocks: env('CREDITS_BLOCKS', 20_000), // backfill: 200,000 messages as fast as they go…
              eventsPerBlock: env('CREDITS_EVENTS_PER_BLOCK', 10),
              addresses: env('CREDITS_ADDRESSES', 1_000),
              distribution: 'skewed', // a few hot addresses hold many lots
              liveBlockIntervalMs: env('CREDITS_LIVE_BLOCK_INTERVAL_MS', 1_000), // …then one a second
            },
      schema: './schema.ts',
      handlers: './handlers.ts',
      batchSize: env('CREDITS_BATCH_SIZE', 200),
      // Handlers look lots up by address from the first block: keep that index during the backfill.
      deferIndexes: false,
      options: {
        drainPolicy: process.env.CREDITS_DRAIN_POLICY ?? 'emission',
        // The generator's treasury (address index 1) transfers without draining lots.
        whitelistedSenders: ['0x0000000000000000000000000000000000000001'],
      },
      queries,
    },
  ],
});
