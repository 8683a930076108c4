// Actor round trip: calls/s and p50/p99 latency of one call → reply through our ActorRef (typed
// envelope, incarnation stamps, pending-call table, mailbox) vs raw postMessage with an id, vs
// comlink, all against worker threads in the same run. Sequential calls measure latency;
// pipelined calls (64 in flight) measure throughput. Run: `npm run bench:actors`.

import { isMainThread, MessageChannel, parentPort, Worker, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import pino from 'pino';
import type { ActorDefinition } from '../src/supervisor/actor-host.ts';
import { ActorRef } from '../src/supervisor/actor-ref.ts';
import { workerSpawner } from '../src/supervisor/endpoints.ts';
import { runActorInWorker } from '../src/supervisor/worker-entry.ts';

type BenchMethods = { add(a: number, b: number): number };
export const benchActor: ActorDefinition<Record<string, never>, BenchMethods> = {
  name: 'bench',
  start: () => ({ methods: { add: (a, b) => a + b } }),
};

// Worker roles: 'raw' and 'comlink' are set explicitly; an ActorRef worker carries `init` instead.
const role = (workerData as { role?: string } | null)?.role ?? 'actor';

if (!isMainThread && role === 'raw') {
  parentPort!.on('message', (m: { id: number; a: number; b: number }) =>
    parentPort!.postMessage({ id: m.id, value: m.a + m.b }),
  );
} else if (!isMainThread && role === 'comlink') {
  const { port } = workerData as { port: unknown };
  const nodeEndpoint = (await import('comlink/dist/esm/node-adapter.mjs' as string)).default as (
    port: unknown,
  ) => Comlink.Endpoint;
  Comlink.expose({ add: (a: number, b: number) => a + b }, nodeEndpoint(port as never));
} else if (!isMainThread) {
  runActorInWorker(benchActor);
} else {
  const SEQUENTIAL = Number(process.env.CALLS ?? 20_000);
  const PIPELINED = SEQUENTIAL * 5;
  const bootstrap = new URL('../workers/bootstrap.mjs', import.meta.url);
  const self = new URL(import.meta.url);

  // raw postMessage
  const raw = new Worker(bootstrap, { workerData: { entry: self.href, role: 'raw' } });
  const rawPending = new Map<number, (v: number) => void>();
  raw.on('message', (m: { id: number; value: number }) => {
    rawPending.get(m.id)?.(m.value);
    rawPending.delete(m.id);
  });
  let rawId = 0;
  const rawCall = (a: number, b: number) =>
    new Promise<number>((resolve) => {
      const id = ++rawId;
      rawPending.set(id, resolve);
      raw.postMessage({ id, a, b });
    });

  // comlink
  const channel = new MessageChannel();
  const comlinkWorker = new Worker(bootstrap, {
    workerData: { entry: self.href, role: 'comlink', port: channel.port2 },
    transferList: [channel.port2],
  });
  const nodeEndpoint = (await import('comlink/dist/esm/node-adapter.mjs' as string)).default as (
    port: unknown,
  ) => Comlink.Endpoint;
  const remote = Comlink.wrap<{ add(a: number, b: number): number }>(nodeEndpoint(channel.port1 as never));

  // ActorRef
  const ref = new ActorRef<BenchMethods, Record<string, never>>({
    name: 'bench',
    spawn: workerSpawner(self),
    data: {},
    logger: { level: 'silent', format: 'json' },
    log: pino({ level: 'silent' }),
    pingIntervalMs: 1_000,
  });
  await ref.start();

  const contenders: Array<[string, (a: number, b: number) => Promise<number>]> = [
    ['raw postMessage', rawCall],
    ['ActorRef', (a, b) => ref.call('add', a, b)],
    ['comlink', (a, b) => remote.add(a, b) as Promise<number>],
  ];
  for (const [, call] of contenders) for (let i = 0; i < 2_000; i++) await call(i, 1); // warm-up

  const rows: Array<{ name: string; p50: number; p99: number; seqPerS: number; pipePerS: number }> = [];
  for (const [name, call] of contenders) {
    const latencies = new Float64Array(SEQUENTIAL);
    const seqStart = performance.now();
    for (let i = 0; i < SEQUENTIAL; i++) {
      const t = performance.now();
      await call(i, 1);
      latencies[i] = performance.now() - t;
    }
    const seqMs = performance.now() - seqStart;
    latencies.sort();
    const pipeStart = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next < PIPELINED) {
          next += 1;
          await call(next, 1);
        }
      }),
    );
    const pipeMs = performance.now() - pipeStart;
    rows.push({
      name,
      p50: latencies[Math.floor(SEQUENTIAL * 0.5)]! * 1000,
      p99: latencies[Math.floor(SEQUENTIAL * 0.99)]! * 1000,
      seqPerS: (SEQUENTIAL / seqMs) * 1000,
      pipePerS: (PIPELINED / pipeMs) * 1000,
    });
  }
  const base = rows[0]!;
  console.log(
    `actor-roundtrip: ${SEQUENTIAL} sequential + ${PIPELINED} pipelined (64 in flight) calls per contender`,
  );
  console.log(
    'contender         p50-µs  p99-µs  sequential-calls/s  pipelined-calls/s  overhead vs raw (pipelined)',
  );
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(16)} ${r.p50.toFixed(1).padStart(7)} ${r.p99.toFixed(1).padStart(7)} ${Math.round(r.seqPerS).toLocaleString('en-US').padStart(19)} ${Math.round(r.pipePerS).toLocaleString('en-US').padStart(18)}  ${(base.pipePerS / r.pipePerS).toFixed(2)}×`,
    );
  }
  await ref.stop(1_000);
  await raw.terminate();
  await comlinkWorker.terminate();
  process.exit(0);
}
