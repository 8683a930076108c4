// Compiles a shape's `where` text into a WhereExpr: parsed by the real Postgres grammar
// (libpg-query, Postgres's own parser compiled to WebAssembly — the parser Electric uses too),
// then checked against the entity's schema and converted into our own small tree. What the tree
// cannot express is refused with a message naming it: functions, subqueries, qualified or unknown
// columns, more than one statement, nesting deeper than MAX_DEPTH, text over MAX_WHERE_BYTES.

import { StrataError } from '../errors.ts';
import type { EntityDescription } from '../schema/define-schema.ts';
import { decimalFromInteger, parseDecimal } from './decimal.ts';
import type { ArithmeticOp, CompareOp, WhereExpr } from './where-ast.ts';
import { typeOf } from './where-ast.ts';
import {
  castTargetType,
  fieldValueType,
  NUMERIC_TYPES,
  parseValue,
  type ValueType,
  valueToText,
} from './where-values.ts';

export const MAX_WHERE_BYTES = 16 * 1024;
export const MAX_DEPTH = 64;

/** A refused `where` clause (HTTP 400 with Electric's `{message, errors: {where: […]}}` body). */
export function whereError(message: string): StrataError {
  return new StrataError('STRATA_ERR_SHAPE_WHERE_INVALID', `invalid where clause: ${message}`, {
    details: { where: [message] },
  });
}

/**
 * `params` are the request's `params[n]` values (1-based, Postgres text). Throws
 * STRATA_ERR_SHAPE_WHERE_INVALID.
 */
export async function compileWhere(
  where: string,
  entity: EntityDescription,
  params: ReadonlyMap<number, string> = new Map(),
): Promise<WhereExpr> {
  if (Buffer.byteLength(where) > MAX_WHERE_BYTES) throw whereError(`longer than ${MAX_WHERE_BYTES} bytes`);
  // Nesting is bounded before Postgres's parser sees it (its own stack limit is far deeper).
  if (maxParenthesisDepth(where) > MAX_DEPTH) throw whereError(`nested deeper than ${MAX_DEPTH}`);
  let tree: { stmts?: Array<{ stmt?: Node }> };
  try {
    const { parse } = await postgresParser();
    tree = (await parse(`SELECT 1 WHERE ${where}`)) as typeof tree;
  } catch (error) {
    throw whereError((error as Error).message);
  }
  const select = onlySelect(tree);
  const whereClause = select.whereClause as Node | undefined;
  if (whereClause === undefined) throw whereError('empty');
  const compiler = new Compiler(entity, params);
  const expr = compiler.typed(compiler.compile(whereClause, 0));
  if (typeOf(expr) !== 'boolean') throw whereError(`must be a boolean expression, not ${typeOf(expr)}`);
  return expr;
}

type Node = Record<string, unknown>;

let parser: Promise<typeof import('libpg-query')> | null = null;

/**
 * Postgres's parser, loaded on the first `where` (its WebAssembly is megabytes: a materializer, or
 * a daemon with no shapes, starts without it).
 */
function postgresParser(): Promise<typeof import('libpg-query')> {
  parser ??= import('libpg-query');
  return parser;
}

/** The parse must be exactly `SELECT 1 WHERE …`: one statement, nothing after the clause. */
function onlySelect(tree: { stmts?: Array<{ stmt?: Node }> }): Node {
  const statements = tree.stmts ?? [];
  if (statements.length !== 1) throw whereError('must be one expression, not several statements');
  const select = statements[0]!.stmt?.SelectStmt as Node | undefined;
  const extra = [
    'fromClause',
    'groupClause',
    'havingClause',
    'sortClause',
    'limitCount',
    'limitOffset',
    'larg',
    'windowClause',
    'lockingClause',
    'withClause',
    'valuesLists',
    'distinctClause',
  ];
  if (
    select === undefined ||
    extra.some((key) => select[key] !== undefined) ||
    (select.op !== undefined && select.op !== 'SETOP_NONE')
  )
    throw whereError('must be one expression');
  return select;
}

function maxParenthesisDepth(text: string): number {
  let depth = 0;
  let max = 0;
  for (const char of text) {
    if (char === '(') max = Math.max(max, ++depth);
    else if (char === ')') depth -= 1;
  }
  return max;
}

