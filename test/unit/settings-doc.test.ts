// docs/operations.md's settings table and src/config.ts agree: every environment variable and flag
// the config reads is documented, with its flag, and the table lists nothing the config ignores.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOOLEAN_FLAGS, ENV_KEYS, FLAG_KEYS } from '../../src/config.ts';

const doc = readFileSync(path.resolve(import.meta.dirname, '../../docs/operations.md'), 'utf8');
const table = doc.slice(doc.indexOf('## Settings'), doc.indexOf('\n## ', doc.indexOf('## Settings') + 1));
/** env name → the flags its row names. */
const rows = new Map(
  table
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .flatMap((line) => {
      const [envCell = '', flagCell = ''] = line.split('|').slice(1, 3);
      const flags = [...flagCell.matchAll(/--([a-z-]+)/g)].map((match) => match[1]!);
      return [...envCell.matchAll(/`([A-Z_]+)`/g)].map((match) => [match[1]!, flags] as const);
    }),
);

describe('docs/operations.md settings', () => {
  it('documents every environment variable the config reads, and no other', () => {
    expect([...rows.keys()].sort()).toEqual(Object.keys(ENV_KEYS).sort());
  });

  it("names each setting's flag on its row", () => {
    const flagsBySetting = new Map<string, string[]>();
    for (const [flag, key] of [...Object.entries(FLAG_KEYS), ...Object.entries(BOOLEAN_FLAGS)]) {
      flagsBySetting.set(key, [...(flagsBySetting.get(key) ?? []), flag]);
    }
    for (const [env, key] of Object.entries(ENV_KEYS)) {
      for (const flag of flagsBySetting.get(key) ?? [])
        expect(rows.get(env), `${env} --${flag}`).toContain(flag);
    }
  });
});
