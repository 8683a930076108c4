// A plain fold of the generator's stream into per-address totals, written independently of the
// handler runtime: the oracle that daemon tests compare the database against.
import { type GeneratorShape, generateBlock } from '../../src/sources/generator.ts';

export interface Totals {
  credited: number;
  debited: number;
  events: number;
}

export function referenceTotals(source: GeneratorShape, lastBlock: number): Map<string, Totals> {
  const totals = new Map<string, Totals>();
  const at = (address: string) => {
    let entry = totals.get(address);
    if (entry === undefined) {
      entry = { credited: 0, debited: 0, events: 0 };
      totals.set(address, entry);
    }
    return entry;
  };
  for (let number = 1; number <= lastBlock; number++) {
    for (const { name, payload } of generateBlock(source, number).events) {
      if (name === 'distribution') {
        for (const r of payload.recipients as Array<{ address: string; amount: number }>) {
          at(r.address).credited += r.amount;
          at(r.address).events += 1;
        }
      } else if (name === 'expense') {
        at(payload.address as string).debited += payload.amount as number;
        at(payload.address as string).events += 1;
      } else if (name === 'transfer') {
        at(payload.from as string).debited += payload.amount as number;
        at(payload.from as string).events += 1;
        at(payload.to as string).credited += payload.amount as number;
        at(payload.to as string).events += 1;
      }
    }
  }
  return totals;
}

export const TEST_SOURCE: GeneratorShape = {
  workload: 'credits',
  seed: 7,
  eventsPerBlock: 10,
  addresses: 500,
  distribution: 'uniform',
};
