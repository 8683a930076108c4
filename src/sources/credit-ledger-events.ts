// The `credit-ledger` workload: credit messages in the lot ledger's event contract
// (examples/credits/README.md) — distributions to 1..3 recipients, expenses, transfers — with
// what makes a ledger hard: message timestamps older than their block (messages arrive out of
// order, some older than lots already granted), many equal timestamps, expirations that pass
// during the stream (before, at and after later spends), and a whitelisted sender. Spends slightly
// outweigh grants (a distribution credits 2 recipients 300 on average; an expense spends 500), as
// in a ledger whose users use what they get: lots drain, and some spends overdraw.

import type { SourceEvent } from './types.ts';

/** The address the example whitelists: it transfers without draining lots. */
export const LEDGER_TREASURY_INDEX = 1;

export interface LedgerEventPlace {
  seed: number;
  block: number;
  /** The block's timestamp (unix seconds). */
  timestamp: number;
  logIndex: number;
}

export function creditLedgerEvent(
  random: () => number,
  pickAddress: () => string,
  treasury: string,
  place: LedgerEventPlace,
): SourceEvent {
  const ref = messageRef(place);
  const timestamp = messageTimestamp(random, place.timestamp);
  const roll = random();
  if (roll < 0.3) {
    const recipients = [];
    for (let count = 1 + Math.floor(random() * 3); count > 0; count--)
      recipients.push({
        address: pickAddress(),
        amount: String(1 + Math.floor(random() * 400)),
        expiration: expiration(random, timestamp),
      });
    return { name: 'distribution', payload: { ref, timestamp, recipients }, logIndex: place.logIndex };
  }
  if (roll < 0.7) {
    const payload = {
      ref,
      timestamp,
      address: pickAddress(),
      amount: String(1 + Math.floor(random() * 2_000)),
    };
    return { name: 'expense', payload, logIndex: place.logIndex };
  }
  const from = roll < 0.73 ? treasury : pickAddress();
  const payload = {
    ref,
    timestamp,
    from,
    to: pickAddress(),
    amount: String(1 + Math.floor(random() * 1_000)),
    expiration: expiration(random, timestamp),
  };
  return { name: 'transfer', payload, logIndex: place.logIndex };
}

/** A message hash: unique per (seed, block, log index), so another branch of a reorg has others. */
function messageRef({ seed, block, logIndex }: LedgerEventPlace): string {
  const salt = (Math.imul(seed ^ 0x27d4eb2f, 0x165667b1) ^ Math.imul(block, 0x9e3779b1)) >>> 0;
  return `0x${salt.toString(16).padStart(8, '0')}${block.toString(16).padStart(12, '0')}${logIndex.toString(16).padStart(4, '0')}`;
}

/** Mostly the block's own time (so equal timestamps abound); one in five late, one in 20 very late. */
function messageTimestamp(random: () => number, blockTimestamp: number): number {
  const roll = random();
  if (roll < 0.8) return blockTimestamp;
  if (roll < 0.95) return blockTimestamp - 12 * Math.floor(random() * 5);
  return blockTimestamp - 12 * Math.floor(random() * 500);
}

/** Half never expire; the rest within about 2,000 blocks, some within a few. */
function expiration(random: () => number, timestamp: number): number | null {
  if (random() < 0.5) return null;
  return timestamp + 12 * Math.floor(random() ** 2 * 2_000);
}
