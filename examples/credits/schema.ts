// The credits ledger's entities (examples/credits/README.md has the rules).
//  - CreditHistory: every line of every message, keyed by (creditRef, creditIndex).
//  - CreditLot: what remains of each grant, keyed by (address, creditRef, creditIndex) — the
//    per-lot balance cache the handlers keep eagerly, so a balance is a SUM over valid lots.
//  - RejectedMessage: messages that break the event contract (kept, never silently dropped).
// Times are unix seconds; amounts are bigints (decimal strings in events and query results).
import { defineSchema, t } from 'strata';

export default defineSchema({
  CreditHistory: {
    fields: {
      id: t.text(), // `${creditRef}:${creditIndex}`
      creditRef: t.text(), // the message hash
      creditIndex: t.integer(), // the line within the message
      kind: t.text(), // 'distribution' | 'expense' | 'transfer-out' | 'transfer-in'
      address: t.text(),
      amount: t.bigint(), // signed: credited > 0, debited < 0
      uncovered: t.bigint(), // what a debit found no valid lots for (0 when fully covered)
      messageTimestamp: t.bigint(),
      expiration: t.bigint().nullable(), // of a credit line; null: never
      block: t.integer(),
    },
    indexes: [['address']],
  },
  CreditLot: {
    fields: {
      id: t.text(), // `${address}:${creditRef}:${creditIndex}`
      address: t.text(),
      creditRef: t.text(),
      creditIndex: t.integer(),
      amountRemaining: t.bigint(),
      expiration: t.bigint().nullable(),
      messageTimestamp: t.bigint(),
    },
    indexes: [['address']],
  },
  RejectedMessage: {
    fields: {
      id: t.text(), // `${block}:${logIndex}`
      event: t.text(),
      ref: t.text().nullable(),
      reason: t.text(),
      block: t.integer(),
    },
  },
});
