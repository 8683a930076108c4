// Named read queries: a project declares them per pipeline (`queries: { balance: {…} }` in
// strata.config.ts); `GET /v1/pipelines/:name/queries/:query?…` runs one. A declaration is plain
// data (it travels with the config): parameters with a type, SQL over the pipeline's tables with
// `:name` placeholders, and whether it answers one row or a list. Parameters are validated from
// the query string before anything runs; every problem is reported at once.

import { z } from 'zod';
import { compileNamedSql } from './named-query-sql.ts';

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
export const QUERY_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;

const paramSchema = z
  .object({
    /**
     * text: a string; integer: a safe integer; decimal: an integer of any size (bound as a
     * decimal string: cast it, `:amount::numeric`); unixSeconds: a non-negative integer, whose
     * default may be 'now'; boolean: true/false.
     */
    type: z.enum(['text', 'integer', 'decimal', 'unixSeconds', 'boolean']),
    description: z.string().optional(),
    /** Absent → this value ('now' for unixSeconds: the time of the request). */
    default: z.union([z.string(), z.number(), z.boolean()]).optional(),
    /** Absent and no default → NULL (otherwise absent is a 400). */
    optional: z.boolean().default(false),
    /** Bounds for integer, decimal and unixSeconds (inclusive). */
    min: z.union([z.number(), z.string()]).optional(),
    max: z.union([z.number(), z.string()]).optional(),
    /** Longest accepted text. */
    maxLength: z.number().int().positive().max(100_000).default(1_000),
  })
  .strict();

export const namedQuerySchema = z
  .object({
    description: z.string().optional(),
    params: z
      .record(z.string().regex(PARAM_NAME, 'parameter names are identifiers'), paramSchema)
      .default({}),
    /** SQL over the pipeline's tables (its schema is the search path), `:name` for parameters. */
    sql: z.string().min(1).max(100_000),
    /** 'rows': a JSON array; 'row': the first row, or null when there is none. */
    returns: z.enum(['rows', 'row']).default('rows'),
    /** More rows than this is an error (add a limit parameter): answers stay bounded. */
    maxRows: z.number().int().positive().max(100_000).default(10_000),
    timeoutMs: z.number().int().positive().max(600_000).default(5_000),
  })
  .strict()
  .transform((query, context) => {
    let compiled: ReturnType<typeof compileNamedSql>;
    try {
      compiled = compileNamedSql(query.sql);
    } catch (error) {
      context.addIssue({ code: 'custom', path: ['sql'], message: (error as Error).message });
      return z.NEVER;
    }
    for (const name of compiled.names)
      if (!(name in query.params))
        context.addIssue({ code: 'custom', path: ['sql'], message: `:${name} is not a declared parameter` });
    for (const name of Object.keys(query.params))
      if (!compiled.names.includes(name))
        context.addIssue({
          code: 'custom',
          path: ['params', name],
          message: `:${name} is not used by the SQL`,
        });
    for (const [name, param] of Object.entries(query.params)) {
      if (param.default === undefined) continue;
      const checked = checkValue(
        param,
        param.default === 'now' && param.type === 'unixSeconds' ? '0' : String(param.default),
      );
      if (typeof checked === 'string')
        context.addIssue({ code: 'custom', path: ['params', name, 'default'], message: checked });
    }
    return { ...query, compiled };
  });

export type NamedQueryDeclaration = z.input<typeof namedQuerySchema>;
export type NamedQuery = z.output<typeof namedQuerySchema>;
type Param = z.output<typeof paramSchema>;

const INTEGER = /^-?[0-9]{1,16}$/;
const DECIMAL = /^-?[0-9]{1,1000}$/;

/** The bound value of one parameter from its query-string text, or the problem with it. */
function checkValue(param: Param, raw: string): { value: unknown } | string {
  switch (param.type) {
    case 'text':
      return raw.length <= param.maxLength ? { value: raw } : `longer than ${param.maxLength} characters`;
    case 'boolean':
      if (raw === 'true' || raw === 'false') return { value: raw === 'true' };
      return 'must be true or false';
    case 'integer':
    case 'unixSeconds': {
      const number = Number(raw);
      if (!INTEGER.test(raw) || !Number.isSafeInteger(number)) return 'must be an integer';
      if (param.type === 'unixSeconds' && number < 0) return 'must be unix seconds (≥ 0)';
      return inBounds(param, BigInt(raw)) ?? { value: number };
    }
    case 'decimal':
      if (!DECIMAL.test(raw)) return 'must be an integer (decimal digits)';
      return inBounds(param, BigInt(raw)) ?? { value: BigInt(raw).toString() };
  }
}

function inBounds(param: Param, value: bigint): string | undefined {
  if (param.min !== undefined && value < BigInt(param.min)) return `must be at least ${param.min}`;
  if (param.max !== undefined && value > BigInt(param.max)) return `must be at most ${param.max}`;
  return undefined;
}

/**
 * The query's `$n` values from a request's query string, or every problem (unknown, missing,
 * repeated or malformed parameters) by name.
 */
export function bindParams(
  query: NamedQuery,
  given: Record<string, unknown>,
  now: () => number,
): { values: unknown[] } | { problems: Record<string, string[]> } {
  const problems: Record<string, string[]> = {};
  const problem = (name: string, message: string) => {
    problems[name] = [...(problems[name] ?? []), message];
  };
  for (const name of Object.keys(given))
    if (!(name in query.params))
      problem(
        name,
        `unknown parameter (this query takes: ${Object.keys(query.params).join(', ') || 'none'})`,
      );
  const bound = new Map<string, unknown>();
  for (const [name, param] of Object.entries(query.params)) {
    const raw = given[name];
    if (Array.isArray(raw)) {
      problem(name, 'given more than once');
      continue;
    }
    if (raw === undefined || raw === '') {
      if (param.default === 'now' && param.type === 'unixSeconds') bound.set(name, Math.floor(now() / 1_000));
      else if (param.default !== undefined)
        bound.set(name, (checkValue(param, String(param.default)) as { value: unknown }).value);
      else if (param.optional) bound.set(name, null);
      else problem(name, 'required');
      continue;
    }
    const checked = checkValue(param, String(raw));
    if (typeof checked === 'string') problem(name, checked);
    else bound.set(name, checked.value);
  }
  if (Object.keys(problems).length > 0) return { problems };
  return { values: query.compiled.names.map((name) => bound.get(name)) };
}
