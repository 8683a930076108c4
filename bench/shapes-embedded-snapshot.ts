// bench/shapes-embedded-snapshot: on embedded PGlite (one backend), does a large shape snapshot
// hold the writer back? A table of ROWS Account rows; then, while a snapshot of the whole table
// is read, one small block is posted and its POST → committed time measured — with the snapshot
// read in pages of 10,000 rows, each its own transaction (the default), and as one statement
// (STRATA_SHAPE_SNAPSHOT_PAGE_ROWS above the table's size: what one repeatable-read transaction
// did), against the same block with no snapshot running, in one run.
// Run: `npm run bench:shapes-embedded-snapshot` (ROWS=200000 ROUNDS=5 by default).

import { startBenchDaemon } from './bench-daemon.ts';

const ROWS = Number(process.env.ROWS ?? 200_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const address = (i: number) => `0x${i.toString(16).padStart(40, '0')}`;
const transfer = (from: string, to: string) => ({ name: 'Transfer', payload: { from, to, value: '1' } });
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function run(pageRows: number): Promise<{ idle: number[]; during: number[]; snapshot: number[] }> {
  const daemon = await startBenchDaemon({ STRATA_SHAPE_SNAPSHOT_PAGE_ROWS: String(pageRows) }, ['--memory']);
  const base = daemon.base;
  let block = 0;
  const post = async (events: unknown[]) => {
    block += 1;
    const response = await fetch(`${base}/v1/pipelines/erc20/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ blocks: [{ number: block, timestamp: 1_700_000_000 + block, events }] }),
    });
    if (response.status !== 200) throw new Error(`ingest answered ${response.status}`);
    return block;
  };
  const committed = async (checkpoint: number) => {
    for (;;) {
      const status = (await (await fetch(`${base}/status`)).json()) as {
        pipelines: Array<{ committedCheckpoint: number }>;
      };
      if ((status.pipelines[0]?.committedCheckpoint ?? 0) >= checkpoint) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  /** POST → committed of a one-transfer block, in ms. */
  const smallBlock = async (round: number) => {
    const started = performance.now();
    await committed(await post([transfer(address(1), address(2 + round))]));
    return performance.now() - started;
  };
  const snapshotOf = async (where: string) => {
    const query = `table=Account&where=${encodeURIComponent(where)}`;
    let response = await fetch(`${base}/v1/shape?${query}&offset=-1`);
    for (;;) {
      await response.arrayBuffer();
      if (response.headers.has('electric-up-to-date')) return;
      const handle = response.headers.get('electric-handle')!;
      response = await fetch(
        `${base}/v1/shape?${query}&handle=${handle}&offset=${response.headers.get('electric-offset')}`,
      );
    }
  };

  for (let i = 0; i < ROWS; i += 2_000) {
    await post(
      Array.from({ length: 1_000 }, (_, k) =>
        transfer(address(1_000_000 + i + 2 * k), address(1_000_000 + i + 2 * k + 1)),
      ),
    );
  }
  await committed(block);
  await snapshotOf("id <> 'warm-up'"); // the table captured, the shapes machinery warm
  const idle: number[] = [];
  const during: number[] = [];
  const snapshot: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    idle.push(await smallBlock(round));
    // A new shape (a new snapshot) each round, the block posted once it is under way.
    const started = performance.now();
    const reading = snapshotOf(`id <> 'round-${round}'`).then(() =>
      snapshot.push(performance.now() - started),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    during.push(await smallBlock(ROUNDS + round));
    await reading;
  }
  await daemon.stop();
  return { idle, during, snapshot };
}

const paged = await run(10_000);
const whole = await run(10 * ROWS);
console.log(
  `bench/shapes-embedded-snapshot: ${ROWS.toLocaleString('en-US')} Account rows, embedded PGlite, node ${process.version}`,
);
console.log(
  `median of ${ROUNDS} rounds      block POST → committed   with a snapshot running   the snapshot`,
);
const line = (name: string, r: typeof paged) =>
  console.log(
    `${name.padEnd(30)} ${median(r.idle).toFixed(0).padStart(10)} ms ${median(r.during).toFixed(0).padStart(22)} ms ${median(r.snapshot).toFixed(0).padStart(14)} ms`,
  );
line('pages of 10,000 rows', paged);
line('one statement (as before)', whole);
