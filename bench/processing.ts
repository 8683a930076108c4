// bench/processing: the ERC20 workload (examples/erc20) on real Postgres, every figure of the
// Processing engine issue printed from ONE run:
//  - end to end: the daemon (child process, worker threads, single writer) from the first block
//    to the last commit, for both load strategies (two-pass, prefetch);
//  - the limit: (a) the same handlers over the same events with the in-memory store and no
//    persistence (reads answered "absent" without a database), (b) `COPY` of the final rows into
//    fresh tables with the same DDL; limit = max(a, b), what perfect overlap would give;
//  - limit (c): a plain-JavaScript fold of the same handlers (bench/processing-limits.ts);
//  - ratio end-to-end / limit (target ≤ 1.5 for auto), and (a) / (c) (target ≥ 0.5);
//  - a naive baseline on a slice: one `INSERT … ON CONFLICT` per change through `pg`;
//  - the processing actor's heap after a full GC at 1M and at 5M events (growth ≤ 10%): the
//    median over the newer half of its recent full collections (what it settles at; see
//    src/supervisor/heap-after-gc.ts), with the peak beside it.
// Run: `npm run bench:processing` (EVENTS=1000000 BIG_EVENTS=5000000 GROWTH_ROUNDS=3 by default).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { PipelineConfig } from '../src/config.ts';
import type { LoadStrategy } from '../src/processing/batch-executor.ts';
import { InMemoryStore } from '../src/processing/in-memory-store.ts';
import { loadPipelineModules } from '../src/processing/pipeline-modules.ts';
import { createTableSql, entityTable, quoteIdent } from '../src/schema/ddl.ts';
import { type EntityRow, rowToWire } from '../src/schema/wire.ts';
import { ADMIN_URL, benchDatabase } from './bench-database.ts';
import {
  eachBatch,
  executorFor,
  generatorFor,
  type LimitsRequest,
  type LimitsResult,
  pipelineConfig as limitsPipelineConfig,
} from './processing-limits.ts';
import { inProcessingThread } from './processing-thread.ts';

const EVENTS = Number(process.env.EVENTS ?? 1_000_000);
const BIG_EVENTS = Number(process.env.BIG_EVENTS ?? 5_000_000);
const NAIVE_EVENTS = Number(process.env.NAIVE_EVENTS ?? 20_000);
/** Rounds of limits (a, auto) and (c), alternated; their medians are printed. */
const LIMIT_ROUNDS = Number(process.env.LIMIT_ROUNDS ?? 3);
/** Runs of each size (EVENTS, BIG_EVENTS) for the memory growth figure; their medians compared. */
const GROWTH_ROUNDS = Number(process.env.GROWTH_ROUNDS ?? 3);
const EVENTS_PER_BLOCK = 10;
const PROJECT = new URL('../examples/erc20', import.meta.url).pathname;
const STRATA = new URL('../bin/strata.mjs', import.meta.url).pathname;

const benchDb = benchDatabase('strata_bench_processing');
const databaseUrl = benchDb.url;
const recreateDatabase = () => benchDb.recreate();

interface EndToEnd {
  seconds: number;
  maxRssBytes: number;
  /** The processing actor's peak heap right after a full GC: what it kept alive at its fullest. */
  heapAfterGcBytes: number;
  /** The median of its heap after the newer half of the recent full GCs: what it settled at. */
  heapAfterGcMedianBytes: number;
  reorgs: number;
  /** Reorgs by where their orphaned blocks were undone (the reorg log line's `undid`). */
  reorgsUndid: Record<string, number>;
}

/**
 * The daemon as users run it, until every event is committed (--exit-when-caught-up). `fresh`:
 * on a new database (otherwise the caller prepared it, e.g. `strata reset` for a warm restart).
 */
