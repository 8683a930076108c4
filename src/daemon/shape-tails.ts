// A shape's last transactions, kept on the main thread as the materializer reports them, so that
// live requests are answered without a call to the materializer's thread: a reader at the head
// (nothing new: the request waits), a reader one transaction behind (the usual wake-up) and one a
// few transactions behind (it missed some while its next request was on the way).

import type { ShapeTail } from '../protocol.ts';

/** Transactions kept per shape. */
const KEPT = 4;

export class ShapeTails {
  /** Per handle, its last transactions, each starting where the one before ended. */
  private readonly byHandle = new Map<string, ShapeTail[]>();

  constructor(private readonly kept = KEPT) {}

  /** The shape's next transaction, with its messages. */
  add(tail: ShapeTail): void {
    const tails = this.byHandle.get(tail.handle);
    if (tails !== undefined && tails[tails.length - 1]!.offset === tail.from) {
      tails.push(tail);
      if (tails.length > this.kept) tails.shift();
    } else this.byHandle.set(tail.handle, [tail]);
  }

  /** The shape changed without its messages (or went): what is kept no longer reaches its head. */
  forget(handle: string): void {
    this.byHandle.delete(handle);
  }

  clear(): void {
    this.byHandle.clear();
  }

  /**
   * The messages after `offset` and the offset they end at — none when `offset` is where the last
   * kept transaction ended (the head, as far as this thread has heard) — or null when what is
   * kept does not reach back to `offset`, or holds more than `limit` messages after it.
   */
  after(handle: string, offset: string, limit: number): { messages: string[]; offset: string } | null {
    const tails = this.byHandle.get(handle);
    if (tails === undefined) return null;
    const head = tails[tails.length - 1]!.offset;
    if (head === offset) return { messages: [], offset: head };
    const first = tails.findIndex((tail) => tail.from === offset);
    if (first < 0) return null;
    const messages =
      first === tails.length - 1
        ? tails[first]!.messages
        : tails.slice(first).flatMap((tail) => tail.messages);
    return messages.length > limit ? null : { messages, offset: head };
  }
}
