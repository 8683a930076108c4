// bench/shapes: live shapes at scale, in one run. The daemon follows an ingest log
// (examples/erc20, ERC20_SOURCE=ingest) on Postgres. For each tier of idle shapes on the Account
// table (`id = '<address>'`, routed through the equality index), one more shape is watched by a
// live long-poll and each round posts a block that changes its row: the latency is from the POST
// to the long-poll's answer (ingest, processing, the write, the materializer, HTTP). Also: the
// materializer's heap after GC per idle shape (from /metrics, before and after the largest
// tier); 1,000 live clients on one shape (POST → each client's answer); and a snapshot of a
// 1M-row table (followed through its chunks) against `COPY … TO STDOUT` of the same rows. Then the
// write path's budget: an erc20 backfill over ingest with no shapes against one with 1,000
// eq-shapes on Account — idle, and each followed by a live client: a long-poll on node:http, on
// `fetch`, and an SSE stream (two of each, alternated).
// Run: `npm run bench:shapes` (TIERS=100,10000,100000 ROUNDS=30 FANOUT_CLIENTS=1000
// SNAPSHOT_ROWS=1000000 BUDGET_BLOCKS=10000 by default).

import { setMaxListeners } from 'node:events';
import { Agent, get as httpGet } from 'node:http';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { addressName, generateBlock } from '../src/sources/generator.ts';
import { startBenchDaemon } from './bench-daemon.ts';
import { benchDatabase } from './bench-database.ts';
import { cpuSeconds } from './proc-figures.ts';

const TIERS = (process.env.TIERS ?? '100,10000,100000').split(',').map(Number);
const ROUNDS = Number(process.env.ROUNDS ?? 30);
const ACCOUNTS = Number(process.env.ACCOUNTS ?? 20_000);
const CONCURRENCY = 32;

const benchDb = benchDatabase('strata_bench_shapes');
await benchDb.recreate();

/** A daemon of examples/erc20 on the ingest source, on `databaseUrl`. */
const startDaemon = (databaseUrl: string) => startBenchDaemon({ DATABASE_URL: databaseUrl });

const daemon = await startDaemon(benchDb.url);
const base = daemon.base;

