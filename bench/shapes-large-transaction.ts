// bench/shapes-large-transaction: one transaction of 1M changes — one ingest block of 500,000
// transfers between new addresses, written in one transaction — through 100 live shapes (each
// `id = '<an address of the block>'`, followed by a live long-poll), against the same block with
// no shapes, in one run on Postgres. Prints the daemon's peak RSS above its idle RSS (VmHWM after
// the write, reset with clear_refs just before it, minus VmRSS before it) for both, and, with
// shapes, when the clients got their change: all of them after the commit, at once. Also how long
// the ingest POST took to answer and the slowest /livez answer meanwhile (the main thread's stall).
// Run: `npm run bench:shapes-large-transaction` (TRANSFERS=500000 SHAPES=100 by default).

import { writeFileSync } from 'node:fs';
import { startBenchDaemon } from './bench-daemon.ts';
import { benchDatabase } from './bench-database.ts';
import { memoryBytes } from './proc-figures.ts';

const TRANSFERS = Number(process.env.TRANSFERS ?? 500_000);
const SHAPES = Number(process.env.SHAPES ?? 100);
const db = benchDatabase('strata_bench_large_tx');

const address = (i: number) => `0x${i.toString(16).padStart(40, '0')}`;
const mib = (bytes: number) => `${(bytes / 1_048_576).toFixed(0)} MiB`;

async function run(shapes: number) {
  await db.recreate();
  const daemon = await startBenchDaemon({
    DATABASE_URL: db.url,
    STRATA_BODY_LIMIT_BYTES: String(1024 * 1024 * 1024),
    STRATA_MAX_CHANGES_PER_WRITE: String(4 * TRANSFERS),
    // One block of 1M changes still holds threads for long synchronous stretches (the writer's
    // decoding of its run, the processing thread reading the block): on a busy machine past the
    // default ping timeout (2 × 1 s), and the supervisor would kill them. (Encoding the changes
    // for the writer, ~2.5 s in one stretch, now gives the event loop turns.)
    STRATA_PING_INTERVAL_MS: '10000',
  });
  const base = daemon.base;
  const post = async (number: number, events: unknown[]) => {
    const response = await fetch(`${base}/v1/pipelines/erc20/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ blocks: [{ number, timestamp: 1_700_000_000 + number, events }] }),
    });
    if (response.status !== 200)
      throw new Error(`ingest answered ${response.status}: ${await response.text()}`);
  };
  const committed = async (checkpoint: number) => {
    for (;;) {
      const response = await fetch(`${base}/status`).catch(() => null);
      const status = (await response?.json()) as
        | { pipelines: Array<{ committedCheckpoint: number }> }
        | undefined;
      if ((status?.pipelines[0]?.committedCheckpoint ?? 0) >= checkpoint) return performance.now();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const transfer = (from: string, to: string) => ({ name: 'Transfer', payload: { from, to, value: '1' } });
  await post(1, [transfer(address(1), address(2))]);
  await committed(1);

  // SHAPES shapes on recipients of the large block, each followed by a live long-poll.
  const answers: Array<Promise<{ at: number; changed: boolean }>> = [];
  for (let k = 0; k < shapes; k++) {
    const where = encodeURIComponent(
      `id = '${address(10_000_000 + 2 * k * Math.floor(TRANSFERS / shapes) + 1)}'`,
    );
    const first = await fetch(`${base}/v1/shape?table=Account&where=${where}&offset=-1`);
    await first.arrayBuffer();
    const handle = first.headers.get('electric-handle')!;
    const offset = first.headers.get('electric-offset')!;
    // Long-polls end after 20 s without a change: poll again until the change comes.
    answers.push(
      (async () => {
        let at = offset;
        for (let polls = 0; polls < 30; polls++) {
          const response = await fetch(
            `${base}/v1/shape?table=Account&where=${where}&handle=${handle}&offset=${at}&live=true`,
          );
          const body = (await response.json()) as Array<{ key?: string }>;
          if (body.some((message) => message.key !== undefined))
            return { at: performance.now(), changed: true };
          at = response.headers.get('electric-offset')!;
        }
        return { at: performance.now(), changed: false };
      })(),
    );
  }
  const events = Array.from({ length: TRANSFERS }, (_, i) =>
    transfer(address(10_000_000 + 2 * i), address(10_000_000 + 2 * i + 1)),
  );
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const idle = memoryBytes(daemon.pid, 'VmRSS');
  writeFileSync(`/proc/${daemon.pid}/clear_refs`, '5'); // resets VmHWM to the current RSS
  // How long the main thread is held while it takes the request: the worst /livez answer during it.
  let stalledMs = 0;
  let probing = true;
  const probe = (async () => {
    while (probing) {
      const asked = performance.now();
      await fetch(`${base}/livez`).catch(() => null);
      stalledMs = Math.max(stalledMs, performance.now() - asked);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const posted = performance.now();
  await post(2, events);
  const answeredAt = performance.now();
  probing = false;
  await probe;
  const commitAt = await committed(2);
  const got = await Promise.all(answers);
  const peak = memoryBytes(daemon.pid, 'VmHWM');
  // Each actor's thread reports its peak heap after GC with its pongs (once a ping interval).
  await new Promise((resolve) => setTimeout(resolve, 2 * 10_000));
  const status = (await (await fetch(`${base}/status`)).json()) as {
    actors: Array<{ name: string; heapAfterGcPeakBytes: number }>;
  };
  await daemon.stop();
  return {
    idle,
    peak,
    heaps: status.actors.map((actor) => `${actor.name} ${mib(actor.heapAfterGcPeakBytes)}`).join(', '),
    seconds: (commitAt - posted) / 1_000,
    answeredSeconds: (answeredAt - posted) / 1_000,
    stalledMs,
    missed: got.filter((answer) => !answer.changed).length,
    answers: got.map((answer) => answer.at - commitAt),
  };
}

const without = await run(0);
const withShapes = await run(SHAPES);
console.log(
  `bench/shapes-large-transaction: one transaction of ${(2 * TRANSFERS).toLocaleString('en-US')} Account changes, Postgres, node ${process.version}`,
);
console.log(
  `  no shapes:          POST → committed ${without.seconds.toFixed(1)} s; RSS idle ${mib(without.idle)}, peak ${mib(without.peak)} (+${mib(without.peak - without.idle)})`,
);
console.log(
  `  ${SHAPES} live shapes:    POST → committed ${withShapes.seconds.toFixed(1)} s; RSS idle ${mib(withShapes.idle)}, peak ${mib(withShapes.peak)} (+${mib(withShapes.peak - withShapes.idle)}; target ≤ +256 MiB)`,
);
for (const [kind, result] of [
  ['no shapes', without],
  [`${SHAPES} live shapes`, withShapes],
] as const)
  console.log(`  heap after GC, peak per actor thread (${kind}): ${result.heaps}`);
for (const [kind, result] of [
  ['no shapes', without],
  [`${SHAPES} live shapes`, withShapes],
] as const)
  console.log(
    `  ingest (${kind}): POST answered after ${result.answeredSeconds.toFixed(1)} s; slowest /livez during it ${result.stalledMs.toFixed(0)} ms`,
  );
const sorted = [...withShapes.answers].sort((a, b) => a - b);
console.log(
  `  clients: ${SHAPES - withShapes.missed}/${SHAPES} got their change, ${sorted[0]!.toFixed(0)} … ${sorted[sorted.length - 1]!.toFixed(0)} ms after the commit was seen on /status (negative: before the status poll noticed it)`,
);