/** A literal string, a `$n` or NULL before its context gives it a type (Postgres's `unknown`). */
interface Untyped {
  kind: 'untyped';
  text: string | null;
  what: string;
}

type Compiled = WhereExpr | Untyped;

const COMPARE_OPS = new Set<string>(['=', '<>', '<', '<=', '>', '>=']);
const ARITHMETIC_OPS = new Set<string>(['+', '-', '*', '/', '%']);

class Compiler {
  constructor(
    private readonly entity: EntityDescription,
    private readonly params: ReadonlyMap<number, string>,
  ) {}

  compile(node: Node, depth: number): Compiled {
    if (depth > MAX_DEPTH) throw whereError(`nested deeper than ${MAX_DEPTH}`);
    const [kind, body] = Object.entries(node)[0] as [string, Node];
    const next = depth + 1;
    switch (kind) {
      case 'BoolExpr':
        return this.boolExpr(body, next);
      case 'A_Expr':
        return this.aExpr(body, next);
      case 'NullTest': {
        const arg = this.typed(this.compile(body.arg as Node, next));
        return { kind: 'isNull', arg, negated: body.nulltesttype === 'IS_NOT_NULL' };
      }
      case 'ColumnRef':
        return this.column(body);
      case 'A_Const':
        return constant(body);
      case 'ParamRef':
        return this.param(body);
      case 'TypeCast':
        return this.cast(body, next);
      case 'FuncCall':
        throw whereError(`functions are not supported (${functionName(body)})`);
      case 'SubLink':
        throw whereError('subqueries are not supported');
      default:
        throw whereError(`${describeNode(kind)} is not supported`);
    }
  }

  /** `compiled` with a type: an untyped literal on its own is text, as in Postgres. */
  typed(compiled: Compiled, as: ValueType = 'text'): WhereExpr {
    if (compiled.kind !== 'untyped') return compiled;
    if (compiled.text === null) return { kind: 'constant', value: null, type: as };
    const value = parseValue(as, compiled.text);
    if (value === undefined)
      throw whereError(`${compiled.what} is not a valid ${as}: ${JSON.stringify(compiled.text)}`);
    return { kind: 'constant', value, type: as };
  }

  private boolean(node: Node, depth: number): WhereExpr {
    const expr = this.typed(this.compile(node, depth), 'boolean');
    if (typeOf(expr) !== 'boolean') throw whereError(`expected a boolean expression, got ${typeOf(expr)}`);
    return expr;
  }

  private boolExpr(body: Node, depth: number): WhereExpr {
    const args = (body.args as Node[]).map((arg) => this.boolean(arg, depth));
    if (body.boolop === 'NOT_EXPR') return { kind: 'not', arg: args[0]! };
    return { kind: body.boolop === 'OR_EXPR' ? 'or' : 'and', args };
  }

  /** Two operands given one type: an untyped side takes the other's. */
  private pair(left: Compiled, right: Compiled, operator: string): [WhereExpr, WhereExpr] {
    const leftType = left.kind === 'untyped' ? null : typeOf(left);
    const rightType = right.kind === 'untyped' ? null : typeOf(right);
    const a = this.typed(left, leftType ?? rightType ?? 'text');
    const b = this.typed(right, rightType ?? typeOf(a));
    const [ta, tb] = [typeOf(a), typeOf(b)];
    if (ta !== tb && !(NUMERIC_TYPES.has(ta) && NUMERIC_TYPES.has(tb)))
      throw whereError(`operator ${operator} cannot compare ${ta} with ${tb}`);
    return [a, b];
  }