let block = 0;
async function post(events: unknown[]): Promise<void> {
  block += 1;
  const response = await fetch(`${base}/v1/pipelines/erc20/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ blocks: [{ number: block, timestamp: 1_700_000_000 + block, events }] }),
  });
  if (response.status !== 200)
    throw new Error(`ingest answered ${response.status}: ${await response.text()}`);
}
const address = (i: number) => `0x${i.toString(16).padStart(40, '0')}`;
const transfer = (from: string, to: string) => ({ name: 'Transfer', payload: { from, to, value: '1' } });

/** A shape's snapshot, followed through its chunks: its handle, the offset after it, its rows. */
async function shape(
  where: string,
  on = base,
): Promise<{ handle: string; offset: string; rows: number; chunks: number }> {
  const query = `table=Account&where=${encodeURIComponent(where)}`;
  let response = await fetch(`${on}/v1/shape?${query}&offset=-1`);
  let rows = 0;
  let chunks = 0;
  for (;;) {
    if (response.status !== 200)
      throw new Error(`shape answered ${response.status}: ${await response.text()}`);
    const body = (await response.json()) as Array<{ key?: string }>;
    rows += body.filter((message) => message.key !== undefined).length;
    chunks += 1;
    const handle = response.headers.get('electric-handle')!;
    const offset = response.headers.get('electric-offset')!;
    if (response.headers.has('electric-up-to-date')) return { handle, offset, rows, chunks };
    response = await fetch(`${on}/v1/shape?${query}&handle=${handle}&offset=${offset}`);
  }
}

async function heapAfterGc(): Promise<number> {
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const match = /^strata_actor_heap_after_gc_peak_bytes\{actor="materializer"\} (\d+)/m.exec(metrics);
  return Number(match?.[1] ?? 0);
}

async function committed(): Promise<number> {
  const status = (await (await fetch(`${base}/status`)).json()) as {
    pipelines: Array<{ committedCheckpoint: number }>;
  };
  return status.pipelines[0]?.committedCheckpoint ?? 0;
}

// The table: ACCOUNTS accounts, in blocks of 1,000 transfers.
for (let i = 0; i < ACCOUNTS; i += 1_000) {
  await post(Array.from({ length: 500 }, (_, k) => transfer(address(i + 2 * k), address(i + 2 * k + 1))));
}
while ((await committed()) < block) await new Promise((resolve) => setTimeout(resolve, 50));

const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;
let opened = 0;
// The materializer reports its heap with its pongs: wait for the first report.
let heapBefore = await heapAfterGc();
while (heapBefore === 0) {
  await new Promise((resolve) => setTimeout(resolve, 200));
  heapBefore = await heapAfterGc();
}
const results: Array<{ tier: number; p50: number; p99: number; openPerSecond: number }> = [];
for (const tier of TIERS) {
  // Idle shapes, most on ids that do not exist (they stay empty), opened CONCURRENCY at a time.
  const started = performance.now();
  const target = tier;
  let next = opened;
  const worker = async () => {
    while (next < target) {
      const i = next++;
      await shape(`id = '${address(10_000_000 + i)}'`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const openPerSecond = (target - opened) / ((performance.now() - started) / 1_000);
  opened = target;

  const watched = address(tier % ACCOUNTS);
  let { handle, offset } = await shape(`id = '${watched}'`);
  const latencies: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const poll = fetch(
      `${base}/v1/shape?table=Account&where=${encodeURIComponent(`id = '${watched}'`)}&handle=${handle}&offset=${offset}&live=true`,
    );
    await new Promise((resolve) => setTimeout(resolve, 20)); // the long-poll is waiting
    const sent = performance.now();
    await post([transfer(watched, address(ACCOUNTS + round))]);
    const response = await poll;
    const body = (await response.json()) as Array<{ key?: string }>;
    if (!body.some((message) => message.key !== undefined))
      throw new Error('the long-poll answered without the change');
    latencies.push(performance.now() - sent);
    offset = response.headers.get('electric-offset')!;
    handle = response.headers.get('electric-handle')!;
  }
  results.push({ tier, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), openPerSecond });
  console.error(`  … ${tier} shapes: p50 ${percentile(latencies, 0.5).toFixed(1)} ms`);
}
const heapAfter = await heapAfterGc();

// FANOUT_CLIENTS live clients on one shape: each round, once all of them wait, one POST changes
// its row; each client's latency is from the POST to its own answer.
const FANOUT_CLIENTS = Number(process.env.FANOUT_CLIENTS ?? 1_000);
const FANOUT_ROUNDS = 10;
const fanWatched = address(1);
const fanWhere = encodeURIComponent(`id = '${fanWatched}'`);
let fan = await shape(`id = '${fanWatched}'`);
const fanLatencies: number[] = [];
for (let round = 0; round < FANOUT_ROUNDS; round++) {
  let sent = 0;
  const polls = Array.from({ length: FANOUT_CLIENTS }, async () => {
    const response = await fetch(
      `${base}/v1/shape?table=Account&where=${fanWhere}&handle=${fan.handle}&offset=${fan.offset}&live=true`,
    );
    await response.arrayBuffer();
    fanLatencies.push(performance.now() - sent);
    return response.headers.get('electric-offset')!;
  });
  for (;;) {
    const status = (await (await fetch(`${base}/status`)).json()) as { shapes?: { liveRequests: number } };
    if ((status.shapes?.liveRequests ?? 0) >= FANOUT_CLIENTS) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  sent = performance.now();
  await post([transfer(fanWatched, address(ACCOUNTS + 1_000 + round))]);
  const offsets = await Promise.all(polls);
  fan = { ...fan, offset: offsets[0]! };
}

// A snapshot of a SNAPSHOT_ROWS-row table vs COPY of the same rows (on a database of its own).
const SNAPSHOT_ROWS = Number(process.env.SNAPSHOT_ROWS ?? 1_000_000);
await daemon.stop();
const snapshotDb = benchDatabase('strata_bench_shapes_snapshot');
await snapshotDb.recreate();
const loaded = await startDaemon(snapshotDb.url);
for (let i = 0, number = 1; i < SNAPSHOT_ROWS; i += 2_000, number++) {
  const events = Array.from({ length: Math.min(1_000, (SNAPSHOT_ROWS - i) / 2) }, (_, k) =>
    transfer(address(20_000_000 + i + 2 * k), address(20_000_000 + i + 2 * k + 1)),
  );
  const response = await fetch(`${loaded.base}/v1/pipelines/erc20/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ blocks: [{ number, timestamp: 1_700_000_000 + number, events }] }),
  });
  if (response.status !== 200) throw new Error(`ingest answered ${response.status}`);
}
for (;;) {
  const client = new pg.Client({ connectionString: snapshotDb.url });
  await client.connect();
  const { rows } = await client
    .query<{ n: string }>(`SELECT count(*) AS n FROM pipeline_erc20."Account"`)
    .catch(() => ({ rows: [{ n: '0' }] }));
  await client.end();
  if (Number(rows[0]!.n) >= SNAPSHOT_ROWS) break;
  await new Promise((resolve) => setTimeout(resolve, 500));
}
const client = new pg.Client({ connectionString: snapshotDb.url });
await client.connect();
const copyStarted = performance.now();
let copied = 0;
await pipeline(
  client.query(copyTo('COPY (SELECT * FROM pipeline_erc20."Account") TO STDOUT')),
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      copied += chunk.length;
      done();
    },
  }),
);
const copySeconds = (performance.now() - copyStarted) / 1_000;
await client.end();
const snapshotStarted = performance.now();
const all = await shape('true', loaded.base);
const snapshotSeconds = (performance.now() - snapshotStarted) / 1_000;
await loaded.stop();

