// bench/fleet: many processes on one Postgres (issue 15). Prints, each with its reference measured
// in the same run:
//  1. takeover time after `kill -9` of the owner and after SIGSTOP of the owner (median and max
//     over FLEET_BENCH_ROUNDS, default 10), at the default lease TTL (10 s);
//  2. throughput of 4 erc20 pipelines on one process vs spread over two processes;
//  3. lease overhead: end-to-end erc20 with the lease fence (`STRATA_FLEET=on`, the default) vs
//     without (`off`), alternated pairs;
//  4. ingest → commit latency of blocks posted to a process that does not own the pipeline, with
//     Redis wake-ups vs Redis down (the owner's idle poll).
// Run: npm run bench:fleet (Postgres and Redis at DATABASE_URL / REDIS_URL).

import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import pg from 'pg';
import { benchDatabase } from './bench-database.ts';

const STRATA = new URL('../bin/strata.mjs', import.meta.url).pathname;
const FLEET_FIXTURE = new URL('../test/fixtures/fleet', import.meta.url).pathname;
const THROUGHPUT_PROJECT = new URL('./fleet-project', import.meta.url).pathname;
const ERC20 = new URL('../examples/erc20', import.meta.url).pathname;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROUNDS = Number(process.env.FLEET_BENCH_ROUNDS ?? 10);
const database = benchDatabase('strata_bench_fleet');

interface Proc {
  child: ChildProcess;
  url: Promise<string>;
  exited: Promise<void>;
  id: Promise<string>;
}

/** Every process launched, killed when the benchmark ends however it ends (no orphan holds a lease). */
const launched = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of launched) child.kill('SIGKILL');
});

function launch(project: string, env: Record<string, string>, args: string[] = []): Proc {
  const child = spawn(process.execPath, [STRATA, 'start', '--project', project, '--port', '0', ...args], {
    env: {
      ...process.env,
      DATABASE_URL: database.url,
      REDIS_URL,
      STRATA_LOG_FORMAT: 'json',
      STRATA_LOG_LEVEL: 'info',
      STRATA_PROGRESS: 'never',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  launched.add(child);
  child.once('exit', () => launched.delete(child));
  let buffered = '';
  const url = new Promise<string>((resolve) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"url":"(http:[^"]+)","database"[^\n]*"msg":"HTTP listening"/.exec(buffered);
      if (match !== null) resolve(match[1]!);
      if (buffered.length > 100_000) buffered = buffered.slice(-10_000);
    });
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const id = url.then(async (base) => {
    const status = (await (await fetch(`${base}/status`)).json()) as { process: { id: string } };
    return status.process.id;
  });
  return { child, url, exited, id };
}