  private aExpr(body: Node, depth: number): WhereExpr {
    const kind = (body.kind as string | undefined) ?? 'AEXPR_OP';
    const name = operatorName(body);
    const lexpr = body.lexpr as Node | undefined;
    const rexpr = body.rexpr as Node | undefined;
    switch (kind) {
      case 'AEXPR_OP': {
        if (lexpr === undefined) return this.unary(name, rexpr!, depth);
        const left = this.compile(lexpr, depth);
        const right = this.compile(rexpr!, depth);
        if (COMPARE_OPS.has(name)) {
          const [a, b] = this.pair(left, right, name);
          return { kind: 'compare', op: name as CompareOp, left: a, right: b };
        }
        if (ARITHMETIC_OPS.has(name)) return this.arithmetic(name as ArithmeticOp, left, right);
        throw whereError(`operator ${name} is not supported`);
      }
      case 'AEXPR_IN': {
        const arg = this.compile(lexpr!, depth);
        const items = ((rexpr as Node).List as Node | undefined)?.items as Node[] | undefined;
        if (items === undefined) throw whereError('IN needs a list of values');
        const compiled = items.map((item) => this.compile(item, depth));
        const argType =
          arg.kind === 'untyped'
            ? (compiled.find((c) => c.kind !== 'untyped') as WhereExpr | undefined)
            : arg;
        const typedArg = this.typed(arg, argType === undefined ? 'text' : typeOf(argType));
        const list = compiled.map((item) => this.pair(typedArg, item, 'IN')[1]);
        return { kind: 'in', arg: typedArg, list, negated: name === '<>' };
      }
      case 'AEXPR_LIKE':
      case 'AEXPR_ILIKE': {
        const [arg, pattern] = this.pair(this.compile(lexpr!, depth), this.compile(rexpr!, depth), 'LIKE');
        if (typeOf(arg) !== 'text') throw whereError(`LIKE needs text, got ${typeOf(arg)}`);
        return {
          kind: 'like',
          arg,
          pattern,
          caseInsensitive: kind === 'AEXPR_ILIKE',
          negated: name.startsWith('!'),
        };
      }
      case 'AEXPR_BETWEEN':
      case 'AEXPR_NOT_BETWEEN':
      case 'AEXPR_BETWEEN_SYM':
      case 'AEXPR_NOT_BETWEEN_SYM': {
        const bounds = ((rexpr as Node).List as Node).items as Node[];
        const value = this.compile(lexpr!, depth);
        const [arg, low] = this.pair(value, this.compile(bounds[0]!, depth), 'BETWEEN');
        const [, high] = this.pair(arg, this.compile(bounds[1]!, depth), 'BETWEEN');
        const within = (from: WhereExpr, to: WhereExpr): WhereExpr => ({
          kind: 'and',
          args: [
            { kind: 'compare', op: '>=', left: arg, right: from },
            { kind: 'compare', op: '<=', left: arg, right: to },
          ],
        });
        const between = kind.endsWith('_SYM')
          ? ({ kind: 'or', args: [within(low, high), within(high, low)] } as WhereExpr)
          : within(low, high);
        return kind.includes('NOT') ? { kind: 'not', arg: between } : between;
      }
      default:
        throw whereError(`${describeNode(kind)} is not supported`);
    }
  }

  private unary(name: string, operand: Node, depth: number): WhereExpr {
    const compiled = this.compile(operand, depth);
    const arg = this.typed(compiled, 'numeric');
    if (!NUMERIC_TYPES.has(typeOf(arg))) throw whereError(`unary ${name} needs a number, got ${typeOf(arg)}`);
    if (name === '+') return arg;
    if (name === '-') return { kind: 'negate', arg, type: typeOf(arg) };
    throw whereError(`operator ${name} is not supported`);
  }

  private arithmetic(op: ArithmeticOp, left: Compiled, right: Compiled): WhereExpr {
    // Two untyped operands (`$1 + $2`) are numbers here, where Postgres could not tell.
    const [a, b] =
      left.kind === 'untyped' && right.kind === 'untyped'
        ? this.pair(this.typed(left, 'numeric'), right, op)
        : this.pair(left, right, op);
    const [ta, tb] = [typeOf(a), typeOf(b)];
    if (!NUMERIC_TYPES.has(ta) || !NUMERIC_TYPES.has(tb))
      throw whereError(`operator ${op} needs numbers, got ${ta} and ${tb}`);
    // The result type as Postgres promotes it: integer < bigint < numeric.
    const rank = (type: ValueType) => ['integer', 'bigint', 'numeric'].indexOf(type);
    const type = rank(ta) >= rank(tb) ? ta : tb;
    if ((op === '/' || op === '%') && type === 'numeric')
      throw whereError(`operator ${op} on numeric values is not supported (integers only)`);
    return { kind: 'arithmetic', op, left: a, right: b, type };
  }

