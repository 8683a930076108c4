// The ledger's event contract (examples/credits/README.md): payloads are checked here, once, into
// typed messages — or a reason the message is rejected. Any producer can feed the ledger over the
// ingest API, so nothing about a payload is assumed.

export interface Distribution {
  ref: string;
  timestamp: bigint;
  recipients: Array<{ address: string; amount: bigint; expiration: bigint | null }>;
}
export interface Expense {
  ref: string;
  timestamp: bigint;
  address: string;
  amount: bigint;
}
export interface Transfer {
  ref: string;
  timestamp: bigint;
  from: string;
  to: string;
  amount: bigint;
  expiration: bigint | null;
}

export type Parsed<T> = { ok: true; message: T } | { ok: false; ref: string | null; reason: string };

const MAX_RECIPIENTS = 1_000;

export function parseDistribution(payload: unknown): Parsed<Distribution> {
  return parse(payload, (p) => {
    const recipients = p.recipients;
    if (!Array.isArray(recipients) || recipients.length === 0 || recipients.length > MAX_RECIPIENTS)
      throw new Error(`recipients must be an array of 1..${MAX_RECIPIENTS}`);
    return {
      ref: ref(p.ref),
      timestamp: seconds(p.timestamp, 'timestamp'),
      recipients: recipients.map((recipient: unknown, index: number) => {
        if (typeof recipient !== 'object' || recipient === null)
          throw new Error(`recipients[${index}] must be an object`);
        const r = recipient as Record<string, unknown>;
        return {
          address: address(r.address, `recipients[${index}].address`),
          amount: amount(r.amount, `recipients[${index}].amount`),
          expiration: expiration(r.expiration, `recipients[${index}].expiration`),
        };
      }),
    };
  });
}

export function parseExpense(payload: unknown): Parsed<Expense> {
  return parse(payload, (p) => ({
    ref: ref(p.ref),
    timestamp: seconds(p.timestamp, 'timestamp'),
    address: address(p.address, 'address'),
    amount: amount(p.amount, 'amount'),
  }));
}

export function parseTransfer(payload: unknown): Parsed<Transfer> {
  return parse(payload, (p) => ({
    ref: ref(p.ref),
    timestamp: seconds(p.timestamp, 'timestamp'),
    from: address(p.from, 'from'),
    to: address(p.to, 'to'),
    amount: amount(p.amount, 'amount'),
    expiration: expiration(p.expiration, 'expiration'),
  }));
}

function parse<T>(payload: unknown, read: (p: Record<string, unknown>) => T): Parsed<T> {
  const p = (typeof payload === 'object' && payload !== null ? payload : {}) as Record<string, unknown>;
  try {
    return { ok: true, message: read(p) };
  } catch (error) {
    const known = typeof p.ref === 'string' && p.ref.length <= 200 ? p.ref : null;
    return { ok: false, ref: known, reason: (error as Error).message };
  }
}

function ref(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200 || value.includes(':'))
    throw new Error('ref must be a non-empty string of at most 200 characters without ":"');
  return value;
}

function address(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 200 || value.includes(':'))
    throw new Error(`${name} must be a non-empty string of at most 200 characters without ":"`);
  return value;
}

const DECIMAL = /^[0-9]{1,78}$/;

function amount(value: unknown, name: string): bigint {
  if (typeof value !== 'string' || !DECIMAL.test(value) || BigInt(value) === 0n)
    throw new Error(`${name} must be a positive integer as a decimal string`);
  return BigInt(value);
}

function seconds(value: unknown, name: string): bigint {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw new Error(`${name} must be unix seconds (a non-negative integer)`);
  return BigInt(value);
}

function expiration(value: unknown, name: string): bigint | null {
  return value === null || value === undefined ? null : seconds(value, name);
}
