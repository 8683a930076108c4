// The embedded database's own thread: PGlite (Postgres compiled to WASM) and the loopback socket
// server (pglite-socket-server.ts) that every pool reaches it through. PGlite executes each
// statement synchronously in the thread that holds it; here that thread is not the main one, so
// a long embedded statement (a COPY, an index build) cannot stall HTTP or the supervisor.
//
// Protocol with the main thread (src/db/embedded.ts): it posts `ready` with the socket's address
// once it serves (or `failed` with the error); on `close` it stops the server, closes PGlite and
// posts `closed`.

import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { PgliteSocketServer } from './pglite-socket-server.ts';
import { createPglite, type PgliteStart } from './pglite-template.ts';

export interface EmbeddedThreadOptions {
  storage: 'disk' | 'memory';
  dataDir: string;
  maxConnections: number;
}

export type EmbeddedThreadMessage =
  | { kind: 'ready'; address: string; started: PgliteStart }
  | { kind: 'failed'; message: string }
  | { kind: 'closed' };

export function serveEmbeddedDatabase(): void {
  const port = parentPort;
  if (port === null) throw new Error('the embedded database thread must run in a worker');
  const options = (workerData as { options: EmbeddedThreadOptions }).options;
  const post = (message: EmbeddedThreadMessage) => port.postMessage(message);
  void (async () => {
    try {
      const { db, started } = await createPglite(
        options.storage === 'disk' ? path.join(options.dataDir, 'pgdata') : undefined,
      );
      const server = new PgliteSocketServer(db, options.maxConnections);
      const address = await server.start();
      port.on('message', async (message: { kind?: string }) => {
        if (message.kind !== 'close') return;
        await server.stop();
        await db.close();
        post({ kind: 'closed' });
        port.close();
      });
      post({ kind: 'ready', address, started });
    } catch (error) {
      post({ kind: 'failed', message: error instanceof Error ? error.message : String(error) });
    }
  })();
}