  private column(body: Node): WhereExpr {
    const fields = body.fields as Node[];
    if (fields.length !== 1 || (fields[0] as Node).String === undefined)
      throw whereError('columns are named alone (no table prefix, no *)');
    const name = ((fields[0] as Node).String as Node).sval as string;
    const column = this.entity.columns.find((c) => c.name === name);
    if (column === undefined) {
      const lower = this.entity.columns.find((c) => c.name.toLowerCase() === name);
      const hint =
        lower === undefined ? '' : ` (did you mean "${lower.name}"? quote names that are not lower-case)`;
      throw whereError(`unknown column ${name} in ${this.entity.name}${hint}`);
    }
    const type = fieldValueType(column.spec);
    if (type === null)
      throw whereError(
        `column ${name} (${column.spec.kind}${column.spec.array ? '[]' : ''}) cannot be used in a where clause yet`,
      );
    return { kind: 'column', name, type };
  }

  private param(body: Node): Untyped {
    const number = (body.number as number | undefined) ?? 0;
    const text = this.params.get(number);
    if (text === undefined) throw whereError(`$${number} has no value (send params[${number}])`);
    return { kind: 'untyped', text, what: `$${number}` };
  }

  private cast(body: Node, depth: number): WhereExpr {
    const typeName = body.typeName as Node;
    if (typeName.arrayBounds !== undefined) throw whereError('casts to arrays are not supported');
    const names = (typeName.names as Node[]).map((n) => (n.String as Node).sval as string);
    const target = castTargetType(names[names.length - 1]!);
    if (target === null || (names.length === 2 && names[0] !== 'pg_catalog'))
      throw whereError(`cast to ${names.join('.')} is not supported`);
    const arg = this.compile(body.arg as Node, depth);
    if (arg.kind === 'untyped') return this.typed(arg, target);
    if (arg.kind === 'constant')
      return this.typed(
        { kind: 'untyped', text: valueToText(arg.type, arg.value), what: 'the value' },
        target,
      );
    const type = typeOf(arg);
    if (type === target || (NUMERIC_TYPES.has(type) && NUMERIC_TYPES.has(target) && target !== 'integer'))
      return arg;
    throw whereError(`cast of ${type} to ${target} is not supported (casts give a value its column's type)`);
  }
}

/** A_Const, whose zero-valued fields libpg-query's JSON leaves out (`ival: {}` is 0). */
function constant(body: Node): Compiled {
  if (body.isnull === true) return { kind: 'untyped', text: null, what: 'NULL' };
  if (body.ival !== undefined) {
    return {
      kind: 'constant',
      value: decimalFromInteger(((body.ival as Node).ival as number | undefined) ?? 0),
      type: 'integer',
    };
  }
  if (body.fval !== undefined) {
    const text = (body.fval as Node).fval as string;
    const value = parseDecimal(text);
    if (value === null) throw whereError(`invalid number ${text}`);
    return { kind: 'constant', value, type: value.scale === 0 ? 'bigint' : 'numeric' };
  }
  if (body.boolval !== undefined)
    return {
      kind: 'constant',
      value: ((body.boolval as Node).boolval as boolean | undefined) ?? false,
      type: 'boolean',
    };
  if (body.sval !== undefined)
    return {
      kind: 'untyped',
      text: ((body.sval as Node).sval as string | undefined) ?? '',
      what: 'the literal',
    };
  throw whereError('this constant is not supported');
}

function operatorName(body: Node): string {
  const names = (body.name as Node[] | undefined) ?? [];
  return ((names[names.length - 1]?.String as Node | undefined)?.sval as string | undefined) ?? '?';
}

function functionName(body: Node): string {
  const names = (body.funcname as Node[] | undefined) ?? [];
  return names.map((n) => (n.String as Node | undefined)?.sval ?? '?').join('.');
}

/** A parse-tree node kind as a reader knows it. */
function describeNode(kind: string): string {
  const known: Record<string, string> = {
    CaseExpr: 'CASE',
    CoalesceExpr: 'COALESCE',
    BooleanTest: 'IS TRUE / IS FALSE',
    A_ArrayExpr: 'ARRAY[…]',
    RowExpr: 'a row constructor',
    AEXPR_OP_ANY: 'ANY(…)',
    AEXPR_OP_ALL: 'ALL(…)',
    AEXPR_SIMILAR: 'SIMILAR TO',
    AEXPR_DISTINCT: 'IS DISTINCT FROM',
    AEXPR_NOT_DISTINCT: 'IS NOT DISTINCT FROM',
    AEXPR_NULLIF: 'NULLIF',
    CollateClause: 'COLLATE',
    A_Indirection: 'subscripts',
  };
  return known[kind] ?? kind;
}