console.log(
  `bench/shapes: erc20 Account (${ACCOUNTS.toLocaleString('en-US')} rows), Postgres, node ${process.version}`,
);
console.log('idle eq-shapes   opened/s   change → client p50   p99');
for (const r of results) {
  console.log(
    `${r.tier.toLocaleString('en-US').padStart(14)}   ${Math.round(r.openPerSecond).toLocaleString('en-US').padStart(8)}   ${r.p50.toFixed(1).padStart(17)} ms   ${r.p99.toFixed(1).padStart(6)} ms`,
  );
}
const first = results[0]!;
const last = results[results.length - 1]!;
console.log(
  `p50 at ${last.tier.toLocaleString('en-US')} shapes / at ${first.tier.toLocaleString('en-US')}: ${(last.p50 / first.p50).toFixed(2)}× (target ≤ 1.2)`,
);
console.log(
  `materializer heap after GC: ${(heapBefore / 1_048_576).toFixed(0)} → ${(heapAfter / 1_048_576).toFixed(0)} MiB over ${opened.toLocaleString('en-US')} shapes = ${((heapAfter - heapBefore) / opened).toFixed(0)} bytes per idle shape (target ≤ 2 KB)`,
);
console.log(
  `${FANOUT_CLIENTS.toLocaleString('en-US')} live clients on one shape, ${FANOUT_ROUNDS} commits: POST → each client's answer p50 ${percentile(fanLatencies, 0.5).toFixed(1)} ms, p99 ${percentile(fanLatencies, 0.99).toFixed(1)} ms, last ${Math.max(...fanLatencies).toFixed(1)} ms (the clients run on the same cores)`,
);
console.log(
  `snapshot of ${all.rows.toLocaleString('en-US')} rows in ${all.chunks} chunks: ${Math.round(all.rows / snapshotSeconds).toLocaleString('en-US')} rows/s; COPY TO STDOUT of the same table: ${Math.round(all.rows / copySeconds).toLocaleString('en-US')} rows/s (${(copied / 1_048_576).toFixed(1)} MiB)`,
);

