// Evaluates a compiled `where` clause against one row in memory, with SQL's three-valued logic
// (a comparison with NULL is NULL; a row belongs to a shape only when its clause is TRUE), so the
// materializer routes a change exactly as the snapshot's SQL would select the row.

import {
  addDecimal,
  type Decimal,
  divideIntegers,
  multiplyDecimal,
  negateDecimal,
  subtractDecimal,
} from './decimal.ts';
import type { WhereExpr } from './where-ast.ts';
import { compareValues, parseValue, type Value } from './where-values.ts';

/** A row as clients get it: column → Postgres text (null for NULL). */
export type TextRow = Readonly<Record<string, string | null>>;

/** Whether `row` belongs to the shape: the clause is TRUE (not FALSE, not NULL). */
export function matches(expr: WhereExpr, row: TextRow): boolean {
  return evaluate(expr, row) === true;
}

export function evaluate(expr: WhereExpr, row: TextRow): Value {
  switch (expr.kind) {
    case 'column': {
      const text = row[expr.name];
      if (text === null || text === undefined) return null;
      return parseValue(expr.type, text) ?? null;
    }
    case 'constant':
      return expr.value;
    case 'not': {
      const value = evaluate(expr.arg, row);
      return value === null ? null : !value;
    }
    case 'and': {
      let result: Value = true;
      for (const arg of expr.args) {
        const value = evaluate(arg, row);
        if (value === false) return false;
        if (value === null) result = null;
      }
      return result;
    }
    case 'or': {
      let result: Value = false;
      for (const arg of expr.args) {
        const value = evaluate(arg, row);
        if (value === true) return true;
        if (value === null) result = null;
      }
      return result;
    }
    case 'compare': {
      const left = evaluate(expr.left, row);
      const right = evaluate(expr.right, row);
      if (left === null || right === null) return null;
      const order = compareValues(left, right);
      switch (expr.op) {
        case '=':
          return order === 0;
        case '<>':
          return order !== 0;
        case '<':
          return order < 0;
        case '<=':
          return order <= 0;
        case '>':
          return order > 0;
        case '>=':
          return order >= 0;
      }
      return null;
    }
    case 'in': {
      const value = evaluate(expr.arg, row);
      if (value === null) return null;
      let sawNull = false;
      for (const item of expr.list) {
        const candidate = evaluate(item, row);
        if (candidate === null) sawNull = true;
        else if (compareValues(value, candidate) === 0) return !expr.negated;
      }
      return sawNull ? null : expr.negated;
    }
    case 'isNull': {
      const isNull = evaluate(expr.arg, row) === null;
      return expr.negated ? !isNull : isNull;
    }
    case 'like': {
      const value = evaluate(expr.arg, row);
      const pattern = evaluate(expr.pattern, row);
      if (value === null || pattern === null) return null;
      // ILIKE folds ASCII letters only, as Postgres does in the "C" collation the SQL asks for:
      // the same answer whatever the database's locale.
      const found = expr.caseInsensitive
        ? likeRegExp(asciiLower(pattern as string)).test(asciiLower(value as string))
        : likeRegExp(pattern as string).test(value as string);
      return expr.negated ? !found : found;
    }
    case 'arithmetic': {
      const left = evaluate(expr.left, row) as Decimal | null;
      const right = evaluate(expr.right, row) as Decimal | null;
      if (left === null || right === null) return null;
      switch (expr.op) {
        case '+':
          return addDecimal(left, right);
        case '-':
          return subtractDecimal(left, right);
        case '*':
          return multiplyDecimal(left, right);
        default:
          // Division by zero is an error in Postgres; a row it would fail on matches nothing.
          return divideIntegers(left, right, expr.op);
      }
    }
    case 'negate': {
      const value = evaluate(expr.arg, row) as Decimal | null;
      return value === null ? null : negateDecimal(value);
    }
  }
}

const likeCache = new Map<string, RegExp>();
const LIKE_CACHE_LIMIT = 1_000;

/** Postgres LIKE: `%` any run, `_` one character, `\` escapes the next; the whole text matches. */
export function likeRegExp(pattern: string): RegExp {
  let regExp = likeCache.get(pattern);
  if (regExp !== undefined) return regExp;
  let source = '';
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === '\\' && i + 1 < chars.length) source += escapeRegExp(chars[++i]!);
    else if (char === '%') source += '.*';
    else if (char === '_') source += '.';
    else source += escapeRegExp(char);
  }
  regExp = new RegExp(`^${source}$`, 'su');
  if (likeCache.size >= LIKE_CACHE_LIMIT) likeCache.clear();
  likeCache.set(pattern, regExp);
  return regExp;
}

function asciiLower(text: string): string {
  return /[A-Z]/.test(text) ? text.replace(/[A-Z]+/g, (run) => run.toLowerCase()) : text;
}

function escapeRegExp(char: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(char) ? `\\${char}` : char;
}
