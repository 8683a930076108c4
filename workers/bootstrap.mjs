// Every actor worker starts here. Node 20 does not pass the parent's module loader hooks to
// worker threads, so a worker spawned from a tsx-run daemon (or from vitest) cannot import
// `.ts` files on its own: register tsx in this thread first, then load the actor's entry.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
