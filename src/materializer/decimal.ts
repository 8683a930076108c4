// Exact decimals for evaluating `where` clauses in memory the way Postgres does on numeric,
// bigint and integer columns: an integer number of units at a decimal scale (1.50 = 150 at
// scale 2). Comparisons, +, − and × are exact; division is only offered on integers (Postgres
// truncates integer division toward zero, as BigInt does). Floats would disagree with Postgres on
// values past 2^53 (uint256 balances) and on decimal fractions.

export interface Decimal {
  readonly units: bigint;
  readonly scale: number;
}

const DECIMAL_TEXT = /^\s*([+-])?(\d+)?(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/;

/** Parses Postgres numeric text (`-12.50`, `1e3`, `.5`); null when it is not a number. */
export function parseDecimal(text: string): Decimal | null {
  const match = DECIMAL_TEXT.exec(text);
  if (match === null) return null;
  const [, sign, whole = '', fraction = '', exponent] = match;
  if (whole === '' && fraction === '') return null;
  let units = BigInt(`${whole}${fraction}` || '0');
  let scale = fraction.length - Number(exponent ?? 0);
  if (scale < 0) {
    units *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { units: sign === '-' ? -units : units, scale };
}

export function decimalFromInteger(value: bigint | number): Decimal {
  return { units: BigInt(value), scale: 0 };
}

function rescale(value: Decimal, scale: number): bigint {
  return value.units * 10n ** BigInt(scale - value.scale);
}

export function compareDecimal(a: Decimal, b: Decimal): number {
  const scale = Math.max(a.scale, b.scale);
  const left = rescale(a, scale);
  const right = rescale(b, scale);
  return left < right ? -1 : left > right ? 1 : 0;
}

export function addDecimal(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) + rescale(b, scale), scale };
}

export function subtractDecimal(a: Decimal, b: Decimal): Decimal {
  const scale = Math.max(a.scale, b.scale);
  return { units: rescale(a, scale) - rescale(b, scale), scale };
}

export function multiplyDecimal(a: Decimal, b: Decimal): Decimal {
  return { units: a.units * b.units, scale: a.scale + b.scale };
}

/** Integer division and remainder (both operands at scale 0); null on division by zero. */
export function divideIntegers(a: Decimal, b: Decimal, op: '/' | '%'): Decimal | null {
  if (b.units === 0n) return null;
  return { units: op === '/' ? a.units / b.units : a.units % b.units, scale: 0 };
}

export function negateDecimal(a: Decimal): Decimal {
  return { units: -a.units, scale: a.scale };
}

/** Whether the value has no fractional part (an integer at any scale). */
export function isIntegral(a: Decimal): boolean {
  return a.scale === 0 || a.units % 10n ** BigInt(a.scale) === 0n;
}
