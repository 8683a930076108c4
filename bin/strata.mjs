#!/usr/bin/env node
// Entry of the `strata` command. Strata ships TypeScript sources and needs no build step: the
// first start compiles them to JavaScript in node_modules/.cache (bin/compile-runtime.mjs; tens
// of milliseconds, again only after a source changes) and runs that copy, with no loader in any
// thread. Should the copy be impossible (a read-only install), it runs the sources through tsx;
// STRATA_FROM_SOURCE=1 asks for that (debugging Strata itself, the benchmarks' reference).
import { compiledRuntime } from './compile-runtime.mjs';

let entry;
if (process.env.STRATA_FROM_SOURCE !== '1') {
  try {
    entry = await compiledRuntime();
  } catch (error) {
    process.emitWarning(`running from the TypeScript sources: cannot compile them (${error.message})`);
  }
}
if (entry !== undefined) {
  process.setSourceMapsEnabled(true);
  await import(entry);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
