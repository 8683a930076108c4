// Named queries: `:name` placeholders become `$n` without touching quoted text, comments, dollar
// quotes or `::` casts; declarations are checked when the project loads; parameters are bound
// from query strings with every problem reported by name.
import { describe, expect, it } from 'vitest';
import { bindParams, namedQuerySchema } from '../../src/queries/named-query.ts';
import { compileNamedSql } from '../../src/queries/named-query-sql.ts';

describe('named query SQL', () => {
  it('binds each name once and leaves quotes, comments, dollar quotes and casts alone', () => {
    const compiled = compileNamedSql(
      `SELECT ':not', ":also", $$ :inside $$, $tag$ :x $tag$, :a::text, :b -- :comment
       /* :block */ FROM t WHERE a = :a;`,
    );
    expect(compiled.names).toEqual(['a', 'b']);
    expect(compiled.text).toBe(
      `SELECT ':not', ":also", $$ :inside $$, $tag$ :x $tag$, $1::text, $2 -- :comment
       /* :block */ FROM t WHERE a = $1`,
    );
  });

  it('refuses positional parameters and unterminated quotes', () => {
    expect(() => compileNamedSql('SELECT $1')).toThrow(/positional/);
    expect(() => compileNamedSql("SELECT 'open")).toThrow(/unterminated/);
  });

  it('checks a declaration: every placeholder declared, every parameter used, defaults valid', () => {
    const result = namedQuerySchema.safeParse({
      params: { a: { type: 'integer', default: 'x' }, unused: { type: 'text' } },
      sql: 'SELECT :a, :b',
    });
    expect(result.success).toBe(false);
    const messages = result.error!.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        'sql: :b is not a declared parameter',
        'params.unused: :unused is not used by the SQL',
        'params.a.default: must be an integer',
      ]),
    );
  });
});

describe('named query parameters', () => {
  const query = namedQuerySchema.parse({
    params: {
      address: { type: 'text', maxLength: 5 },
      at: { type: 'unixSeconds', default: 'now' },
      min: { type: 'decimal', default: '0', min: 0 },
      limit: { type: 'integer', default: 10, min: 1, max: 100 },
      after: { type: 'text', optional: true },
      flag: { type: 'boolean', optional: true },
    },
    sql: 'SELECT :address, :at, :min, :limit, :after, :flag',
  });
  const now = () => 1_700_000_000_123;

  it('binds values in $n order, with defaults, now and NULL for absent optional ones', () => {
    expect(
      bindParams(query, { address: 'abc', min: '123456789012345678901234567890', flag: 'true' }, now),
    ).toEqual({
      values: ['abc', 1_700_000_000, '123456789012345678901234567890', 10, null, true],
    });
  });

  it('reports every problem by parameter', () => {
    const result = bindParams(
      query,
      {
        address: 'toolong',
        at: '-5',
        min: '-1',
        limit: '1000',
        flag: 'yes',
        colour: 'red',
        after: ['a', 'b'],
      },
      now,
    );
    expect(result).toEqual({
      problems: {
        colour: [expect.stringMatching(/^unknown parameter/)],
        address: ['longer than 5 characters'],
        at: ['must be unix seconds (≥ 0)'],
        min: ['must be at least 0'],
        limit: ['must be at most 100'],
        after: ['given more than once'],
        flag: ['must be true or false'],
      },
    });
    expect(bindParams(query, {}, now)).toEqual({ problems: { address: ['required'] } });
    expect(bindParams(query, { address: 'a', limit: '1e3' }, now)).toEqual({
      problems: { limit: ['must be an integer'] },
    });
  });
});
