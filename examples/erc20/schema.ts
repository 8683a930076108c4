// The open-indexer-benchmark ERC20 entities: balances, every transfer, allowances.
import { defineSchema, t } from 'strata';

export default defineSchema({
  Account: {
    fields: {
      id: t.text(), // the address
      balance: t.bigint(),
      transfersOut: t.integer(),
      transfersIn: t.integer(),
      sent: t.derivedFrom('Transfer', 'from'),
    },
  },
  Transfer: {
    fields: {
      id: t.text(), // `${blockNumber}-${logIndex}`
      from: t.text(),
      to: t.text(),
      value: t.bigint(),
      blockNumber: t.integer(),
      timestamp: t.timestamptz(),
    },
    indexes: [['from'], ['to']],
  },
  Allowance: {
    fields: {
      id: t.text(), // `${owner}-${spender}`
      owner: t.text(),
      spender: t.text(),
      value: t.bigint(),
    },
  },
});