async function endToEnd(
  events: number,
  strategy: LoadStrategy,
  extraEnv: Record<string, string> = {},
  fresh = true,
): Promise<EndToEnd> {
  if (fresh) await recreateDatabase();
  const child = spawn(process.execPath, [STRATA, 'start', '--project', PROJECT, '--exit-when-caught-up'], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      STRATA_PORT: '0',
      STRATA_LOG_FORMAT: 'json',
      STRATA_PROGRESS: 'never',
      ERC20_BLOCKS: String(events / EVENTS_PER_BLOCK),
      ERC20_EVENTS_PER_BLOCK: String(EVENTS_PER_BLOCK),
      ERC20_LOAD_STRATEGY: strategy,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let started = 0;
  let finished = 0;
  let maxRssBytes = 0;
  let heapAfterGcBytes = 0;
  let heapAfterGcMedianBytes = 0;
  let reorgs = 0;
  const reorgsUndid: Record<string, number> = {};
  // Lines are the daemon's JSON log (and a few plain ones).
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const entry = JSON.parse(line) as {
      msg: string;
      time: number;
      maxRssBytes?: number;
      heapAfterGcPeakBytes?: Record<string, number>;
      heapAfterGcRecentMedianBytes?: Record<string, number>;
      eventsPerSecond?: number;
      undid?: string;
    };
    if (entry.msg === 'pipeline starting from the first block') started = entry.time;
    if (entry.msg.startsWith('reorg: rolled back')) {
      reorgs += 1;
      reorgsUndid[entry.undid ?? '?'] = (reorgsUndid[entry.undid ?? '?'] ?? 0) + 1;
    }
    if (entry.msg.startsWith('every pipeline processed and committed')) finished = entry.time;
    if (entry.msg === 'stopped') maxRssBytes = entry.maxRssBytes ?? 0;
    if (entry.msg === 'actor memory') {
      heapAfterGcBytes = entry.heapAfterGcPeakBytes?.['processing:erc20'] ?? 0;
      heapAfterGcMedianBytes = entry.heapAfterGcRecentMedianBytes?.['processing:erc20'] ?? 0;
    }
    if (entry.msg === 'progress')
      process.stderr.write(`  … ${strategy} ${events.toLocaleString('en-US')}: ${line.slice(0, 160)}\n`);
  });
  // 'close': the process exited and its output was read to the end.
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0 || started === 0 || finished === 0) throw new Error(`daemon run failed (exit ${code})`);
  return {
    seconds: (finished - started) / 1_000,
    maxRssBytes,
    heapAfterGcBytes,
    heapAfterGcMedianBytes,
    reorgs,
    reorgsUndid,
  };
}

const pipelineConfig = () => limitsPipelineConfig(PROJECT);
const sourceFor = (pipeline: PipelineConfig, events: number) =>
  generatorFor(pipeline, events, EVENTS_PER_BLOCK);

