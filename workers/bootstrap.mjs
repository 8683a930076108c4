// Every actor worker starts here. A daemon started by `bin/strata.mjs` runs Strata compiled to
// JavaScript, and its workers' entries are `.js`: they load natively. An entry that is still
// TypeScript (a daemon run from the sources by vitest or tsx) needs a loader, and Node 20 does not
// pass the parent's module loader hooks to worker threads: register tsx in this thread first.
// A project's modules arrive already transpiled (the daemon builds them through the module cache
// into .strata/build, src/transpile/module-build.ts); their source maps point back at the user's
// files, so stack traces of handler errors name the user's file and line.
import { workerData } from 'node:worker_threads';

process.setSourceMapsEnabled(true);
if (workerData.entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(workerData.entry);
