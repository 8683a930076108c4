// A large JSON body — an ingest request carrying one block of 500,000 events is ~70 MB of text,
// and its buffers, text and parsed objects ~300 MiB — is garbage once its response is sent. But
// the main thread goes quiet then, and V8 collects its old generation only when it next needs
// room: the daemon kept those ~300 MiB resident all through the processing of that block
// (bench/RESULTS.md, "A 1M-change transaction"). After the response to a body of at least
// LARGE_BODY_BYTES, one full collection gives them back — a few tens of milliseconds, after a
// request that took seconds.

import v8 from 'node:v8';
import vm from 'node:vm';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export const LARGE_BODY_BYTES = 16 * 1024 * 1024;

let fullCollection: (() => void) | undefined;

/**
 * V8's `gc()`: it exists only under --expose-gc, and then only in contexts created after. The flag
 * is process-wide, so it is cleared again at once: actor threads started later (handlers' code)
 * get no `gc` global.
 */
function collector(): () => void {
  if (fullCollection === undefined) {
    v8.setFlagsFromString('--expose-gc');
    try {
      fullCollection = vm.runInNewContext('gc') as () => void;
    } finally {
      v8.setFlagsFromString('--no-expose-gc');
    }
  }
  return fullCollection;
}

/** Requests whose body was large; collected after their response. */
const largeBodies = new WeakSet<FastifyRequest>();
let collectionPending = false;

/** The body parser saw `bytes` for this request. */
export function noteBodySize(request: FastifyRequest, bytes: number): void {
  if (bytes >= LARGE_BODY_BYTES) largeBodies.add(request);
}

export function registerLargeBodyRelease(app: FastifyInstance): void {
  app.addHook('onResponse', async (request) => {
    if (!largeBodies.has(request) || collectionPending) return;
    collectionPending = true;
    // After this turn: the handler's frames, and with them the body, are gone by then.
    setImmediate(() => {
      collectionPending = false;
      collector()();
    });
  });
}
