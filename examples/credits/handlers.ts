// The credits ledger, maintained eagerly: every message updates the per-lot balances at once, so
// a balance is a SUM over valid lots (examples/credits/README.md has the rules and the contract).
//  - distribution: one lot per recipient;
//  - expense: drains the address's valid lots (drain order: the `drainPolicy` option);
//  - transfer: drains the sender the same way and gives each drained portion to the recipient as
//    a lot expiring at min(source, requested) — unless the sender is whitelisted (`whitelistedSenders`),
//    which transfers without draining.
// A message is applied once: a ref already in the history is skipped (replayed or re-sent).
import { createHandlers, type HandlerContext, type RowOf } from 'strata';
import { type Parsed, parseDistribution, parseExpense, parseTransfer } from './contract.ts';
import schema from './schema.ts';

type Context = HandlerContext<typeof schema>;
type Lot = RowOf<typeof schema, 'CreditLot'>;

const handlers = createHandlers(schema);

/** Lot orders per drain policy; the id (address, ref, index) breaks any tie. */
const DRAIN_ORDER = {
  // first emitted, first drained
  emission: ['messageTimestamp', 'creditRef', 'creditIndex'],
  // soonest expiring first (never-expiring last), then as emitted
  expiration: ['expiration', 'messageTimestamp', 'creditRef', 'creditIndex'],
} as const;

interface LedgerOptions {
  drainPolicy: keyof typeof DRAIN_ORDER;
  whitelistedSenders: ReadonlySet<string>;
}

const optionsCache = new WeakMap<object, LedgerOptions>();

function ledgerOptions(options: Readonly<Record<string, unknown>>): LedgerOptions {
  let parsed = optionsCache.get(options);
  if (parsed !== undefined) return parsed;
  const drainPolicy = options.drainPolicy ?? 'emission';
  if (drainPolicy !== 'emission' && drainPolicy !== 'expiration')
    throw new Error(
      `credits options: drainPolicy must be "emission" or "expiration", got ${JSON.stringify(drainPolicy)}`,
    );
  const whitelisted = options.whitelistedSenders ?? [];
  if (!Array.isArray(whitelisted) || !whitelisted.every((sender) => typeof sender === 'string'))
    throw new Error('credits options: whitelistedSenders must be an array of addresses');
  parsed = { drainPolicy, whitelistedSenders: new Set(whitelisted) };
  optionsCache.set(options, parsed);
  return parsed;
}

const lotId = (address: string, ref: string, index: number) => `${address}:${ref}:${index}`;
const lineId = (ref: string, index: number) => `${ref}:${index}`;

/** Unparseable messages are kept with the reason; true when the message can be applied. */
function accept<T>(
  context: Context,
  parsed: Parsed<T>,
  event: { name: string; logIndex: number },
  block: number,
): parsed is { ok: true; message: T } {
  if (parsed.ok) return true;
  context.RejectedMessage.set({
    id: `${block}:${event.logIndex}`,
    event: event.name,
    ref: parsed.ref,
    reason: parsed.reason,
    block,
  });
  return false;
}

/** A ref already in the history was applied before: skip it. */
async function alreadyApplied(context: Context, ref: string): Promise<boolean> {
  return (await context.CreditHistory.get(lineId(ref, 0))) !== undefined;
}

/**
 * Takes `amount` from the address's lots valid at `at`: amountRemaining > 0, granted at or before
 * `at` (an older message must not drain a later grant) and not expired at `at`. Returns the
 * portions taken, lot by lot, and what no lot covered.
 */
async function drain(
  context: Context,
  address: string,
  amount: bigint,
  at: bigint,
): Promise<{ portions: Array<{ lot: Lot; taken: bigint }>; uncovered: bigint }> {
  const { drainPolicy } = ledgerOptions(context.options);
  // The time conditions are checked here, not in the filter: a filter that only names the address
  // is the same for every message of a batch but the address, so one query loads them all.
  const lots = await context.CreditLot.getWhere(
    { address: { _eq: address }, amountRemaining: { _gt: 0n } },
    { orderBy: DRAIN_ORDER[drainPolicy] },
  );
  const portions: Array<{ lot: Lot; taken: bigint }> = [];
  let remaining = amount;
  for (const lot of lots) {
    if (remaining === 0n) break;
    if (lot.messageTimestamp > at) continue;
    if (lot.expiration !== null && lot.expiration <= at) continue;
    const taken = lot.amountRemaining < remaining ? lot.amountRemaining : remaining;
    context.CreditLot.set({ ...lot, amountRemaining: lot.amountRemaining - taken });
    portions.push({ lot, taken });
    remaining -= taken;
  }
  return { portions, uncovered: remaining };
}

