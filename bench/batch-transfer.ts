// Moving a batch of 10,000 changes (in the writer's wire form: COPY lines) between threads, from
// the lines the processing actor formats to the writer's decoded changes: the lines appended to
// one string and sent by structured clone, as a JSON+UTF-8 buffer or a v8.serialize buffer (the
// daemon's way until the second Core session), vs the lines written straight into a byte buffer
// (`ChangesEncoder`, src/pipeline/change-codec.ts, today's way) — the buffers moved with a
// transfer list. Each round trip is: build and encode (sender) → postMessage → decode (receiver)
// → ack. The receiver must end with usable objects, so decode time counts.
// Run: `npm run bench:transfer`.

import v8 from 'node:v8';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { ChangesEncoder, decodeChanges, transferList } from '../src/pipeline/change-codec.ts';
import type { EntityChanges } from '../src/protocol.ts';

type Mode = 'structured-clone' | 'json-transfer' | 'v8-transfer' | 'encoded-transfer';
const BATCH = 10_000;
const ROUNDS = Number(process.env.ROUNDS ?? 60);

interface Batch {
  lines: string[];
  sets: Omit<EntityChanges[string], 'rows' | 'history'>;
}

function makeBatch(seed: number): Batch {
  const ids: string[] = [];
  const checkpoints: number[] = [];
  const lines: string[] = [];
  for (let i = 0; i < BATCH; i++) {
    const id = `0x${(seed * BATCH + i).toString(16).padStart(40, '0')}`;
    ids.push(id);
    checkpoints.push(seed * 100 + (i % 100));
    lines.push(`${id}\t${i * 7}\t${i * 3}\t${i % 50}`);
  }
  return {
    lines,
    sets: { checkpoints, eventNames: ids.map(() => 'Transfer'), logIndexes: ids.map(() => 0), deletes: [] },
  };
}

/** The lines appended to one string, as the actor built `rows` before the byte buffer. */
function appended(batch: Batch): EntityChanges {
  let rows = '';
  for (const line of batch.lines) rows += `${line}\n`;
  return { AccountTotal: { ...batch.sets, rows } };
}

if (!isMainThread) {
  const port = parentPort!;
  port.on('message', (message: { mode: Mode; data: unknown }) => {
    let changes: EntityChanges;
    if (message.mode === 'structured-clone') changes = message.data as EntityChanges;
    else if (message.mode === 'json-transfer')
      changes = JSON.parse(new TextDecoder().decode(message.data as Uint8Array)) as EntityChanges;
    else if (message.mode === 'v8-transfer') changes = v8.deserialize(message.data as Uint8Array);
    else changes = decodeChanges(message.data as Uint8Array[]); // what the writer does
    // Touch every row so lazy work cannot hide.
    let sum = 0;
    for (const checkpoint of changes.AccountTotal!.checkpoints) sum += checkpoint;
    port.postMessage(sum);
  });
} else {
  const worker = new Worker(new URL('../workers/bootstrap.mjs', import.meta.url), {
    workerData: { entry: import.meta.url },
  });
  const replies: Array<(value: unknown) => void> = [];
  worker.on('message', (value) => replies.shift()?.(value));
  const roundTrip = (mode: Mode, batch: Batch) =>
    new Promise<{ senderMs: number; totalMs: number }>((resolve) => {
      const start = performance.now();
      let data: unknown;
      let transfer: ArrayBuffer[] = [];
      if (mode === 'structured-clone') data = appended(batch);
      else if (mode === 'json-transfer') {
        const bytes = new TextEncoder().encode(JSON.stringify(appended(batch)));
        data = bytes;
        transfer = [bytes.buffer as ArrayBuffer];
      } else if (mode === 'v8-transfer') {
        const bytes = new Uint8Array(v8.serialize(appended(batch)));
        data = bytes;
        transfer = [bytes.buffer as ArrayBuffer];
      } else {
        // What the processing actor does.
        const encoder = new ChangesEncoder();
        encoder.beginEntity();
        for (const line of batch.lines) encoder.appendLine(line);
        encoder.endEntity('AccountTotal', batch.sets, []);
        const encoded = encoder.finish();
        data = encoded;
        transfer = transferList(encoded);
      }
      worker.postMessage({ mode, data }, transfer);
      const senderMs = performance.now() - start;
      replies.push(() => resolve({ senderMs, totalMs: performance.now() - start }));
    });

  const batches = Array.from({ length: 8 }, (_, i) => makeBatch(i));
  const modes: Mode[] = ['structured-clone', 'json-transfer', 'v8-transfer', 'encoded-transfer'];
  // Warm up every path, then interleave modes so noise hits them alike.
  for (const mode of modes) for (let i = 0; i < 10; i++) await roundTrip(mode, batches[i % 8]!);
  const results = new Map<Mode, { sender: number[]; total: number[] }>(
    modes.map((m) => [m, { sender: [], total: [] }]),
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of modes) {
      const { senderMs, totalMs } = await roundTrip(mode, batches[round % 8]!);
      results.get(mode)!.sender.push(senderMs);
      results.get(mode)!.total.push(totalMs);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const base = median(results.get('structured-clone')!.total);
  console.log(`batch-transfer: ${BATCH} changes per batch, ${ROUNDS} rounds per mode (median)`);
  console.log('mode               sender-blocked-ms  round-trip-ms  changes/s     vs structured clone');
  for (const mode of modes) {
    const r = results.get(mode)!;
    const total = median(r.total);
    console.log(
      `${mode.padEnd(18)} ${median(r.sender).toFixed(2).padStart(17)}  ${total.toFixed(2).padStart(13)}  ${Math.round(
        (BATCH / total) * 1000,
      )
        .toLocaleString('en-US')
        .padStart(11)}  ${(base / total).toFixed(2)}×`,
    );
  }
  await worker.terminate();
}