// The write path's budget: an erc20 backfill over the ingest API with no shapes, and with 1,000
// eq-shapes on Account each followed by a live client (long-polls, or SSE streams), alternated.
const BUDGET_BLOCKS = Number(process.env.BUDGET_BLOCKS ?? 10_000);
const BUDGET_SHAPES = Number(process.env.BUDGET_SHAPES ?? 1_000);
const WARM_UP_BLOCKS = 1_000;
const budgetDb = benchDatabase('strata_bench_shapes_budget');
const GENERATOR = {
  workload: 'erc20' as const,
  seed: 1,
  eventsPerBlock: 10,
  addresses: 50_000,
  distribution: 'skewed' as const,
};

/** Per kind of run, the CPU the daemon and this benchmark (its clients) used while timed. */
const cpu = new Map<string, Array<{ daemon: number; clients: number }>>();
/** Per kind of run, the live requests the daemon answered while timed. */
const liveAnswers = new Map<string, number[]>();

/** Live shape requests the daemon has answered (strata_shape_requests_total, kind live). */
async function liveAnswered(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('strata_shape_requests_total{') && line.includes('kind="live"'))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** Up-to-date events the SSE followers received (one per change of their shape). */
const sseUpdates = { count: 0 };

/** One keep-alive connection per live follower (node:http: see `liveGet`). */
const followerAgent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

/**
 * A GET through node:http, answering the two headers a follower needs. The followers stand in for
 * clients on other machines: on these two shared cores, `fetch` (undici's WHATWG layers) cost
 * them ~0.47 ms of CPU per long-poll here, which the daemon then waited for; node:http ~0.17 ms.
 */
function liveGet(url: string, signal: AbortSignal): Promise<{ handle?: string; offset?: string }> {
  return new Promise((resolve, reject) => {
    const request = httpGet(url, { agent: followerAgent, signal }, (response) => {
      response.resume(); // the body is not needed: only the headers move the follower on
      response.once('end', () =>
        resolve({
          handle: response.headers['electric-handle'] as string | undefined,
          offset: response.headers['electric-offset'] as string | undefined,
        }),
      );
      response.once('error', reject);
    });
    request.once('error', reject);
  });
}

/** The control message an SSE follower counts. */
const UP_TO_DATE = 'up-to-date';

/**
 * An SSE follower (`live_sse=true`, what Electric's client does with `liveSse: true`): one held
 * response per client, each commit's changes written to it as events — no request per update.
 * Counts the up-to-date events it receives after its first (one per change of its shape);
 * `following` settles when the stream ends for good, `ready` at that first up-to-date (the stream
 * is open and caught up). Reconnects should the daemon end the stream (it holds one for 60 s,
 * longer than a run).
 */
function sseFollow(
  url: string,
  signal: AbortSignal,
  updates: { count: number },
): { ready: Promise<void>; following: Promise<void> } {
  let caughtUp: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    caughtUp = resolve;
  });
  let first = true;
  const follow = (): Promise<void> =>
    new Promise((resolve) => {
      /** Not following any more (an error, or an answer that is not a stream, e.g. a 409). */
      const stop = () => {
        caughtUp();
        resolve();
      };
      const request = httpGet(url, { agent: followerAgent, signal }, (response) => {
        if (response.statusCode !== 200) {
          response.resume();
          stop();
          return;
        }
        response.setEncoding('utf8');
        // The end of the last chunk, too short to hold a whole marker: one split across two
        // chunks is found in the next.
        let carry = '';
        response.on('data', (chunk: string) => {
          const text = carry + chunk;
          for (let at = text.indexOf(UP_TO_DATE); at !== -1; at = text.indexOf(UP_TO_DATE, at + 1)) {
            if (first) {
              first = false;
              caughtUp();
            } else updates.count += 1;
          }
          carry = text.slice(-(UP_TO_DATE.length - 1));
        });
        response.once('end', () => resolve(signal.aborted ? undefined : follow()));
        response.once('error', stop);
      });
      request.once('error', stop);
    });
  return { ready, following: follow() };
}

