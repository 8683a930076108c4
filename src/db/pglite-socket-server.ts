// The loopback server every actor's `pg` pool reaches embedded PGlite through. pglite-socket's
// connection handler speaks the wire protocol; the order in which the connections' messages
// reach PGlite's one session is ours (pglite-protocol-queue.ts), which is why this is not
// pglite-socket's own server (its queue cannot be swapped).

import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketHandler } from '@electric-sql/pglite-socket';
import { PgliteProtocolQueue } from './pglite-protocol-queue.ts';

type HandlerQueue = ConstructorParameters<typeof PGLiteSocketHandler>[0]['queryQueue'];

export class PgliteSocketServer {
  private readonly queue: PgliteProtocolQueue;
  private readonly handlers = new Set<PGLiteSocketHandler>();
  private server: Server | null = null;
  private address = '';

  constructor(
    db: PGlite,
    private readonly maxConnections: number,
  ) {
    this.queue = new PgliteProtocolQueue(db);
  }

  /** Listens on 127.0.0.1 (a free port); resolves with `host:port`. */
  async start(): Promise<string> {
    const server = createServer((socket) => this.accept(socket));
    server.maxConnections = this.maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.server = server;
    const { port } = server.address() as { port: number };
    this.address = `127.0.0.1:${port}`;
    return this.address;
  }

  private accept(socket: Socket): void {
    const handler = new PGLiteSocketHandler({
      // The handler only calls the queue's public methods, which ours has.
      queryQueue: this.queue as unknown as HandlerQueue,
      closeOnDetach: true,
    });
    this.handlers.add(handler);
    const forget = () => this.handlers.delete(handler);
    handler.addEventListener('close', forget);
    handler.addEventListener('error', forget);
    handler.attach(socket).catch(() => {
      forget();
      socket.destroy();
    });
  }

  async stop(): Promise<void> {
    for (const handler of this.handlers) await handler.detach(true);
    this.handlers.clear();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
