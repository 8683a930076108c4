// The order in which the connections to embedded PGlite reach its one session. PGlite runs one
// Postgres backend; every connection of every actor is multiplexed onto it message by message.
// pglite-socket's own queue (0.2.x) takes the next message from any connection unless PGlite
// reports an open transaction — but a parameterized query is several messages (Parse, Bind,
// Describe, Execute, Sync) and PGlite only knows it is in a transaction after the whole sequence:
// another connection's `BEGIN` landing between a query's Execute and its Sync turned that query
// into the first statement of someone else's transaction (measured: "SET TRANSACTION ISOLATION
// LEVEL must be called before any query" within 0.1 s of two connections working side by side;
// an acknowledged write could have been rolled back with a transaction it never belonged to).
// Its queue also stopped for good after a failed message (its `processing` flag stayed set).
// Both are reported upstream (electric-sql/pglite#1046, open at 0.2.17; a fix proposed in #977).
//
// Here a connection holds the session from its first message until a unit of work ends — a
// simple query ('Q') or a Sync ('S') after which PGlite is not inside a transaction — and nobody
// else's messages run meanwhile. A failed message is reported to its connection and the queue
// goes on.

import type { PGlite } from '@electric-sql/pglite';

/** Message types that end a unit of work when no transaction is left open after them. */
const SIMPLE_QUERY = 0x51; // 'Q'
const SYNC = 0x53; // 'S'
const TERMINATE = 0x58; // 'X'

interface Queued {
  handlerId: number;
  message: Uint8Array;
  onData: (data: Uint8Array) => void;
  resolve: (bytes: number) => void;
  reject: (error: unknown) => void;
}

/** Whether `message` starts a connection (startup, SSL or cancel request: no type byte). */
function isUntyped(message: Uint8Array): boolean {
  return message[0] === 0;
}

export class PgliteProtocolQueue {
  private queue: Queued[] = [];
  private running = false;
  /** The connection whose unit of work is in progress (null: the session is free). */
  private owner: number | null = null;

  constructor(private readonly db: PGlite) {}

  /** Runs `message` of connection `handlerId` in its turn; resolves with the bytes answered. */
  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ handlerId, message, onData, resolve, reject });
      void this.run();
    });
  }

  getQueueLength(): number {
    return this.queue.length;
  }

  /** A connection went away: its queued messages fail. */
  clearQueueForHandler(handlerId: number): void {
    const kept: Queued[] = [];
    for (const queued of this.queue) {
      if (queued.handlerId === handlerId) queued.reject(new Error('connection closed'));
      else kept.push(queued);
    }
    this.queue = kept;
  }

  /** A connection went away mid-unit: roll back what it left open and free the session. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    if (this.owner !== handlerId) return;
    if (this.db.isInTransaction()) await this.db.exec('ROLLBACK').catch(() => undefined);
    this.owner = null;
    void this.run();
  }

  private next(): Queued | undefined {
    if (this.owner === null) return this.queue.shift();
    const index = this.queue.findIndex((queued) => queued.handlerId === this.owner);
    return index === -1 ? undefined : this.queue.splice(index, 1)[0];
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let queued = this.next(); queued !== undefined; queued = this.next()) {
        let bytes = 0;
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(queued!.message, {
              onRawData: (data) => {
                bytes += data.length;
                queued!.onData(data);
              },
            }),
          );
          queued.resolve(bytes);
        } catch (error) {
          queued.reject(error);
        }
        const type = queued.message[0];
        const unitEnds =
          isUntyped(queued.message) || type === SIMPLE_QUERY || type === SYNC || type === TERMINATE;
        this.owner = unitEnds && !this.db.isInTransaction() ? null : queued.handlerId;
      }
    } finally {
      this.running = false;
    }
  }
}
