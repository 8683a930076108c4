// bench/embedded-status: the embedded daemon (`--memory`, PGlite) through an erc20 backfill, as a
// user's `npm start` runs it: how fast the main thread answers GET /status meanwhile (sampled every
// 100 ms: median, p99, worst) and the process's peak RSS. With BEFORE_BIN (the bin/strata.mjs of
// another checkout, e.g. one before PGlite moved to its own thread) both run in this one run,
// alternating, so the comparison holds on a noisy machine.
// Run: `npm run bench:embedded-status` (EVENTS=300000 ROUNDS=2 by default).

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const EVENTS = Number(process.env.EVENTS ?? 300_000);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const PROJECT = new URL('../examples/erc20', import.meta.url).pathname;
const CURRENT = new URL('../bin/strata.mjs', import.meta.url).pathname;
const BEFORE = process.env.BEFORE_BIN;

interface Run {
  seconds: number;
  latencies: number[];
  maxRssBytes: number;
}

async function run(bin: string): Promise<Run> {
  const child = spawn(
    process.execPath,
    [bin, 'start', '--project', PROJECT, '--memory', '--exit-when-caught-up', '--port', '0'],
    {
      env: {
        PATH: process.env.PATH ?? '',
        STRATA_LOG_FORMAT: 'json',
        STRATA_PROGRESS: 'never',
        ERC20_BLOCKS: String(EVENTS / 10),
        ERC20_EVENTS_PER_BLOCK: '10',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let url: string | null = null;
  let started = 0;
  let finished = 0;
  let maxRssBytes = 0;
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const entry = JSON.parse(line) as { msg: string; time: number; url?: string; maxRssBytes?: number };
    if (entry.msg === 'HTTP listening') url = entry.url ?? null;
    if (entry.msg === 'pipeline starting from the first block') started = entry.time;
    if (entry.msg.startsWith('every pipeline processed and committed')) finished = entry.time;
    if (entry.msg === 'stopped') maxRssBytes = entry.maxRssBytes ?? 0;
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let done = false;
  void exited.then(() => {
    done = true;
  });
  const latencies: number[] = [];
  while (!done) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    if (url === null || started === 0 || finished !== 0) continue;
    const t0 = performance.now();
    try {
      await (await fetch(`${url}/status`)).arrayBuffer();
      latencies.push(performance.now() - t0);
    } catch {
      // shutting down
    }
  }
  if ((await exited) !== 0 || finished === 0) throw new Error(`${bin}: the daemon run failed`);
  return { seconds: (finished - started) / 1_000, latencies, maxRssBytes };
}

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
};

function report(label: string, runs: Run[]): void {
  const latencies = runs.flatMap((r) => r.latencies);
  const rss = runs.map((r) => r.maxRssBytes / 1_048_576);
  const seconds = runs.map((r) => r.seconds);
  console.log(
    `${label.padEnd(8)} /status ms: median ${quantile(latencies, 0.5).toFixed(1)}, p99 ${quantile(latencies, 0.99).toFixed(1)}, worst ${Math.max(...latencies).toFixed(0)} (${latencies.length} samples) | peak RSS ${rss.map((m) => m.toFixed(0)).join(' / ')} MiB | backfill ${seconds.map((s) => s.toFixed(1)).join(' / ')} s`,
  );
}

console.log(
  `bench/embedded-status: erc20 on embedded PGlite (--memory), ${EVENTS.toLocaleString('en-US')} events, ${ROUNDS} rounds, node ${process.version}`,
);
const current: Run[] = [];
const before: Run[] = [];
for (let round = 0; round < ROUNDS; round++) {
  if (BEFORE !== undefined) before.push(await run(BEFORE));
  current.push(await run(CURRENT));
}
if (BEFORE !== undefined) report('before', before);
report('current', current);