/** (a) and (c), in a worker thread like the processing actor's (bench/processing-limits.ts). */
function limits(request: LimitsRequest): Promise<LimitsResult> {
  return inProcessingThread(new URL('./processing-limits.ts', import.meta.url), { limits: request });
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;

/** (b): COPY of the final rows into fresh tables with the pipeline's DDL. */
async function copyFinalRows(): Promise<{ seconds: number; rows: number }> {
  const { schema } = await loadPipelineModules(await pipelineConfig());
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const dumps: Array<{ entity: string; data: Buffer[]; columns: string }> = [];
  let rows = 0;
  for (const entity of schema.entities) {
    const columns = entity.columns.map((column) => quoteIdent(column.name)).join(', ');
    const data: Buffer[] = [];
    // The stream ends at the copy's last row; the client is idle (ready for the next query) only
    // once Postgres said so, which 'drain' tells.
    const idle = once(client, 'drain');
    await pipeline(
      client.query(copyTo(`COPY ${entityTable('erc20', entity.name)} (${columns}) TO STDOUT`)),
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          data.push(chunk);
          done();
        },
      }),
    );
    await idle;
    const { rows: count } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${entityTable('erc20', entity.name)}`,
    );
    rows += count[0]!.n;
    dumps.push({ entity: entity.name, data, columns });
  }
  await client.query('CREATE SCHEMA "pipeline_copylimit"');
  for (const entity of schema.entities)
    for (const sql of createTableSql('copylimit', entity)) await client.query(sql);
  const started = performance.now();
  for (const dump of dumps) {
    await pipeline(
      Readable.from(dump.data),
      client.query(copyFrom(`COPY ${entityTable('copylimit', dump.entity)} (${dump.columns}) FROM STDIN`)),
    );
  }
  const seconds = (performance.now() - started) / 1_000;
  await client.end();
  return { seconds, rows };
}

/** A slice written the naive way: one upsert statement per change, one transaction per batch. */
async function naive(events: number): Promise<number> {
  await recreateDatabase();
  const pipelineConf = await pipelineConfig();
  const { schema, handlers } = await loadPipelineModules(pipelineConf);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query('CREATE SCHEMA "pipeline_erc20"');
  for (const entity of schema.entities)
    for (const sql of createTableSql('erc20', entity)) await client.query(sql);
  const store = new InMemoryStore(schema);
  // The handlers' reads go through a pool, as the daemon's do: the LoadLayer runs its queries for
  // several entities at once, which one client would only queue (pg deprecates that).
  const reads = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  const executor = executorFor(pipelineConf, { schema, handlers }, store, reads, 'two-pass');
  const statements = new Map(
    schema.entities.map((entity) => {
      const names = entity.columns.map((column) => quoteIdent(column.name));
      const params = entity.columns.map((_, index) => `$${index + 1}`);
      const updates = names.slice(1).map((name) => `${name} = EXCLUDED.${name}`);
      return [
        entity.name,
        `INSERT INTO ${entityTable('erc20', entity.name)} (${names.join(', ')}) VALUES (${params.join(', ')}) ON CONFLICT ("id") DO UPDATE SET ${updates.join(', ')}`,
      ];
    }),
  );
  const seconds = await eachBatch(
    sourceFor(pipelineConf, events),
    pipelineConf.batchSize,
    async (blocks, firstCheckpoint) => {
      await executor.run(blocks, firstCheckpoint, false);
      await client.query('BEGIN');
      for (const [name, table] of store.tables) {
        const rows: EntityRow[] = [];
        table.forEachBatchChange((_id, change) => {
          if (change.kind === 'set') rows.push(change.row);
        });
        for (const row of rows) await client.query(statements.get(name)!, rowToWire(table.entity, row));
      }
      await client.query('COMMIT');
    },
  );
  await Promise.all([client.end(), reads.end()]);
  return events / seconds;
}

const rate = (events: number, seconds: number) => Math.round(events / seconds).toLocaleString('en-US');
const mib = (bytes: number) => `${(bytes / 1_048_576).toFixed(0)} MiB`;

console.log(
  `bench/processing: erc20 (examples/erc20), ${EVENTS.toLocaleString('en-US')} events, Postgres at ${new URL(ADMIN_URL).host}, node ${process.version}`,
);
const STRATEGIES = ['auto', 'prefetch', 'two-pass'] as const;
// ONLY=limits: just limits (a) and (c); ONLY=engine2: just the Processing engine II figures.
// ONLY=engine1: the end-to-end figures without Processing engine II's.
if (process.env.ONLY === 'limits') printLimits(await measureLimits());
else {
  if (process.env.ONLY !== 'engine2') await engineOne();
  if (process.env.ONLY !== 'engine1') await engineTwo();
}

function measureLimits(): Promise<LimitsResult> {
  return limits({
    events: EVENTS,
    eventsPerBlock: EVENTS_PER_BLOCK,
    project: PROJECT,
    rounds: LIMIT_ROUNDS,
    strategies: process.env.ONLY === 'limits' && process.env.LIMIT_AUTO_ONLY ? ['auto'] : [...STRATEGIES],
  });
}

/** Prints (a) per strategy and (c); returns (a)'s median seconds per strategy. */
function printLimits(result: LimitsResult): Record<string, number> {
  const seconds: Record<string, number> = {};
  for (const strategy of STRATEGIES) {
    const runs = result.inMemory[strategy];
    if (runs === undefined) continue;
    seconds[strategy] = median(runs);
    const note = runs.length > 1 ? `  (median of ${runs.map((run) => run.toFixed(2)).join(', ')} s)` : '';
    console.log(
      `  (a) in-memory, ${strategy.padEnd(9)} ${seconds[strategy].toFixed(2).padStart(7)} s  ${rate(EVENTS, seconds[strategy]).padStart(9)} events/s${note}`,
    );
  }
  const fold = median(result.plainFold);
  console.log(
    `  (c) plain-JS fold          ${fold.toFixed(2).padStart(7)} s  ${rate(EVENTS, fold).padStart(9)} events/s  (median of ${result.plainFold.map((run) => run.toFixed(2)).join(', ')} s)`,
  );
  console.log(
    `(a) / (c), auto: ${(fold / seconds.auto!).toFixed(2)} of the plain fold's throughput (target ≥ 0.50)`,
  );
  return seconds;
}

