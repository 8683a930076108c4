// Brings a snapshot read in pages to one point in time. On embedded PGlite (one backend) a
// snapshot is read a page at a time, each page its own short transaction, so the writer commits
// between them; each page then shows the table at its own transaction, the last page the latest.
// Replaying, in order, the shape's own log messages after the earliest page's transaction up to
// the last page's onto the rows read gives exactly the shape at the last page's transaction:
//  - an insert sets the whole row, a delete removes it, an update sets the columns it names
//    (the key and every changed column; with replica=full, all of them);
//  - a page already reflecting a message gets the same values again: for each column, the last
//    message touching it in the window sets its final value, and the last message per id decides
//    whether the row is in the shape;
//  - an update never lands on a row missing at the end: a row in the shape at the last
//    transaction was either in its page (read at or after its last move into the shape) or moved
//    in within the window, as an insert carrying the whole row.
// So no client ever sees an insert for a key it has or an update for one it lacks.

import type { ShapeMessage } from './shape-messages.ts';

/** A snapshot row: column texts in the shape's column order, the id first. */
export type SnapshotRow = Array<string | null>;

/**
 * Applies `messages` (the shape's log, in order) to `rows` (by id) in place. `columns` are the
 * shape's columns, the key column `id` first.
 */
export function foldMessages(
  rows: Map<string, SnapshotRow>,
  columns: readonly string[],
  messages: Iterable<ShapeMessage>,
): void {
  for (const message of messages) {
    const id = message.value.id;
    if (typeof id !== 'string') throw new Error(`a shape message without its id: ${message.key}`);
    const operation = message.headers.operation;
    if (operation === 'delete') {
      rows.delete(id);
      continue;
    }
    let row = operation === 'insert' ? undefined : rows.get(id);
    if (row === undefined) {
      row = columns.map(() => null);
      rows.set(id, row);
    }
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i]!;
      if (column in message.value) row[i] = message.value[column] ?? null;
    }
  }
}
