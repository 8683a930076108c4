// The erc20 chain the shapes tests post through the ingest API, the fold its Account shapes must
// equal, and small helpers to compare a client's rows with it.
import { createServer } from 'node:net';
import { expect } from 'vitest';

export type Transfer = [from: string, to: string, value: number];
export type Row = Record<string, unknown>;

/** The chain as posted (a replacement swaps its last block) and the erc20 fold of it. */
export class Chain {
  readonly blocks: Transfer[][] = [];

  constructor(private readonly base: string) {}

  async push(...transfers: Transfer[]): Promise<void> {
    this.blocks.push(transfers);
    const number = this.blocks.length;
    await this.post({
      number,
      hash: `h-${number}`,
      parentHash: number === 1 ? null : `h-${number - 1}`,
      transfers,
    });
  }

  /** A reorg: a new branch in the last block's place. */
  async replaceLast(...transfers: Transfer[]): Promise<void> {
    const number = this.blocks.length;
    this.blocks[number - 1] = transfers;
    await this.post({ number, hash: `r-${number}`, parentHash: `h-${number - 1}`, transfers });
  }

  private async post(block: {
    number: number;
    hash: string;
    parentHash: string | null;
    transfers: Transfer[];
  }) {
    const { transfers, ...rest } = block;
    const events = transfers.map(([from, to, value]) => ({
      name: 'Transfer',
      payload: { from, to, value: String(value) },
    }));
    const response = await fetch(`${this.base}/v1/pipelines/erc20/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ blocks: [{ timestamp: 1_700_000_000 + block.number, ...rest, events }] }),
    });
    expect(response.status, await response.clone().text()).toBe(200);
  }

  /** examples/erc20's Account rows, as the client parses them (int8 → BigInt, int4 → number). */
  accounts(): Record<string, Row> {
    const accounts: Record<
      string,
      { id: string; balance: bigint; transfersOut: number; transfersIn: number }
    > = {};
    const account = (id: string) => (accounts[id] ??= { id, balance: 0n, transfersOut: 0, transfersIn: 0 });
    for (const block of this.blocks) {
      for (const [from, to, value] of block) {
        account(from).balance -= BigInt(value);
        account(from).transfersOut += 1;
        account(to).balance += BigInt(value);
        account(to).transfersIn += 1;
      }
    }
    return accounts;
  }
}

export const pick = (rows: Record<string, Row>, keep: (row: Row) => boolean, columns?: string[]) =>
  Object.fromEntries(
    Object.entries(rows)
      .filter(([, row]) => keep(row))
      .map(([id, row]) => [
        id,
        columns === undefined ? row : Object.fromEntries(columns.map((c) => [c, row[c]])),
      ]),
  );
export const byId = (rows: Row[]) => Object.fromEntries(rows.map((row) => [row.id as string, row]));

/** A port free right now (the restarted daemon must answer where its clients already point). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
