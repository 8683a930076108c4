// A named query's SQL uses `:name` placeholders for its parameters. They become `$1…$n` here, once,
// when the project is loaded — the values are always bound, never spliced into the text. The scan
// knows SQL's quoting (strings, quoted identifiers, dollar quotes, comments) and `::` casts, so a
// colon inside any of them is left alone.

export interface CompiledSql {
  /** The text with `$n` placeholders. */
  text: string;
  /** Parameter names in `$n` order (a name used twice binds one `$n`). */
  names: string[];
}

const NAME_START = /[A-Za-z_]/;
const NAME_PART = /[A-Za-z0-9_]/;

export function compileNamedSql(sql: string): CompiledSql {
  const names: string[] = [];
  let text = '';
  let i = 0;
  const copyUntil = (end: string, from: number): number => {
    const at = sql.indexOf(end, from);
    if (at < 0) throw new Error(`unterminated ${end === '\n' ? 'comment' : `quote (${end})`}`);
    text += sql.slice(i, at + end.length);
    return at + end.length;
  };
  while (i < sql.length) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === "'" || c === '"') {
      // '' and "" escape themselves: the scan simply re-enters the quote.
      i = copyUntil(c, i + 1);
    } else if (c === '-' && next === '-') {
      if (sql.indexOf('\n', i) >= 0) i = copyUntil('\n', i);
      else {
        text += sql.slice(i);
        i = sql.length;
      }
    } else if (c === '/' && next === '*') {
      i = copyUntil('*/', i + 2);
    } else if (c === '$' && next !== undefined && /[0-9]/.test(next)) {
      throw new Error('positional parameters ($1) are not allowed: name them (:name)');
    } else if (c === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i));
      if (tag === null) {
        text += c;
        i += 1;
      } else i = copyUntil(tag[0], i + tag[0].length);
    } else if (c === ':' && next === ':') {
      text += '::';
      i += 2;
    } else if (c === ':' && next !== undefined && NAME_START.test(next)) {
      let end = i + 1;
      while (end < sql.length && NAME_PART.test(sql[end]!)) end += 1;
      const name = sql.slice(i + 1, end);
      let position = names.indexOf(name);
      if (position < 0) position = names.push(name) - 1;
      text += `$${position + 1}`;
      i = end;
    } else {
      text += c;
      i += 1;
    }
  }
  return { text: text.trim().replace(/;\s*$/, ''), names };
}
