// An independent reference for the credits ledger (examples/credits): random histories with what
// makes a ledger hard, and a plain fold of a history into lots, written from the rules in
// ../shared/reference/credit-lots.md and examples/credits/README.md — not from the handlers.
//
// Messages are applied in the order the source delivers them (block, then log index); a message's
// own timestamp decides what it may drain: lots granted at or before it, not expired at it.

import { mulberry32 } from '../../src/sources/generator.ts';

export const TREASURY = '0x0000000000000000000000000000000000000001';

export type Message =
  | {
      name: 'distribution';
      payload: {
        ref: string;
        timestamp: number;
        recipients: Array<{ address: string; amount: string; expiration: number | null }>;
      };
    }
  | { name: 'expense'; payload: { ref: string; timestamp: number; address: string; amount: string } }
  | {
      name: 'transfer';
      payload: {
        ref: string;
        timestamp: number;
        from: string;
        to: string;
        amount: string;
        expiration: number | null;
      };
    };

export interface LedgerBlock {
  number: number;
  timestamp: number;
  hash: string;
  parentHash: string | null;
  events: Message[];
}

/**
 * `blocks` blocks of 1..8 messages over a few addresses and the whitelisted treasury. Times sit on
 * a 10 s grid, so equal timestamps and expirations exactly at a spend's time are common; one
 * message in five is older than the block before it (out of order, older than lots already
 * granted); one in 30 re-sends an earlier message (same ref: applied once).
 */
export function randomHistory(seed: number, blocks: number): LedgerBlock[] {
  const random = mulberry32(seed);
  const int = (n: number) => Math.floor(random() * n);
  const addresses = ['0xa1', '0xb2', '0xc3', '0xd4', '0xe5', TREASURY];
  const pick = () => addresses[int(addresses.length)]!;
  const amount = () => String(1 + int(random() < 0.1 ? 5_000 : 300));
  const expiration = (ts: number) => (random() < 0.4 ? null : ts + 10 * int(30));
  const sent: Message[] = [];
  const history: LedgerBlock[] = [];
  let clock = 1_000_000;
  let parentHash: string | null = null;
  for (let number = 1; number <= blocks; number++) {
    clock += 10 * int(3);
    const events: Message[] = [];
    for (let count = 1 + int(8); count > 0; count--) {
      if (sent.length > 0 && random() < 1 / 30) {
        events.push(sent[int(sent.length)]!);
        continue;
      }
      const ref = `0x${seed.toString(16)}${number.toString(16).padStart(5, '0')}${events.length.toString(16).padStart(2, '0')}`;
      const timestamp = random() < 0.2 ? clock - 10 * int(20) : clock;
      const roll = random();
      let message: Message;
      if (roll < 0.35) {
        const recipients = [];
        for (let r = 1 + int(3); r > 0; r--)
          recipients.push({ address: pick(), amount: amount(), expiration: expiration(timestamp) });
        message = { name: 'distribution', payload: { ref, timestamp, recipients } };
      } else if (roll < 0.7) {
        message = { name: 'expense', payload: { ref, timestamp, address: pick(), amount: amount() } };
      } else {
        message = {
          name: 'transfer',
          payload: {
            ref,
            timestamp,
            from: pick(),
            to: pick(),
            amount: amount(),
            expiration: expiration(timestamp),
          },
        };
      }
      sent.push(message);
      events.push(message);
    }
    const hash = `0xh${seed}-${number}`;
    history.push({ number, timestamp: clock, hash, parentHash, events });
    parentHash = hash;
  }
  return history;
}

export interface ReferenceLot {
  address: string;
  creditRef: string;
  creditIndex: number;
  amountRemaining: bigint;
  expiration: bigint | null;
  messageTimestamp: bigint;
}

/** The lots a history leaves, by `${address}:${ref}:${index}`. */
export function foldLedger(
  history: readonly LedgerBlock[],
  policy: 'emission' | 'expiration',
  whitelisted: ReadonlySet<string>,
): Map<string, ReferenceLot> {
  const lots = new Map<string, ReferenceLot>();
  const applied = new Set<string>();
  const grant = (
    address: string,
    ref: string,
    index: number,
    amount: bigint,
    ts: bigint,
    expiration: bigint | null,
  ) => {
    lots.set(`${address}:${ref}:${index}`, {
      address,
      creditRef: ref,
      creditIndex: index,
      amountRemaining: amount,
      expiration,
      messageTimestamp: ts,
    });
  };
  const drain = (address: string, amount: bigint, at: bigint) => {
    const usable = [...lots.values()].filter(
      (lot) =>
        lot.address === address &&
        lot.amountRemaining > 0n &&
        lot.messageTimestamp <= at &&
        (lot.expiration === null || lot.expiration > at),
    );
    const emission = (a: ReferenceLot, b: ReferenceLot) =>
      a.messageTimestamp !== b.messageTimestamp
        ? a.messageTimestamp < b.messageTimestamp
          ? -1
          : 1
        : a.creditRef !== b.creditRef
          ? a.creditRef < b.creditRef
            ? -1
            : 1
          : a.creditIndex - b.creditIndex;
    usable.sort((a, b) => {
      if (policy === 'expiration' && a.expiration !== b.expiration) {
        if (a.expiration === null) return 1;
        if (b.expiration === null) return -1;
        return a.expiration < b.expiration ? -1 : 1;
      }
      return emission(a, b);
    });
    const taken: Array<{ lot: ReferenceLot; amount: bigint }> = [];
    let left = amount;
    for (const lot of usable) {
      if (left === 0n) break;
      const take = lot.amountRemaining < left ? lot.amountRemaining : left;
      lot.amountRemaining -= take;
      left -= take;
      taken.push({ lot, amount: take });
    }
    return taken;
  };
  for (const block of history) {
    for (const message of block.events) {
      const { ref } = message.payload;
      if (applied.has(ref)) continue;
      applied.add(ref);
      const ts = BigInt(message.payload.timestamp);
      if (message.name === 'distribution') {
        message.payload.recipients.forEach((r, i) => {
          grant(r.address, ref, i, BigInt(r.amount), ts, r.expiration === null ? null : BigInt(r.expiration));
        });
      } else if (message.name === 'expense') {
        drain(message.payload.address, BigInt(message.payload.amount), ts);
      } else {
        const { from, to, amount } = message.payload;
        const requested = message.payload.expiration === null ? null : BigInt(message.payload.expiration);
        if (whitelisted.has(from)) {
          grant(to, ref, 1, BigInt(amount), ts, requested);
          continue;
        }
        drain(from, BigInt(amount), ts).forEach(({ lot, amount: portion }, k) => {
          const capped =
            lot.expiration === null
              ? requested
              : requested === null || lot.expiration < requested
                ? lot.expiration
                : requested;
          grant(to, ref, 1 + k, portion, ts, capped);
        });
      }
    }
  }
  return lots;
}

/** Balance at `at`: what remains of lots not expired at `at`, floored at 0. */
export function referenceBalance(lots: Map<string, ReferenceLot>, address: string, at: bigint): bigint {
  let sum = 0n;
  for (const lot of lots.values())
    if (lot.address === address && (lot.expiration === null || lot.expiration > at))
      sum += lot.amountRemaining;
  return sum < 0n ? 0n : sum;
}
