// ERC20 handlers, as in the open-indexer-benchmark: each Transfer upserts the two Account rows
// (balance) and inserts a Transfer row; each Approval upserts an Allowance row.
import { createHandlers } from 'strata';
import schema from './schema.ts';

const handlers = createHandlers(schema);

handlers.onEvent<{ from: string; to: string; value: string }>(
  'Transfer',
  async ({ event, block, context }) => {
    const { from, to } = event.payload;
    const value = BigInt(event.payload.value);
    // Read-then-write one account at a time, so a transfer to oneself nets to zero.
    const sender = await context.Account.getOrCreate({
      id: from,
      balance: 0n,
      transfersOut: 0,
      transfersIn: 0,
    });
    context.Account.set({
      ...sender,
      balance: sender.balance - value,
      transfersOut: sender.transfersOut + 1,
    });
    const receiver = await context.Account.getOrCreate({
      id: to,
      balance: 0n,
      transfersOut: 0,
      transfersIn: 0,
    });
    context.Account.set({
      ...receiver,
      balance: receiver.balance + value,
      transfersIn: receiver.transfersIn + 1,
    });
    context.Transfer.set({
      id: `${block.number}-${event.logIndex}`,
      from,
      to,
      value,
      blockNumber: block.number,
      timestamp: new Date(block.timestamp * 1000),
    });
  },
);

handlers.onEvent<{ owner: string; spender: string; value: string }>('Approval', ({ event, context }) => {
  const { owner, spender } = event.payload;
  context.Allowance.set({ id: `${owner}-${spender}`, owner, spender, value: BigInt(event.payload.value) });
});

export default handlers;
