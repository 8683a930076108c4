// JSON with object keys sorted, so equal values give equal text whatever their key order: what
// fingerprints (src/schema/ddl.ts) and effect cache keys (src/processing/effect-store.ts) hash.
// Bigints are written as `"<digits>n"` (JSON has no bigint).

export function stableJson(value: unknown): string {
  if (typeof value === 'bigint') return `"${value}n"`;
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value)
      .filter(([, inner]) => inner !== undefined)
      .sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([key, inner]) => `${JSON.stringify(key)}:${stableJson(inner)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
