// With ERC20_EFFECT=true (bench/processing's effects figures): every Transfer also asks an effect
// — standing in for an RPC or price API: ~20 ms of latency, at most 250 calls a second, like a
// free RPC tier — about one of 1,000 buckets of its sender, so a cold run calls out 1,000 times
// (≥ 4 s of rate limit alone) and a warm restart answers from the cache.
import { createEffect, createHandlers, z } from 'strata';
import schema from './schema.ts';

export const bucketInfo = createEffect(
  {
    name: 'erc20-bucket-info',
    input: z.object({ bucket: z.number().int() }),
    output: z.object({ bucket: z.number().int(), label: z.string() }),
    cache: true,
    rateLimit: { calls: 250, per: 'second' },
  },
  async ({ input }) => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    return { bucket: input.bucket, label: `bucket-${input.bucket}` };
  },
);

const handlers = createHandlers(schema);

handlers.onEvent<{ from: string }>('Transfer', async ({ event, context }) => {
  const bucket = Number.parseInt(event.payload.from.slice(-6), 16) % 1_000;
  const info = await context.effect(bucketInfo, { bucket });
  if (info.bucket !== bucket) throw new Error('effect answered for another input');
});

export default handlers;
