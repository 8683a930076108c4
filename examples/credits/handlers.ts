// Per-address credit totals: the Foundation's demo handlers. Every distribution credits its
// recipients, every expense debits its address, every transfer moves credits between two.
import { defineHandlers } from '../../src/processing/handler-api.ts';

interface Recipient {
  address: string;
  amount: number;
}

export default defineHandlers({
  distribution({ event, context }) {
    for (const recipient of event.payload.recipients as Recipient[]) {
      const account = context.account(recipient.address);
      account.credited += recipient.amount;
      account.events += 1;
    }
  },
  expense({ event, context }) {
    const account = context.account(event.payload.address as string);
    account.debited += event.payload.amount as number;
    account.events += 1;
  },
  transfer({ event, context }) {
    const amount = event.payload.amount as number;
    const from = context.account(event.payload.from as string);
    from.debited += amount;
    from.events += 1;
    const to = context.account(event.payload.to as string);
    to.credited += amount;
    to.events += 1;
  },
});
