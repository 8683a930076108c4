// The `electric-schema` header: each projected column's Postgres type as Electric names it, which
// tells the client how to parse the text values (int4 → number, int8 → BigInt, bool, json(b) →
// JSON.parse; arrays through the array parser; the rest stay strings).

import type { EntityDescription } from '../schema/define-schema.ts';

const ELECTRIC_TYPES: Record<string, string> = {
  text: 'text',
  integer: 'int4',
  // Strata's bigint holds uint256 (numeric(78,0) in Postgres); int8 makes the client BigInt() it,
  // which holds any size.
  bigint: 'int8',
  numeric: 'numeric',
  boolean: 'bool',
  timestamptz: 'timestamptz',
  json: 'jsonb',
};

export function electricSchema(
  entity: EntityDescription,
  columns: readonly string[],
): Record<string, { type: string; dims?: number; pk_index?: number; not_null?: boolean }> {
  const schema: Record<string, { type: string; dims?: number; pk_index?: number; not_null?: boolean }> = {};
  for (const name of columns) {
    const { spec } = entity.columns.find((column) => column.name === name)!;
    schema[name] = {
      type: ELECTRIC_TYPES[spec.kind]!,
      ...(spec.array ? { dims: 1 } : {}),
      ...(name === 'id' ? { pk_index: 0 } : {}),
      ...(spec.nullable ? {} : { not_null: true }),
    };
  }
  return schema;
}
