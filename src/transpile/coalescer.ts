// Cross-process coalescing of transpiles: exactly one process of a fleet transpiles a given module
// version; the others wait, then re-read L2.
//
// Why a Redis lease with pub/sub, not BullMQ deduplicated jobs: a BullMQ custom jobId dedups while
// the job exists in any state (a retained completed job blocks re-work), `deduplication` keys have
// stuck after outages (bullmq#4311), and QueueEvents is best-effort, so `waitUntilFinished` can
// hang. What we need is smaller: "who does it" (SET NX PX: the lease expires by itself if the
// winner dies) and "it is done" (PUBLISH after the L2 row is committed). Correctness does not
// depend on Redis at all — the L2 generation fences stale writes — so every wait is bounded and
// ends with an L2 re-read; a missed wake-up, a dead winner, a winner that failed, or Redis being
// down all end in a local transpile. Nothing ever waits without a deadline.

import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';

export interface TranspiledModule {
  code: string;
  map: string;
}

/** How a coalesced call ended: this process transpiled ('won'/'local'/'fallback') or joined. */
export type CoalesceOutcome = 'won' | 'joined' | 'fallback' | 'local';

export interface Coalescer {
  run(
    key: string,
    work: () => Promise<TranspiledModule>,
    reread: () => Promise<{ body: string | null; sourceMap: string | null } | null>,
  ): Promise<{ outcome: CoalesceOutcome; value: TranspiledModule }>;
  close(): Promise<void>;
}

/** No Redis (embedded default): in-process dedup already happened in the module service. */
export class LocalCoalescer implements Coalescer {
  async run(_key: string, work: () => Promise<TranspiledModule>) {
    return { outcome: 'local' as const, value: await work() };
  }

  async close(): Promise<void> {}
}

export interface RedisCoalescerOptions {
  /** Commands (SET NX, PUBLISH, DEL). */
  client: Redis;
  /** A second connection in subscriber mode (a subscribed connection cannot run commands). */
  subscriber: Redis;
  log: Logger;
  /** Namespace of keys and channel (tests isolate themselves with it). */
  prefix?: string;
  /** How long a loser waits for the winner before re-reading L2 and falling back (ms). */
  waitMs?: number;
  /** Lease lifetime: after this a dead winner's lease is free again (ms). */
  leaseMs?: number;
}

/** Longest a single Redis call may take before the coalescer treats Redis as unavailable. */
const REDIS_CALL_DEADLINE_MS = 1_000;

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis call exceeded ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

const RELEASE_IF_OWNER = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

export class RedisCoalescer implements Coalescer {
  private readonly options: Required<Omit<RedisCoalescerOptions, 'log'>> & { log: Logger };
  private readonly channel: string;
  private readonly waiters = new Map<string, Set<() => void>>();
  private subscribed: Promise<void> | null = null;

  constructor(options: RedisCoalescerOptions) {
    this.options = { prefix: 'strata:modules', waitMs: 5_000, leaseMs: 30_000, ...options };
    this.channel = `${this.options.prefix}:done`;
    this.options.subscriber.on('message', (channel: string, key: string) => {
      if (channel !== this.channel) return;
      for (const wake of this.waiters.get(key) ?? []) wake();
    });
  }

  async run(
    key: string,
    work: () => Promise<TranspiledModule>,
    reread: () => Promise<{ body: string | null; sourceMap: string | null } | null>,
  ): Promise<{ outcome: CoalesceOutcome; value: TranspiledModule }> {
    const { client } = this.options;
    if (client.status !== 'ready') return { outcome: 'local', value: await work() };
    // Subscribe (and register the waiter) before trying the lease and re-checking, so a winner's
    // PUBLISH between our check and our wait cannot be missed.
    let wake: () => void = () => {};
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
    });
    this.addWaiter(key, wake);
    try {
      let acquired = false;
      const token = randomUUID();
      try {
        // A connection that drops mid-command queues it until Redis is back: bound every call.
        await withDeadline(this.subscribe(), REDIS_CALL_DEADLINE_MS);
        acquired =
          (await withDeadline(
            client.set(this.leaseKey(key), token, 'PX', this.options.leaseMs, 'NX'),
            REDIS_CALL_DEADLINE_MS,
          )) === 'OK';
      } catch (error) {
        this.options.log.debug({ err: error }, 'module cache: redis unavailable; transpiling locally');
        return { outcome: 'local', value: await work() };
      }
      if (acquired) {
        try {
          // A peer may have finished and released the lease between our L2 read and our SET NX.
          const done = await reread();
          if (done?.body != null)
            return { outcome: 'joined', value: { code: done.body, map: done.sourceMap ?? '' } };
          return { outcome: 'won', value: await work() };
        } finally {
          // Wake the others whether the transpile worked or not (a failure: they fall back).
          await withDeadline(client.publish(this.channel, key), REDIS_CALL_DEADLINE_MS).catch(
            () => undefined,
          );
          await withDeadline(
            client.eval(RELEASE_IF_OWNER, 1, this.leaseKey(key), token),
            REDIS_CALL_DEADLINE_MS,
          ).catch(() => undefined);
        }
      }
      const timedOut = await Promise.race([
        woken.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(resolve, this.options.waitMs, true).unref()),
      ]);
      const entry = await reread();
      if (entry?.body != null)
        return { outcome: 'joined', value: { code: entry.body, map: entry.sourceMap ?? '' } };
      if (timedOut)
        this.options.log.warn(
          { key },
          'module cache: no word from the transpiling peer; transpiling locally',
        );
      return { outcome: 'fallback', value: await work() };
    } finally {
      this.removeWaiter(key, wake);
    }
  }

  async close(): Promise<void> {
    for (const wakers of this.waiters.values()) for (const wake of wakers) wake();
  }

  private leaseKey(key: string): string {
    return `${this.options.prefix}:lease:${key}`;
  }

  private subscribe(): Promise<void> {
    this.subscribed ??= this.options.subscriber.subscribe(this.channel).then(
      () => undefined,
      (error: unknown) => {
        this.subscribed = null; // try again next time (Redis may be back)
        throw error;
      },
    );
    return this.subscribed;
  }

  private addWaiter(key: string, wake: () => void): void {
    let set = this.waiters.get(key);
    if (set === undefined) {
      set = new Set();
      this.waiters.set(key, set);
    }
    set.add(wake);
  }

  private removeWaiter(key: string, wake: () => void): void {
    const set = this.waiters.get(key);
    set?.delete(wake);
    if (set?.size === 0) this.waiters.delete(key);
  }
}
