// Per-address credit totals: the default demo's handlers. Every distribution credits its
// recipients, every expense debits its address, every transfer moves credits between two.
import { createHandlers, type HandlerContext } from 'strata';
import schema from './schema.ts';

interface Recipient {
  address: string;
  amount: number;
}

const handlers = createHandlers(schema);

type Context = HandlerContext<typeof schema>;

async function book(context: Context, address: string, credit: number, debit: number): Promise<void> {
  const account = await context.AccountTotal.getOrCreate({
    id: address,
    credited: 0n,
    debited: 0n,
    events: 0,
  });
  context.AccountTotal.set({
    ...account,
    credited: account.credited + BigInt(credit),
    debited: account.debited + BigInt(debit),
    events: account.events + 1,
  });
}

handlers.onEvent<{ recipients: Recipient[] }>('distribution', async ({ event, context }) => {
  for (const recipient of event.payload.recipients)
    await book(context, recipient.address, recipient.amount, 0);
});

handlers.onEvent<{ address: string; amount: number }>('expense', async ({ event, context }) => {
  await book(context, event.payload.address, 0, event.payload.amount);
});

handlers.onEvent<{ from: string; to: string; amount: number }>('transfer', async ({ event, context }) => {
  await book(context, event.payload.from, 0, event.payload.amount);
  await book(context, event.payload.to, event.payload.amount, 0);
});

export default handlers;
