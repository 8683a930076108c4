// Every actor worker starts here. Node 20 does not pass the parent's module loader hooks to
// worker threads, so a worker spawned from a tsx-run daemon (or from vitest) cannot import
// Strata's own `.ts` files on its own: register tsx in this thread first, then load the actor's
// entry. A project's modules arrive already transpiled (the daemon builds them through the module
// cache into .strata/build, src/transpile/module-build.ts); their source maps point back at the
// user's files, so stack traces of handler errors name the user's file and line.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

process.setSourceMapsEnabled(true);
register();
await import(workerData.entry);
