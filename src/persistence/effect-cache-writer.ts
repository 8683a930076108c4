// Stores `cache: true` effect outputs in the writer's transaction, with the batch that produced
// them: an output is durable exactly when the state derived from it is. Shared by every pipeline
// and process (an effect is a function of its input), so a later write of the same input simply
// replaces the row — which also replaces outputs that no longer matched the output schema.

import type { Queryable } from '../db/pool.ts';
import { escapeUnstorableInJsonText } from './nul-escape.ts';

export async function writeEffectCache(
  client: Queryable,
  rows: ReadonlyArray<[effect: string, inputKey: string, output: string]>,
  escapeNul: boolean,
): Promise<void> {
  if (rows.length === 0) return;
  // The last output per key wins (one statement cannot upsert a key twice).
  const latest = new Map<string, [string, string, string]>();
  for (const row of rows) latest.set(`${row[0]}\u0001${row[1]}`, row);
  const unique = [...latest.values()];
  await client.query(
    `INSERT INTO strata.effect_cache (effect, input_key, output)
     SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])
     ON CONFLICT (effect, input_key) DO UPDATE SET output = EXCLUDED.output, created_at = now()`,
    [
      unique.map((row) => row[0]),
      unique.map((row) => row[1]),
      unique.map((row) => (escapeNul ? escapeUnstorableInJsonText(row[2]) : row[2])),
    ],
  );
}
