// A shape's `where` clause after compilation: typed against the entity's schema, parameters bound,
// casts resolved, BETWEEN spelled out. Both the in-memory evaluator (routing changes) and the SQL
// renderer (snapshots) work on this tree only, never on the user's text.

import type { Value, ValueType } from './where-values.ts';

export type CompareOp = '=' | '<>' | '<' | '<=' | '>' | '>=';
export type ArithmeticOp = '+' | '-' | '*' | '/' | '%';

export type WhereExpr =
  | { kind: 'column'; name: string; type: ValueType }
  /** A literal or a bound `$n` parameter, converted to the type its context gives it. */
  | { kind: 'constant'; value: Value; type: ValueType }
  | { kind: 'not'; arg: WhereExpr }
  | { kind: 'and' | 'or'; args: WhereExpr[] }
  | { kind: 'compare'; op: CompareOp; left: WhereExpr; right: WhereExpr }
  | { kind: 'in'; arg: WhereExpr; list: WhereExpr[]; negated: boolean }
  | { kind: 'isNull'; arg: WhereExpr; negated: boolean }
  | { kind: 'like'; arg: WhereExpr; pattern: WhereExpr; caseInsensitive: boolean; negated: boolean }
  | { kind: 'arithmetic'; op: ArithmeticOp; left: WhereExpr; right: WhereExpr; type: ValueType }
  | { kind: 'negate'; arg: WhereExpr; type: ValueType };

/** The type an expression evaluates to. */
export function typeOf(expr: WhereExpr): ValueType {
  switch (expr.kind) {
    case 'column':
    case 'constant':
    case 'arithmetic':
    case 'negate':
      return expr.type;
    default:
      return 'boolean';
  }
}
