// Renders a compiled `where` clause as parameterised SQL for snapshots. Column names come from the
// schema (quoted), operators from a fixed set, and every constant — literal or `$n` — becomes a
// bound parameter with an explicit cast: nothing of the user's text reaches the SQL. Text is
// ordered and ILIKE-folded in the "C" collation, as the in-memory evaluator does (code points,
// ASCII case folding), whatever the database's locale.

import { quoteIdent } from '../schema/ddl.ts';
import { columnType } from '../schema/fields.ts';
import type { WhereExpr } from './where-ast.ts';
import { typeOf } from './where-ast.ts';
import { type ValueType, valueToText } from './where-values.ts';

/** A constant's cast: the column type Strata stores values of `type` in (bigint: numeric(78,0)). */
const sqlType = (type: ValueType) =>
  columnType({ kind: type, array: false, nullable: false, derivedFrom: null });

/** `{ sql, values }` with parameters numbered from `firstParameter`. */
export function whereToSql(
  expr: WhereExpr,
  firstParameter = 1,
): { sql: string; values: Array<string | null> } {
  const values: Array<string | null> = [];
  const render = (node: WhereExpr): string => {
    switch (node.kind) {
      case 'column':
        return quoteIdent(node.name);
      case 'constant':
        values.push(valueToText(node.type, node.value));
        return `$${firstParameter + values.length - 1}::${sqlType(node.type)}`;
      case 'not':
        return `(NOT ${render(node.arg)})`;
      case 'and':
      case 'or':
        return `(${node.args.map(render).join(node.kind === 'and' ? ' AND ' : ' OR ')})`;
      case 'compare': {
        const collate =
          typeOf(node.left) === 'text' && node.op !== '=' && node.op !== '<>' ? ' COLLATE "C"' : '';
        return `(${render(node.left)}${collate} ${node.op} ${render(node.right)})`;
      }
      case 'in':
        return `(${render(node.arg)} ${node.negated ? 'NOT IN' : 'IN'} (${node.list.map(render).join(', ')}))`;
      case 'isNull':
        return `(${render(node.arg)} IS ${node.negated ? 'NOT NULL' : 'NULL'})`;
      case 'like':
        return `(${render(node.arg)} COLLATE "C" ${node.negated ? 'NOT ' : ''}${node.caseInsensitive ? 'ILIKE' : 'LIKE'} ${render(node.pattern)})`;
      // In numeric, so integer columns cannot overflow where the evaluator's exact decimals do not;
      // integer division truncates (div, mod), and by zero gives NULL as it does in memory.
      case 'arithmetic': {
        const [left, right] = [`${render(node.left)}::numeric`, `${render(node.right)}::numeric`];
        if (node.op === '/') return `div(${left}, NULLIF(${right}, 0))`;
        if (node.op === '%') return `mod(${left}, NULLIF(${right}, 0))`;
        return `(${left} ${node.op} ${right})`;
      }
      case 'negate':
        return `(- ${render(node.arg)}::numeric)`;
    }
  };
  return { sql: render(expr), values };
}
