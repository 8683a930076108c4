// Effects: calls from handlers to the outside world (an RPC, a price API, a metadata fetch) whose
// results are cached by input. A project declares one with
//
//   import { createEffect, z } from 'strata';
//   export const getPrice = createEffect(
//     { name: 'price', input: z.object({ token: z.string() }), output: z.object({ usd: z.number() }),
//       cache: true, rateLimit: { calls: 10, per: 'second' } },
//     async ({ input }) => ({ usd: await fetchPrice(input.token) }),
//   );
//
// and a handler calls `await context.effect(getPrice, { token })`. An effect must be a function of
// its input: its cache is shared by every pipeline and process and survives reorgs. Outputs of
// `cache: true` effects are stored (strata.effect_cache) in the writer's transaction with the
// batch that produced them; when they are read back on a later run they are re-validated against
// the effect's *current* output schema, so changing the schema invalidates old entries (counted
// in metrics) instead of handing handlers values of the wrong shape.

import type { ZodType } from 'zod';
import type { Logger } from '../logger.ts';

export interface EffectOptions<Input, Output> {
  /** Unique among the project's effects: names its cache. */
  name: string;
  input: ZodType<Input>;
  output: ZodType<Output>;
  /** Store outputs in the database (shared, survives restarts). Default false: memory only. */
  cache?: boolean;
  /** At most `calls` runs per `per` (ms, or a unit); excess calls queue. Default: no limit. */
  rateLimit?: false | { calls: number; per: number | 'second' | 'minute' };
}

export interface EffectArgs<Input> {
  input: Input;
  context: { log: Logger };
}

/** Brand that survives the module being loaded twice (as for handler registries). */
const EFFECT_BRAND = Symbol.for('strata.effect');

export interface Effect<Input = unknown, Output = unknown> {
  readonly [EFFECT_BRAND]: true;
  readonly name: string;
  readonly input: ZodType<Input>;
  readonly output: ZodType<Output>;
  readonly cache: boolean;
  /** Runs allowed per window and the window (ms), or null. */
  readonly rateLimit: { calls: number; perMs: number } | null;
  readonly run: (args: EffectArgs<Input>) => Promise<Output>;
}

const EFFECT_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,99}$/;

export function createEffect<Input, Output>(
  options: EffectOptions<Input, Output>,
  run: (args: EffectArgs<Input>) => Promise<Output> | Output,
): Effect<Input, Output> {
  if (!EFFECT_NAME.test(options.name)) {
    throw new TypeError(`createEffect: name "${options.name}" must match ${EFFECT_NAME}`);
  }
  const limit = options.rateLimit;
  if (limit && (!Number.isInteger(limit.calls) || limit.calls < 1)) {
    throw new TypeError(`createEffect ${options.name}: rateLimit.calls must be a positive integer`);
  }
  const perMs = !limit ? 0 : limit.per === 'second' ? 1_000 : limit.per === 'minute' ? 60_000 : limit.per;
  if (limit && !(perMs > 0)) {
    throw new TypeError(`createEffect ${options.name}: rateLimit.per must be ms > 0, 'second' or 'minute'`);
  }
  return Object.freeze({
    [EFFECT_BRAND]: true as const,
    name: options.name,
    input: options.input,
    output: options.output,
    cache: options.cache === true,
    rateLimit: limit ? { calls: limit.calls, perMs } : null,
    run: async (args: EffectArgs<Input>) => run(args),
  });
}

export function isEffect(value: unknown): value is Effect {
  return (
    typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[EFFECT_BRAND] === true
  );
}

/**
 * At most `calls` starts in any window of `perMs`: a call beyond that waits, first come first
 * served, until the oldest start of the window has left it.
 */
export class RateLimiter {
  private readonly starts: number[] = [];
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly calls: number,
    private readonly perMs: number,
  ) {}

  /** Resolves when the caller may start. */
  acquire(): Promise<void> {
    const turn = this.queue.then(async () => {
      for (;;) {
        const now = Date.now();
        while (this.starts.length > 0 && this.starts[0]! <= now - this.perMs) this.starts.shift();
        if (this.starts.length < this.calls) {
          this.starts.push(now);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, this.starts[0]! + this.perMs - now));
      }
    });
    this.queue = turn;
    return turn;
  }
}
