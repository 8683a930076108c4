// docs/operations.md's settings table is src/settings.ts rendered: every setting the config reads
// has its row (env, flag, default, meaning) as the table gives it, in the table's order, and the
// docs list nothing else. On a mismatch the expected rows are printed, ready to paste.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SETTINGS, type SettingKey, type SettingSpec, settingDocRow } from '../../src/settings.ts';

const doc = readFileSync(path.resolve(import.meta.dirname, '../../docs/operations.md'), 'utf8');
const section = doc.slice(doc.indexOf('## Settings'), doc.indexOf('\n## ', doc.indexOf('## Settings') + 1));
const documentedRows = section.split('\n').filter((line) => line.startsWith('| `'));
const expectedRows = (Object.keys(SETTINGS) as SettingKey[]).map(settingDocRow);

describe('docs/operations.md settings', () => {
  it('is the settings table of src/settings.ts, row for row', () => {
    expect(documentedRows.join('\n'), `expected rows:\n${expectedRows.join('\n')}`).toBe(
      expectedRows.join('\n'),
    );
  });

  it('gives every setting its own environment variable and at most one flag', () => {
    const envs = Object.values(SETTINGS).map((setting) => setting.env);
    expect(new Set(envs).size).toBe(envs.length);
    const flags = Object.values(SETTINGS).flatMap((setting: SettingSpec) =>
      setting.flag ? [setting.flag.name] : [],
    );
    expect(new Set(flags).size).toBe(flags.length);
  });
});