async function withDb<T>(work: (db: pg.Client) => Promise<T>): Promise<T> {
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  try {
    return await work(db);
  } finally {
    await db.end();
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const ownerOf = (db: pg.Client, pipeline: string) =>
  db
    .query<{ owner: string | null }>(
      'SELECT owner FROM strata.pipeline_leases WHERE pipeline = $1 AND expires_at > now()',
      [pipeline],
    )
    .then((result) => result.rows[0]?.owner ?? null)
    .catch(() => null); // not migrated yet

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** Takeover after the owner is killed (`SIGKILL`) or paused (`SIGSTOP`), ROUNDS times. */
async function takeover(signal: 'SIGKILL' | 'SIGSTOP'): Promise<number[]> {
  await database.recreate();
  const env = { FLEET_PIPELINES: '1' };
  const times: number[] = [];
  await withDb(async (db) => {
    let owner = launch(FLEET_FIXTURE, env);
    await until(async () => (await ownerOf(db, 'm1')) === (await owner.id), 60_000, 'first owner');
    for (let round = 0; round < ROUNDS; round++) {
      const standby = launch(FLEET_FIXTURE, env);
      const standbyId = await standby.id;
      await new Promise((resolve) => setTimeout(resolve, 1_000 + Math.random() * 3_000));
      owner.child.kill(signal);
      const from = performance.now();
      await until(async () => (await ownerOf(db, 'm1')) === standbyId, 60_000, 'takeover');
      times.push(performance.now() - from);
      owner.child.kill('SIGKILL');
      await owner.exited;
      owner = standby;
    }
    owner.child.kill('SIGKILL');
    await owner.exited;
  });
  return times;
}

/** Wall time until every pipeline of the throughput project committed its last block. */
async function throughput(processes: number, blocks: number): Promise<number> {
  await database.recreate();
  const env = { FLEET_BENCH_BLOCKS: String(blocks) };
  const started = performance.now();
  const procs = Array.from({ length: processes }, () => launch(THROUGHPUT_PROJECT, env));
  await withDb((db) =>
    until(
      async () => {
        const { rows } = await db
          .query<{ done: number }>(
            `SELECT count(*)::int AS done FROM strata.pipelines WHERE committed_block >= $1`,
            [blocks],
          )
          .catch(() => ({ rows: [{ done: 0 }] }));
        return rows[0]!.done === 4;
      },
      600_000,
      'all four pipelines committed',
    ),
  );
  const elapsed = performance.now() - started;
  for (const proc of procs) proc.child.kill('SIGTERM');
  await Promise.all(procs.map((proc) => proc.exited));
  return elapsed;
}

/** End-to-end erc20 (generator, --exit-when-caught-up) with the lease fence on or off. */
async function erc20Run(fleet: 'on' | 'off', blocks: number): Promise<number> {
  await database.recreate();
  const started = performance.now();
  const proc = launch(ERC20, { STRATA_FLEET: fleet, ERC20_BLOCKS: String(blocks) }, [
    '--exit-when-caught-up',
  ]);
  await proc.exited;
  return performance.now() - started;
}

/** Ingest → commit latency of one block posted to the non-owner, ROUNDS × 2 samples. */
async function ingestLatency(redisUrl: string): Promise<number[]> {
  await database.recreate();
  const env = { FLEET_PIPELINES: '1', REDIS_URL: redisUrl };
  const samples: number[] = [];
  await withDb(async (db) => {
    const owner = launch(FLEET_FIXTURE, env);
    await until(async () => (await ownerOf(db, 'm1')) === (await owner.id), 60_000, 'owner');
    const other = launch(FLEET_FIXTURE, env);
    const url = await other.url;
    let parent: string | null = null;
    for (let number = 1; number <= ROUNDS * 2; number++) {
      const hash = `h${number}`;
      const block = { number, timestamp: 1_700_000_000 + number, hash, parentHash: parent, events: [] };
      parent = hash;
      await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 300));
      const from = performance.now();
      const response = await fetch(`${url}/v1/pipelines/m1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ blocks: [block] }),
      });
      if (response.status !== 200) throw new Error(`ingest answered ${response.status}`);
      await until(
        async () =>
          (
            await db.query<{ hash: string | null }>(
              `SELECT committed_block_hash AS hash FROM strata.pipelines WHERE name = 'm1'`,
            )
          ).rows[0]?.hash === hash,
        30_000,
        'commit',
      );
      samples.push(performance.now() - from);
    }
    for (const proc of [owner, other]) proc.child.kill('SIGKILL');
    await Promise.all([owner.exited, other.exited]);
  });
  return samples;
}

async function takeovers(): Promise<void> {
  const kills = await takeover('SIGKILL');
  const pauses = await takeover('SIGSTOP');
  console.log(
    `\ntakeover, default lease TTL 10 s, ${ROUNDS} rounds each (time until the other process holds the lease):`,
  );
  console.log(`  after kill -9 : median ${seconds(median(kills))}, max ${seconds(Math.max(...kills))}`);
  console.log(`  after SIGSTOP : median ${seconds(median(pauses))}, max ${seconds(Math.max(...pauses))}`);
}

async function spread(): Promise<void> {
  const blocks = Number(process.env.FLEET_BENCH_BLOCKS ?? 10_000);
  const one = await throughput(1, blocks);
  const two = await throughput(2, blocks);
  const events = 4 * blocks * 10;
  const rate = (ms: number) => Math.round(events / (ms / 1000)).toLocaleString('en-US');
  console.log(
    `\n4 erc20 pipelines × ${(blocks * 10).toLocaleString('en-US')} events (generator), wall time to all committed:`,
  );
  console.log(`  one process   : ${seconds(one)} (${rate(one)} events/s)`);
  console.log(`  two processes : ${seconds(two)} (${rate(two)} events/s)`);
  console.log(`  two / one throughput: ${(one / two).toFixed(2)}×`);
}

async function overhead(): Promise<void> {
  const erc20Blocks = Number(process.env.FLEET_BENCH_ERC20_BLOCKS ?? 30_000);
  const pairs = Number(process.env.FLEET_BENCH_PAIRS ?? 5);
  const on: number[] = [];
  const off: number[] = [];
  for (let pair = 0; pair < pairs; pair++) {
    // Alternated, the order flipped each pair, so drift of the machine falls on both.
    const order: Array<'on' | 'off'> = pair % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
    for (const fleet of order) (fleet === 'on' ? on : off).push(await erc20Run(fleet, erc20Blocks));
  }
  console.log(
    `\nlease overhead, erc20 end to end (${(erc20Blocks * 10).toLocaleString('en-US')} events, ${pairs} alternated pairs):`,
  );
  console.log(`  fence on  : ${on.map(seconds).join(', ')} (median ${seconds(median(on))})`);
  console.log(`  fence off : ${off.map(seconds).join(', ')} (median ${seconds(median(off))})`);
  console.log(`  on / off  : ${(median(on) / median(off)).toFixed(3)}× (target ≤ 1.03)`);
  // The fence itself, measured directly: its statement's cost times the write transactions of a run.
  const transactions = await withDb(async (db) => {
    const { rows } = await db.query<{ sequence: string }>(
      `SELECT commit_sequence AS sequence FROM strata.pipelines WHERE name = 'erc20'`,
    );
    return Number(rows[0]?.sequence ?? 0);
  });
  const perFenceMs = await fenceCost();
  const fenceMs = transactions * perFenceMs;
  console.log(
    `  the fence alone: ${transactions} write transactions × ${(perFenceMs * 1000).toFixed(0)} µs = ${fenceMs.toFixed(0)} ms of a ${seconds(median(on))} run (${((100 * fenceMs) / median(on)).toFixed(2)}%)`,
  );
}

/** Mean time of the fence's statement (a lease row locked FOR SHARE), inside a transaction. */
async function fenceCost(): Promise<number> {
  return withDb(async (db) => {
    await db.query(
      `INSERT INTO strata.pipeline_leases (pipeline, owner, epoch, expires_at) VALUES ('bench', 'me', 1, now() + interval '1 hour')
       ON CONFLICT (pipeline) DO UPDATE SET owner = 'me', epoch = 1`,
    );
    const rounds = 2_000;
    await db.query('BEGIN');
    const started = performance.now();
    for (let i = 0; i < rounds; i++) {
      await db.query(
        'SELECT 1 FROM strata.pipeline_leases WHERE pipeline = $1 AND owner = $2 AND epoch = $3 FOR SHARE',
        ['bench', 'me', 1],
      );
    }
    const mean = (performance.now() - started) / rounds;
    await db.query('COMMIT');
    return mean;
  });
}

async function latency(): Promise<void> {
  const withRedis = await ingestLatency(REDIS_URL);
  const withoutRedis = await ingestLatency('redis://127.0.0.1:1');
  const line = (samples: number[]) =>
    `median ${Math.round(median(samples))} ms, max ${Math.round(Math.max(...samples))} ms`;
  console.log(`\ningest → commit through a process that does not own the pipeline (${ROUNDS * 2} blocks):`);
  console.log(`  Redis wake-ups : ${line(withRedis)}`);
  console.log(`  Redis down     : ${line(withoutRedis)} (the owner's 1 s idle poll)`);
}

/** FLEET_BENCH_ONLY=takeover,throughput,overhead,latency runs some parts (default: all). */
const parts = new Set((process.env.FLEET_BENCH_ONLY ?? 'takeover,throughput,overhead,latency').split(','));

console.log(
  `bench/fleet on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}`,
);
if (parts.has('takeover')) await takeovers();
if (parts.has('throughput')) await spread();
if (parts.has('overhead')) await overhead();
if (parts.has('latency')) await latency();