/** A credit line and its lot. */
function grant(
  context: Context,
  line: { ref: string; index: number; kind: string; address: string; amount: bigint },
  timestamp: bigint,
  expiration: bigint | null,
  block: number,
): void {
  context.CreditHistory.set({
    id: lineId(line.ref, line.index),
    creditRef: line.ref,
    creditIndex: line.index,
    kind: line.kind,
    address: line.address,
    amount: line.amount,
    uncovered: 0n,
    messageTimestamp: timestamp,
    expiration,
    block,
  });
  context.CreditLot.set({
    id: lotId(line.address, line.ref, line.index),
    address: line.address,
    creditRef: line.ref,
    creditIndex: line.index,
    amountRemaining: line.amount,
    expiration,
    messageTimestamp: timestamp,
  });
}

function debitLine(
  context: Context,
  line: { ref: string; kind: string; address: string; amount: bigint; uncovered: bigint },
  timestamp: bigint,
  block: number,
): void {
  context.CreditHistory.set({
    id: lineId(line.ref, 0),
    creditRef: line.ref,
    creditIndex: 0,
    kind: line.kind,
    address: line.address,
    amount: -line.amount,
    uncovered: line.uncovered,
    messageTimestamp: timestamp,
    expiration: null,
    block,
  });
}

/** The earlier of two expirations, null meaning no limit. */
function earliest(a: bigint | null, b: bigint | null): bigint | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}

handlers.onEvent('distribution', async ({ event, block, context }) => {
  const parsed = parseDistribution(event.payload);
  if (!accept(context, parsed, event, block.number)) return;
  const { ref, timestamp, recipients } = parsed.message;
  if (await alreadyApplied(context, ref)) return;
  recipients.forEach((recipient, index) => {
    grant(
      context,
      { ref, index, kind: 'distribution', address: recipient.address, amount: recipient.amount },
      timestamp,
      recipient.expiration,
      block.number,
    );
  });
});

handlers.onEvent('expense', async ({ event, block, context }) => {
  const parsed = parseExpense(event.payload);
  if (!accept(context, parsed, event, block.number)) return;
  const { ref, timestamp, address, amount } = parsed.message;
  if (await alreadyApplied(context, ref)) return;
  const { uncovered } = await drain(context, address, amount, timestamp);
  debitLine(context, { ref, kind: 'expense', address, amount, uncovered }, timestamp, block.number);
});

handlers.onEvent('transfer', async ({ event, block, context }) => {
  const parsed = parseTransfer(event.payload);
  if (!accept(context, parsed, event, block.number)) return;
  const { ref, timestamp, from, to, amount, expiration } = parsed.message;
  if (await alreadyApplied(context, ref)) return;
  if (ledgerOptions(context.options).whitelistedSenders.has(from)) {
    debitLine(
      context,
      { ref, kind: 'transfer-out', address: from, amount, uncovered: 0n },
      timestamp,
      block.number,
    );
    grant(
      context,
      { ref, index: 1, kind: 'transfer-in', address: to, amount },
      timestamp,
      expiration,
      block.number,
    );
    return;
  }
  const { portions, uncovered } = await drain(context, from, amount, timestamp);
  debitLine(
    context,
    { ref, kind: 'transfer-out', address: from, amount, uncovered },
    timestamp,
    block.number,
  );
  portions.forEach(({ lot, taken }, k) => {
    grant(
      context,
      { ref, index: 1 + k, kind: 'transfer-in', address: to, amount: taken },
      timestamp,
      earliest(lot.expiration, expiration),
      block.number,
    );
  });
});

export default handlers;
