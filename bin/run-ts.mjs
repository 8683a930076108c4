#!/usr/bin/env node
import { resolve } from 'node:path';
// Runs one TypeScript file (benchmarks, scripts) through tsx: `node bin/run-ts.mjs bench/x.ts`.
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

const [file] = process.argv.splice(2, 1);
if (!file) {
  console.error('usage: node bin/run-ts.mjs <file.ts> [args]');
  process.exit(1);
}
register();
await import(pathToFileURL(resolve(file)).href);
