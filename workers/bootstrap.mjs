// Every actor worker starts here. Node 20 does not pass the parent's module loader hooks to
// worker threads, so a worker spawned from a tsx-run daemon (or from vitest) cannot import
// `.ts` files on its own: register tsx in this thread first, then the hooks that transpile the
// project's modules with oxc (registered last, so they run first), then load the actor's entry.
import { register as registerHooks } from 'node:module';
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
registerHooks('./user-module-hooks.mjs', import.meta.url, {
  data: { strataSources: new URL('../src/', import.meta.url).href },
});
await import(workerData.entry);
