// A plain fold of the generator's erc20 stream — what examples/erc20's handlers must leave in the
// database — written without anything of Strata's runtime.
import { expect } from 'vitest';
import { type GeneratorShape, generateBlock } from '../../src/sources/generator.ts';

export interface Erc20Totals {
  accounts: Map<string, { balance: bigint; transfersOut: number; transfersIn: number }>;
  transfers: number;
  transferValue: bigint;
  allowances: Map<string, bigint>;
}

export function erc20Source(seed: number): GeneratorShape {
  return { workload: 'erc20', seed, eventsPerBlock: 10, addresses: 2_000, distribution: 'skewed' };
}

export function erc20Reference(source: GeneratorShape, lastBlock: number): Erc20Totals {
  const accounts: Erc20Totals['accounts'] = new Map();
  const allowances = new Map<string, bigint>();
  let transfers = 0;
  let transferValue = 0n;
  const account = (id: string) => {
    let entry = accounts.get(id);
    if (entry === undefined) {
      entry = { balance: 0n, transfersOut: 0, transfersIn: 0 };
      accounts.set(id, entry);
    }
    return entry;
  };
  for (let number = 1; number <= lastBlock; number++) {
    for (const { name, payload } of generateBlock(source, number).events) {
      const value = BigInt(payload.value as string);
      if (name === 'Transfer') {
        const sender = account(payload.from as string);
        sender.balance -= value;
        sender.transfersOut += 1;
        const receiver = account(payload.to as string);
        receiver.balance += value;
        receiver.transfersIn += 1;
        transfers += 1;
        transferValue += value;
      } else allowances.set(`${payload.owner}-${payload.spender}`, value);
    }
  }
  return { accounts, transfers, transferValue, allowances };
}

/** Reads what the erc20 pipeline stored, in the reference's shape. */
export async function erc20Tables(query: <Row>(sql: string) => Promise<Row[]>): Promise<Erc20Totals> {
  const accounts = await query<{ id: string; balance: string; transfersOut: number; transfersIn: number }>(
    'SELECT id, balance, "transfersOut", "transfersIn" FROM pipeline_erc20."Account"',
  );
  const [transfers] = await query<{ n: number; total: string | null }>(
    'SELECT count(*)::int AS n, sum(value)::text AS total FROM pipeline_erc20."Transfer"',
  );
  const allowances = await query<{ id: string; value: string }>(
    'SELECT id, value FROM pipeline_erc20."Allowance"',
  );
  return {
    accounts: new Map(
      accounts.map((row) => [
        row.id,
        { balance: BigInt(row.balance), transfersOut: row.transfersOut, transfersIn: row.transfersIn },
      ]),
    ),
    transfers: transfers!.n,
    transferValue: BigInt(transfers!.total ?? '0'),
    allowances: new Map(allowances.map((row) => [row.id, BigInt(row.value)])),
  };
}

/** The erc20 tables (read through `query`) hold exactly the fold of seed `seed` up to `lastBlock`. */
export async function expectErc20Reference(
  query: <Row>(sql: string) => Promise<Row[]>,
  seed: number,
  lastBlock: number,
): Promise<void> {
  const expected = erc20Reference(erc20Source(seed), lastBlock);
  const actual = await erc20Tables(query);
  expect(actual.transfers).toBe(expected.transfers);
  expect(actual.transferValue).toBe(expected.transferValue);
  expect(actual.allowances).toEqual(expected.allowances);
  expect(actual.accounts).toEqual(expected.accounts);
}