async function engineOne(): Promise<void> {
  const limitsResult = await measureLimits();
  const e2e: Record<string, EndToEnd> = {};
  for (const strategy of STRATEGIES) e2e[strategy] = await endToEnd(EVENTS, strategy);
  const copy = await copyFinalRows(); // reads the tables of the last end-to-end run
  const naiveRate = await naive(NAIVE_EVENTS);

  const chosen: LoadStrategy = (await pipelineConfig()).loadStrategy;
  console.log('');
  console.log('end to end (daemon, first block → last commit)');
  for (const [strategy, run] of Object.entries(e2e)) {
    console.log(
      `  ${strategy.padEnd(9)} ${run.seconds.toFixed(2).padStart(7)} s  ${rate(EVENTS, run.seconds).padStart(9)} events/s  peak RSS ${mib(run.maxRssBytes)}, processing heap after GC ${mib(run.heapAfterGcMedianBytes)} (peak ${mib(run.heapAfterGcBytes)})`,
    );
  }
  console.log('limit');
  const inMemorySeconds = printLimits(limitsResult);
  console.log(
    `  (b) COPY of the final ${copy.rows.toLocaleString('en-US')} rows  ${copy.seconds.toFixed(2).padStart(7)} s`,
  );
  for (const strategy of STRATEGIES) {
    const limit = Math.max(inMemorySeconds[strategy]!, copy.seconds);
    console.log(
      `ratio end-to-end / limit, ${strategy}: ${(e2e[strategy]!.seconds / limit).toFixed(2)} (limit ${limit.toFixed(2)} s; target ≤ 1.5 for auto)`,
    );
  }
  console.log(
    `naive baseline (one upsert per change, ${NAIVE_EVENTS.toLocaleString('en-US')}-event slice): ${Math.round(naiveRate).toLocaleString('en-US')} events/s`,
  );
  console.log(`default load strategy: ${chosen}`);

  if (BIG_EVENTS > 0) {
    // Memory growth from the heap the processing actor settles at after full GCs (what it keeps
    // alive): peak RSS of two identical runs differed by 20% here, and a peak of any kind rises
    // with the number of collections a longer run has to catch a full moment, so both peaks are
    // shown but not compared. Even the settled heap of one run moved between 37 and 51 MiB over
    // identical 1M-event runs (a run has only a few full GCs; each catches the store somewhere in
    // its fill-and-drop cycle), so each size runs GROWTH_ROUNDS times, alternated, and the
    // medians are compared.
    const smallRuns = [e2e[chosen]!];
    const bigRuns: EndToEnd[] = [];
    for (let round = 0; round < GROWTH_ROUNDS; round++) {
      bigRuns.push(await endToEnd(BIG_EVENTS, chosen));
      if (smallRuns.length < GROWTH_ROUNDS) smallRuns.push(await endToEnd(EVENTS, chosen));
    }
    const settled = (runs: EndToEnd[]) => median(runs.map((run) => run.heapAfterGcMedianBytes));
    const listed = (runs: EndToEnd[]) => runs.map((run) => mib(run.heapAfterGcMedianBytes)).join(', ');
    const small = settled(smallRuns);
    const big = settled(bigRuns);
    const growth = (to: number, from: number) => `${(((to - from) / from) * 100).toFixed(1)}%`;
    const bigSeconds = median(bigRuns.map((run) => run.seconds));
    console.log(
      `processing heap after GC (median of the recent full GCs; median of ${GROWTH_ROUNDS} runs): ${mib(small)} at ${EVENTS.toLocaleString('en-US')} events (${listed(smallRuns)}), ${mib(big)} at ${BIG_EVENTS.toLocaleString('en-US')} events (${listed(bigRuns)}; ${rate(BIG_EVENTS, bigSeconds)} events/s) → growth ${growth(big, small)} (target ≤ 10%)`,
    );
    const peak = (runs: EndToEnd[], figure: 'heapAfterGcBytes' | 'maxRssBytes') =>
      median(runs.map((run) => run[figure]));
    console.log(
      `  peaks (medians), not compared: heap after GC ${mib(peak(smallRuns, 'heapAfterGcBytes'))} → ${mib(peak(bigRuns, 'heapAfterGcBytes'))}, RSS ${mib(peak(smallRuns, 'maxRssBytes'))} → ${mib(peak(bigRuns, 'maxRssBytes'))}`,
    );
  }
}

