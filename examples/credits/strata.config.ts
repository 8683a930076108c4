// The default demo project: `npm start` runs it when no other project is given.
import { defineProject } from 'strata';

export default defineProject({
  pipelines: [
    {
      name: 'credits',
      source: {
        kind: 'generator',
        workload: 'credits',
        seed: 1,
        blocks: 20_000, // backfill: 200,000 events as fast as they go…
        eventsPerBlock: 10,
        addresses: 1_000,
        liveBlockIntervalMs: 1_000, // …then one block a second, like a chain head
      },
      schema: './schema.ts',
      handlers: './handlers.ts',
      batchSize: 200,
    },
  ],
});
