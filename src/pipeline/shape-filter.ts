// Which changes of a captured table some live shape can show: a change matters when its old or
// its new row matches at least one shape's `where`. The writer appends only those to the durable
// shape log (and sends only those to the materializer), instead of every changed row of the table.
// Over-capturing is always safe, under-capturing never is: until the table's clauses are known
// (a restarted writer, before the materializer tells it) every change matters, a shape's clause
// is added before its log starts, and clauses are never removed while the writer runs.

import { RoutingIndex } from '../materializer/routing-index.ts';
import type { WhereExpr } from '../materializer/where-ast.ts';
import { matches, type TextRow } from '../materializer/where-eval.ts';

export class TableFilter {
  private readonly index = new RoutingIndex();
  private readonly clauses = new Map<number, WhereExpr>();
  /** Clauses added so far, as JSON (a clause shared by many shapes is filed once). */
  private readonly added = new Set<string>();
  /** A shape without `where`: every change matters. */
  private everything = false;

  /** `known`: false while the table's shapes' clauses are not known yet (every change matters). */
  constructor(private known: boolean) {}

  /** A shape's clause (null: the whole table). */
  add(where: WhereExpr | null): void {
    const key = JSON.stringify(where, (_key, value) => (typeof value === 'bigint' ? `${value}n` : value));
    if (this.added.has(key)) return;
    this.added.add(key);
    if (where === null) {
      this.everything = true;
      return;
    }
    const id = this.clauses.size;
    this.clauses.set(id, where);
    this.index.add(id, where);
  }

  /** The table's shapes' clauses, now known (added to any added before). */
  install(clauses: ReadonlyArray<WhereExpr | null>): void {
    for (const where of clauses) this.add(where);
    this.known = true;
  }

  /**
   * The ids among `ids` whose changes some shape may show, before their rows are read. When every
   * shape's clause pins the id (`id = …` or `id IN (…)`, alone or ANDed — an entity's id never
   * changes, so its old and new rows share it), only the ids some clause names; otherwise every
   * one (a clause on other columns needs the rows to tell).
   */
  idsThatMayMatter(ids: string[]): string[] {
    if (!this.known || this.everything || !this.index.allIndexedBy('id')) return ids;
    return ids.filter((id) => this.index.hasValue('id', id));
  }

  /** Whether some shape can show the change from `before` to `after`. */
  matters(before: TextRow | null, after: TextRow | null): boolean {
    if (!this.known || this.everything) return true;
    let found = false;
    this.index.candidates(before, after, (id) => {
      if (found) return;
      const where = this.clauses.get(id)!;
      found = (before !== null && matches(where, before)) || (after !== null && matches(where, after));
    });
    return found;
  }
}