/**
 * Processing engine II, one run, ENGINE2_EVENTS events each (default EVENTS / 2), auto strategy:
 *  - reorgs: a reorg of depth 1..10 every 100 blocks (the generator serves the orphaned branch,
 *    then the canonical one: orphaned blocks are processed, written with history and rolled
 *    back) vs the same run without reorgs — both inside the reorg threshold (history written),
 *    so the ratio is the cost of the reorgs themselves; and vs no history at all;
 *  - history: the whole run inside the threshold (fullHistory) vs outside it;
 *  - effects: every Transfer calls an effect (~20 ms latency, 250 calls/s at most) over 1,000
 *    distinct inputs; a cold run vs a warm restart (`strata reset`: the pipeline rebuilt, the
 *    effect cache kept).
 */
async function engineTwo(): Promise<void> {
  const events = Number(process.env.ENGINE2_EVENTS ?? EVENTS / 2);
  const run = (env: Record<string, string>, fresh = true) => endToEnd(events, 'auto', env, fresh);
  const outside = await run({});
  const inside = await run({ ERC20_FULL_HISTORY: 'true' });
  const reorgs = await run({ ERC20_REORG_EVERY: '100', ERC20_REORG_DEPTH: '10' });
  const cold = await run({ ERC20_EFFECT: 'true' });
  const reset = spawn(process.execPath, [STRATA, 'reset', 'erc20', '--project', PROJECT], {
    env: { ...process.env, DATABASE_URL: databaseUrl },
    stdio: 'ignore',
  });
  if ((await new Promise((resolve) => reset.on('exit', resolve))) !== 0)
    throw new Error('strata reset failed');
  const warm = await run({ ERC20_EFFECT: 'true' }, false);

  const line = (label: string, r: EndToEnd) =>
    console.log(
      `  ${label.padEnd(34)} ${r.seconds.toFixed(2).padStart(7)} s  ${rate(events, r.seconds).padStart(9)} events/s`,
    );
  console.log('');
  console.log(`processing engine II (erc20, ${events.toLocaleString('en-US')} events each, auto)`);
  line('no reorgs, outside the threshold', outside);
  line('no reorgs, inside (fullHistory)', inside);
  line(`reorgs ≤10 every 100 blocks (${reorgs.reorgs})`, reorgs);
  line('effect on every Transfer, cold', cold);
  line('effect on every Transfer, warm', warm);
  const undid = Object.entries(reorgs.reorgsUndid).map(([way, count]) => `${count} in the ${way}`);
  console.log(`reorgs undone: ${undid.join(', ')}`);
  console.log(
    `reorg throughput ratio: ${(inside.seconds / reorgs.seconds).toFixed(2)} vs the same run without reorgs (both with history; target ≥ 0.8), ${(outside.seconds / reorgs.seconds).toFixed(2)} vs no history`,
  );
  console.log(
    `history cost: inside / outside the threshold = ${(inside.seconds / outside.seconds).toFixed(2)}× the time`,
  );
  console.log(`effects: warm restart / cold = ${(cold.seconds / warm.seconds).toFixed(2)}× the throughput`);
}
