// bench/credits: the lot ledger (examples/credits) on real Postgres, from one run:
//  - end to end: the daemon from the first block to the last commit (--exit-when-caught-up) over
//    EVENTS generated messages on skewed addresses (a few hot addresses hold many lots);
//  - the in-memory limit: the same handlers over the same messages with the in-memory store and
//    no database, in a worker thread like the processing actor's (bench/credits-limit.ts);
//  - `strata verify credits` on the result: its time against the end-to-end time, and its verdict;
//  - how many lots the run made, and the most any address held.
// Run: `npm run bench:credits` (EVENTS=1000000 by default; ADDRESSES=1000).

import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import pg from 'pg';
import { benchDatabase } from './bench-database.ts';
import type { CreditsLimitRequest } from './credits-limit.ts';
import { inProcessingThread } from './processing-thread.ts';

const EVENTS = Number(process.env.EVENTS ?? 1_000_000);
const ADDRESSES = Number(process.env.ADDRESSES ?? 1_000);
const EVENTS_PER_BLOCK = 10;
const PROJECT = new URL('../examples/credits', import.meta.url).pathname;
const STRATA = new URL('../bin/strata.mjs', import.meta.url).pathname;
const database = benchDatabase('strata_bench_credits');

const env = {
  ...process.env,
  DATABASE_URL: database.url,
  CREDITS_BLOCKS: String(EVENTS / EVENTS_PER_BLOCK),
  CREDITS_EVENTS_PER_BLOCK: String(EVENTS_PER_BLOCK),
  CREDITS_ADDRESSES: String(ADDRESSES),
  CREDITS_LIVE_BLOCK_INTERVAL_MS: '0',
};

async function endToEnd(): Promise<{ seconds: number; maxRssBytes: number }> {
  await database.recreate();
  const child = spawn(process.execPath, [STRATA, 'start', '--project', PROJECT, '--exit-when-caught-up'], {
    env: { ...env, STRATA_PORT: '0', STRATA_LOG_FORMAT: 'json', STRATA_PROGRESS: 'never' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let started = 0;
  let finished = 0;
  let maxRssBytes = 0;
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const entry = JSON.parse(line) as { msg: string; time: number; maxRssBytes?: number };
    if (entry.msg === 'pipeline starting from the first block') started = entry.time;
    if (entry.msg.startsWith('every pipeline processed and committed')) finished = entry.time;
    if (entry.msg === 'stopped') maxRssBytes = entry.maxRssBytes ?? 0;
    if (entry.msg === 'progress') process.stderr.write(`  … ${line.slice(0, 170)}\n`);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0 || started === 0 || finished === 0) throw new Error(`daemon run failed (exit ${code})`);
  return { seconds: (finished - started) / 1_000, maxRssBytes };
}

function inMemoryLimit(): Promise<number> {
  const request: CreditsLimitRequest = { project: PROJECT, events: EVENTS, eventsPerBlock: EVENTS_PER_BLOCK };
  return inProcessingThread(new URL('./credits-limit.ts', import.meta.url), { creditsLimit: request }, env);
}

async function verify(): Promise<{ seconds: number; replaySeconds: number; code: number; drift: boolean }> {
  const started = performance.now();
  let code = 0;
  let stdout = '';
  try {
    stdout = (
      await promisify(execFile)(
        process.execPath,
        [STRATA, 'verify', 'credits', '--json', '--project', PROJECT],
        {
          env: { ...env, STRATA_LOG_LEVEL: 'warn' },
          maxBuffer: 64 * 1024 * 1024,
        },
      )
    ).stdout;
  } catch (error) {
    code = (error as { code?: number }).code ?? -1;
    stdout = (error as { stdout?: string }).stdout ?? '';
  }
  const seconds = (performance.now() - started) / 1_000;
  const report = JSON.parse(stdout) as { replayMs: number; drift: boolean };
  return { seconds, replaySeconds: report.replayMs / 1_000, code, drift: report.drift };
}

async function lotFigures(): Promise<{ lots: number; live: number; mostPerAddress: number }> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const { rows } = await client.query<{ lots: string; live: string; most: string }>(
      `SELECT (SELECT count(*) FROM pipeline_credits."CreditLot") AS lots,
              (SELECT count(*) FROM pipeline_credits."CreditLot" WHERE "amountRemaining" > 0) AS live,
              (SELECT max(n) FROM (SELECT count(*) AS n FROM pipeline_credits."CreditLot" GROUP BY address) a) AS most`,
    );
    return {
      lots: Number(rows[0]!.lots),
      live: Number(rows[0]!.live),
      mostPerAddress: Number(rows[0]!.most),
    };
  } finally {
    await client.end();
  }
}

const count = (n: number) => Math.round(n).toLocaleString('en-US');
const rate = (seconds: number) => `${count(EVENTS / seconds).padStart(9)} events/s`;

console.error(`credits ledger: ${count(EVENTS)} messages over ${count(ADDRESSES)} skewed addresses`);
const e2e = await endToEnd();
const lots = await lotFigures();
console.error('  … the in-memory limit');
const limit = await inMemoryLimit();
console.error('  … strata verify credits');
const verified = await verify();

console.log(`credits ledger (examples/credits, ${count(EVENTS)} messages, ${count(ADDRESSES)} skewed addresses, emission drain)
  end to end      ${e2e.seconds.toFixed(2).padStart(7)} s  ${rate(e2e.seconds)}  peak RSS ${count(e2e.maxRssBytes / 2 ** 20)} MiB
  in-memory limit ${limit.toFixed(2).padStart(7)} s  ${rate(limit)}
ratio end-to-end / limit: ${(e2e.seconds / limit).toFixed(2)}
lots: ${count(lots.lots)} (${count(lots.live)} with credit left); the most held by one address: ${count(lots.mostPerAddress)}
strata verify credits: ${verified.seconds.toFixed(2)} s (replay ${verified.replaySeconds.toFixed(2)} s) = ${(verified.seconds / e2e.seconds).toFixed(2)}× the end-to-end time; exit ${verified.code}${verified.drift ? ' — DRIFT' : ', no drift'}`);
