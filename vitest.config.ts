import { defineConfig } from 'vitest/config';
import { LongestFirstSequencer } from './test/longest-first-sequencer.ts';

// Two projects: `unit` needs no services; `integration` talks to the real Postgres and Redis at
// DATABASE_URL / REDIS_URL (defaults on 127.0.0.1) and spawns real worker threads and daemons.
// Both run in one group (the unit files fill the gaps of the long integration ones): the suite
// must stay within 4 minutes on the 2-core CI box, and pass there with two CPU hogs running.
export default defineConfig({
  test: {
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['src/**/*.test.ts', 'test/unit/**/*.test.ts'],
          testTimeout: 20_000,
          maxWorkers: 3, // one group with integration: vitest wants the same worker count
        },
      },
      {
        test: {
          name: 'integration',
          sequence: { groupOrder: 0 },
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          // Each file makes its own database; files run in parallel, tests inside a file in order.
          fileParallelism: true,
          maxWorkers: 3,
        },
      },
      // Opt-in (`npm run chaos:pg-restart`): restarts the shared Postgres, so never beside others.
      ...(process.env.STRATA_CHAOS === '1'
        ? [
            {
              test: {
                name: 'chaos',
                include: ['test/chaos/**/*.test.ts'],
                testTimeout: 300_000,
                hookTimeout: 60_000,
              },
            },
          ]
        : []),
    ],
  },
});
