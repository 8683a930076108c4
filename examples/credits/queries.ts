// The ledger's reads, as named queries (GET /v1/pipelines/credits/queries/<name>?…):
//   balance?address=…&at=…               → { address, balance }
//   balances?minBalance=…&at=…&after=…&limit=… → [{ address, balance }], by address
// A balance is what remains of the address's lots still valid at `at` (unix seconds, default now),
// floored at 0, as a decimal string. `minBalance=0` (the default) lists zero balances too: every
// address that ever held a lot. `at` asks which of today's remaining credits are still valid then
// — a future time shows what will have expired; it is not a historical balance.
import type { NamedQueryDeclaration } from 'strata';

const VALID_AT = `"expiration" IS NULL OR "expiration" > :at`;
const BALANCE = `GREATEST(COALESCE(SUM("amountRemaining") FILTER (WHERE ${VALID_AT}), 0), 0)`;

export const queries: Record<string, NamedQueryDeclaration> = {
  balance: {
    description: "An address's balance at a time (default: now)",
    params: {
      address: { type: 'text', maxLength: 200 },
      at: { type: 'unixSeconds', default: 'now' },
    },
    sql: `SELECT :address::text AS address, ${BALANCE}::text AS balance
          FROM "CreditLot" WHERE "address" = :address`,
    returns: 'row',
  },
  balances: {
    description: 'Balances of every address that held a lot, at least minBalance, by address',
    params: {
      minBalance: { type: 'decimal', default: '0', min: 0 },
      at: { type: 'unixSeconds', default: 'now' },
      after: {
        type: 'text',
        optional: true,
        maxLength: 200,
        description: 'the last address of the previous page',
      },
      limit: { type: 'integer', default: 1000, min: 1, max: 10_000 },
    },
    sql: `SELECT "address", ${BALANCE}::text AS balance
          FROM "CreditLot"
          WHERE :after::text IS NULL OR "address" > :after
          GROUP BY "address"
          HAVING ${BALANCE} >= :minBalance::numeric
          ORDER BY "address"
          LIMIT :limit`,
  },
};
