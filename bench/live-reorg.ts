// bench/live-reorg: how long a live chain's reorg takes to settle, against how long a plain new
// block takes, in one run. The daemon follows an ingest log (examples/erc20 with
// ERC20_SOURCE=ingest, erc20 events); after a backfill, each round appends a few blocks and waits
// until the tip is committed (the reference), then posts a replacement branch for the last 1..10
// *committed* blocks plus one new block, and waits until the new tip is committed: the orphaned
// blocks were written, so the writer restores their entities from history (the reorg log line
// says `undid: "stored state"`). Latencies are measured from the POST to the commit seen in
// strata.pipelines (polled every 2 ms).
// Run: `npm run bench:live-reorg` (ROUNDS=40 by default).

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { generateBlock, mulberry32 } from '../src/sources/generator.ts';
import type { Block } from '../src/sources/types.ts';
import { benchDatabase } from './bench-database.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 40);
const BACKFILL_BLOCKS = Number(process.env.BACKFILL_BLOCKS ?? 2_000);
const PROJECT = new URL('../examples/erc20', import.meta.url).pathname;
const STRATA = new URL('../bin/strata.mjs', import.meta.url).pathname;
const SHAPE = {
  workload: 'erc20' as const,
  seed: 1,
  eventsPerBlock: 10,
  addresses: 50_000,
  distribution: 'skewed' as const,
};

const benchDb = benchDatabase('strata_bench_live_reorg');
const databaseUrl = benchDb.url;

type IngestBlock = Pick<Block, 'number' | 'timestamp' | 'events'> & {
  hash: string;
  parentHash: string | null;
};

/** The canonical chain as posted: erc20 events, hashes naming their branch. */
class Chain {
  blocks: IngestBlock[] = [];
  private branches = 0;

  append(count: number): IngestBlock[] {
    const added: IngestBlock[] = [];
    for (let i = 0; i < count; i++) {
      const parent = this.blocks[this.blocks.length - 1];
      const number = (parent?.number ?? 0) + 1;
      // Another branch's block at the same height gets other events (another generator block).
      const { events } = generateBlock(SHAPE, number + this.branches * 1_000_000);
      const block = {
        number,
        timestamp: 1_735_689_600 + number * 12,
        events,
        hash: `0x${this.branches}-${number}`,
        parentHash: parent?.hash ?? null,
      };
      this.blocks.push(block);
      added.push(block);
    }
    return added;
  }

  /** Replaces the last `depth` blocks with a new branch one block longer. */
  replace(depth: number): IngestBlock[] {
    this.blocks = this.blocks.slice(0, this.blocks.length - depth);
    this.branches += 1;
    return this.append(depth + 1);
  }

  get tip(): IngestBlock {
    return this.blocks[this.blocks.length - 1]!;
  }
}

async function post(url: string, blocks: IngestBlock[]): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ blocks }),
  });
  if (response.status !== 200)
    throw new Error(`ingest answered ${response.status}: ${await response.text()}`);
}

/** Milliseconds from now until the pipeline's committed block hash is `hash`. */
async function untilCommitted(client: pg.Client, hash: string, started: number): Promise<number> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { rows } = await client.query<{ committed_block_hash: string | null }>(
      `SELECT committed_block_hash FROM strata.pipelines WHERE name = 'erc20'`,
    );
    if (rows[0]?.committed_block_hash === hash) return performance.now() - started;
    if (Date.now() > deadline) throw new Error(`block ${hash} not committed within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const p90 = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length * 0.9)]!;

await benchDb.recreate();
const daemon = spawn(process.execPath, [STRATA, 'start', '--project', PROJECT], {
  env: {
    ...process.env,
    DATABASE_URL: databaseUrl,
    ERC20_SOURCE: 'ingest',
    STRATA_PORT: '0',
    STRATA_LOG_FORMAT: 'json',
    STRATA_PROGRESS: 'never',
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});
const undid: Record<string, number> = {};
const reorgDurations: number[] = [];
const url = await new Promise<string>((resolve, reject) => {
  daemon.on('exit', (code) => reject(new Error(`daemon exited (${code})`)));
  createInterface({ input: daemon.stdout }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const entry = JSON.parse(line) as { msg: string; url?: string; undid?: string; durationMs?: number };
    if (entry.msg === 'HTTP listening') resolve(entry.url!);
    if (entry.msg.startsWith('reorg: rolled back')) {
      undid[entry.undid ?? '?'] = (undid[entry.undid ?? '?'] ?? 0) + 1;
      reorgDurations.push(entry.durationMs ?? 0);
    }
  });
});
const ingest = `${url}/v1/pipelines/erc20/events`;
const client = new pg.Client({ connectionString: databaseUrl });
await client.connect();

const chain = new Chain();
for (let posted = 0; posted < BACKFILL_BLOCKS; posted += 500) await post(ingest, chain.append(500));
await untilCommitted(client, chain.tip.hash, performance.now());

const random = mulberry32(7);
const appendMs: number[] = [];
const reorgMs: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  let started = performance.now();
  await post(ingest, chain.append(3));
  appendMs.push(await untilCommitted(client, chain.tip.hash, started));
  const depth = 1 + Math.floor(random() * 10);
  started = performance.now();
  await post(ingest, chain.replace(depth));
  reorgMs.push(await untilCommitted(client, chain.tip.hash, started));
}
await client.end();
daemon.kill('SIGTERM');
await new Promise((resolve) => daemon.on('exit', resolve));

const ms = (value: number) => `${value.toFixed(1)} ms`;
console.log('');
console.log(`live reorgs (erc20 events over the ingest log, ${ROUNDS} rounds, node ${process.version})`);
console.log(`  3 new blocks → committed          median ${ms(median(appendMs))}, p90 ${ms(p90(appendMs))}`);
console.log(
  `  reorg of 1..10 committed blocks   median ${ms(median(reorgMs))}, p90 ${ms(p90(reorgMs))} (new branch committed)`,
);
console.log(
  `  the rollback itself (log)         median ${ms(median(reorgDurations))}; undone: ${Object.entries(undid)
    .map(([way, count]) => `${count} in the ${way}`)
    .join(', ')}`,
);
console.log(`ratio reorg / append latency: ${(median(reorgMs) / median(appendMs)).toFixed(2)}`);
