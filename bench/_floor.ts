import { GeneratorSource } from '../src/sources/generator.ts';

const source = new GeneratorSource({
  kind: 'generator',
  workload: 'erc20',
  seed: 1,
  blocks: 30000,
  eventsPerBlock: 10,
  addresses: 50000,
  distribution: 'skewed',
  liveBlockIntervalMs: 0,
});
const accounts = new Map<string, any>();
const transfers = new Map<string, any>();
let after = 0;
const t0 = performance.now();
let n = 0;
for (;;) {
  const blocks = await source.read(after, 500);
  if (!blocks.length) break;
  for (const block of blocks)
    for (const event of block.events) {
      n++;
      const handler = async () => {
        if (event.name !== 'Transfer') return;
        const p = event.payload as any;
        const value = BigInt(p.value);
        const s = (await Promise.resolve(accounts.get(p.from))) ?? {
          id: p.from,
          balance: 0n,
          transfersOut: 0,
          transfersIn: 0,
        };
        accounts.set(
          p.from,
          Object.freeze({ ...s, balance: s.balance - value, transfersOut: s.transfersOut + 1 }),
        );
        const r = (await Promise.resolve(accounts.get(p.to))) ?? {
          id: p.to,
          balance: 0n,
          transfersOut: 0,
          transfersIn: 0,
        };
        accounts.set(
          p.to,
          Object.freeze({ ...r, balance: r.balance + value, transfersIn: r.transfersIn + 1 }),
        );
        transfers.set(`${block.number}-${event.logIndex}`, {
          from: p.from,
          to: p.to,
          value,
          blockNumber: block.number,
          timestamp: new Date(block.timestamp * 1000),
        });
      };
      await handler();
    }
  after = blocks[blocks.length - 1]!.number;
  if (transfers.size > 100000) transfers.clear();
}
const ms = performance.now() - t0;
console.log({ events: n, ms: Math.round(ms), evps: Math.round((n / ms) * 1000) });