type Followers = 'none' | 'fetch' | 'node:http' | 'sse';

async function backfill(shapes: number, followers: Followers): Promise<number> {
  await budgetDb.recreate();
  const run = await startDaemon(budgetDb.url);
  const stopFollowing = new AbortController();
  setMaxListeners(0, stopFollowing.signal); // one per follower's request
  const following: Array<Promise<void>> = [];
  const follow = async (where: string) => {
    const query = `table=Account&where=${encodeURIComponent(where)}`;
    const response = await fetch(`${run.base}/v1/shape?${query}&offset=-1`);
    await response.arrayBuffer();
    let handle = response.headers.get('electric-handle')!;
    let offset = response.headers.get('electric-offset')!;
    if (followers === 'none') return;
    if (followers === 'sse') {
      const url = `${run.base}/v1/shape?${query}&handle=${handle}&offset=${offset}&live=true&live_sse=true`;
      const { ready, following: stream } = sseFollow(url, stopFollowing.signal, sseUpdates);
      following.push(stream);
      await ready;
      return;
    }
    const next = async (url: string) => {
      if (followers === 'node:http') return liveGet(url, stopFollowing.signal);
      const answer = await fetch(url, { signal: stopFollowing.signal });
      await answer.arrayBuffer();
      return {
        handle: answer.headers.get('electric-handle') ?? undefined,
        offset: answer.headers.get('electric-offset') ?? undefined,
      };
    };
    following.push(
      (async () => {
        while (!stopFollowing.signal.aborted) {
          try {
            const answer = await next(
              `${run.base}/v1/shape?${query}&handle=${handle}&offset=${offset}&live=true`,
            );
            handle = answer.handle ?? handle;
            offset = answer.offset ?? offset;
          } catch {
            return;
          }
        }
      })(),
    );
  };
  // Both runs start warm: a first stretch of the chain is processed before the clock starts.
  await postBlocks(1, WARM_UP_BLOCKS);
  await committedUpTo(WARM_UP_BLOCKS);
  for (let i = 0; i < shapes; i++) await follow(`id = '${addressName(i)}'`);
  const started = performance.now();
  const daemonCpu = cpuSeconds(run.pid);
  const clientsCpu = process.cpuUsage();
  const answeredBefore = await liveAnswered(run.base);
  const sseUpdatesBefore = sseUpdates.count;
  await postBlocks(WARM_UP_BLOCKS + 1, WARM_UP_BLOCKS + BUDGET_BLOCKS);
  await committedUpTo(WARM_UP_BLOCKS + BUDGET_BLOCKS);
  const seconds = (performance.now() - started) / 1_000;
  const clientsUsed = process.cpuUsage(clientsCpu);
  const kind = shapes === 0 ? 'none' : followers === 'none' ? 'idle' : followers;
  const answered =
    followers === 'sse'
      ? sseUpdates.count - sseUpdatesBefore
      : (await liveAnswered(run.base)) - answeredBefore;
  liveAnswers.set(kind, [...(liveAnswers.get(kind) ?? []), answered]);
  cpu.set(kind, [
    ...(cpu.get(kind) ?? []),
    { daemon: cpuSeconds(run.pid) - daemonCpu, clients: (clientsUsed.user + clientsUsed.system) / 1e6 },
  ]);
  stopFollowing.abort();
  await Promise.all(following);
  await run.stop();
  return seconds;

  async function postBlocks(first: number, last: number): Promise<void> {
    for (let from = first; from <= last; from += 500) {
      const blocks = [];
      for (let number = from; number < Math.min(from + 500, last + 1); number++) {
        blocks.push({
          number,
          timestamp: 1_735_689_600 + number * 12,
          events: generateBlock(GENERATOR, number).events,
        });
      }
      const response = await fetch(`${run.base}/v1/pipelines/erc20/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ blocks }),
      });
      if (response.status !== 200) throw new Error(`ingest answered ${response.status}`);
    }
  }

  async function committedUpTo(checkpoint: number): Promise<void> {
    for (;;) {
      const status = (await (await fetch(`${run.base}/status`)).json()) as {
        pipelines: Array<{ committedCheckpoint: number }>;
      };
      if ((status.pipelines[0]?.committedCheckpoint ?? 0) >= checkpoint) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

const times = new Map<string, number[]>();
// BUDGET_KINDS=none,sse (for one): the kinds of run to alternate; 'none' is always one of them.
const BUDGET_KINDS = new Set([
  'none',
  ...(process.env.BUDGET_KINDS ?? 'idle,node:http,fetch,sse').split(','),
]);
const shapeCount = BUDGET_SHAPES.toLocaleString('en-US');
/** Each kind of run: its shapes and followers, its line's label, what its live count counts. */
const kinds = (
  [
    { kind: 'none', shapes: 0, followers: 'none', label: 'no shapes' },
    {
      kind: 'idle',
      shapes: BUDGET_SHAPES,
      followers: 'none',
      label: `${shapeCount} eq-shapes on Account, no clients`,
    },
    {
      kind: 'node:http',
      shapes: BUDGET_SHAPES,
      followers: 'node:http',
      label: `${shapeCount} eq-shapes, each followed by a live client (node:http)`,
      counted: 'live requests answered while timed (node:http clients)',
    },
    {
      kind: 'fetch',
      shapes: BUDGET_SHAPES,
      followers: 'fetch',
      label: `${shapeCount} eq-shapes, each followed by a live client (fetch)`,
      counted: 'live requests answered while timed (fetch clients)',
    },
    {
      kind: 'sse',
      shapes: BUDGET_SHAPES,
      followers: 'sse',
      label: `${shapeCount} eq-shapes, each followed by an SSE client (node:http)`,
      counted: 'up-to-dates the SSE clients received while timed',
    },
  ] satisfies Array<{ kind: string; shapes: number; followers: Followers; label: string; counted?: string }>
).filter(({ kind }) => BUDGET_KINDS.has(kind));
for (let round = 0; round < 2; round++) {
  for (const { kind, shapes, followers } of kinds)
    times.set(kind, [...(times.get(kind) ?? []), await backfill(shapes, followers)]);
}
const none = times.get('none')!;
const events = (BUDGET_BLOCKS * GENERATOR.eventsPerBlock).toLocaleString('en-US');
const runs = (kind: string) => {
  const seconds = times.get(kind)!;
  return `${seconds.map((s) => s.toFixed(2)).join(' / ')} s (${(Math.min(...seconds) / Math.min(...none)).toFixed(2)}×)`;
};
console.log(`end to end, ${events} erc20 events over ingest, best of two each, alternated:`);
const labelWidth = Math.max(...kinds.map(({ label }) => label.length));
for (const { kind, label, counted } of kinds)
  console.log(
    `  ${label.padEnd(labelWidth)} ${runs(kind)}${counted === undefined ? '' : '  (target ≤ 1.3×)'}`,
  );
const cpuOf = (kind: string) =>
  (cpu.get(kind) ?? [])
    .map((c) => `daemon ${c.daemon.toFixed(1)} s, clients ${c.clients.toFixed(1)} s`)
    .join(' / ');
console.log('CPU while timed (two cores; Postgres not counted; the clients run on the same cores):');
for (const { kind } of kinds) console.log(`  ${kind.padEnd(9)} ${cpuOf(kind)}`);
for (const { kind, counted } of kinds)
  if (counted !== undefined)
    console.log(
      `${counted}: ${(liveAnswers.get(kind) ?? []).map((n) => n.toLocaleString('en-US')).join(' / ')}`,
    );
