// The demo's entity: running credit totals per address.
import { defineSchema, t } from 'strata';

export default defineSchema({
  AccountTotal: {
    fields: {
      id: t.text(), // the address
      credited: t.bigint(),
      debited: t.bigint(),
      events: t.integer(),
    },
  },
});
