// `npm run docs:settings`: rewrites the settings table of docs/operations.md from src/settings.ts
// (test/unit/settings-doc.test.ts fails until the two agree).
import { readFileSync, writeFileSync } from 'node:fs';
import { SETTINGS, type SettingKey, settingDocRow } from '../src/settings.ts';

const file = new URL('../docs/operations.md', import.meta.url);
const doc = readFileSync(file, 'utf8');
const start = doc.indexOf('## Settings');
const end = doc.indexOf('\n## ', start + 1);
const lines = doc.slice(start, end).split('\n');
const first = lines.findIndex((line) => line.startsWith('| `'));
const last = lines.findLastIndex((line) => line.startsWith('| `'));
lines.splice(first, last - first + 1, ...(Object.keys(SETTINGS) as SettingKey[]).map(settingDocRow));
writeFileSync(file, doc.slice(0, start) + lines.join('\n') + doc.slice(end));
console.log(`docs/operations.md: ${Object.keys(SETTINGS).length} settings written`);
