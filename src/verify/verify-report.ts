// The text `strata verify` / `strata repair` print: a line per table, then the first differing
// rows with only the fields that differ.

import type { RowDifference } from './compare-tables.ts';
import type { VerifyReport } from './verify-pipeline.ts';

const count = (n: number) => n.toLocaleString('en-US');

export function renderVerifyReport(report: VerifyReport, command: 'verify' | 'repair'): string {
  const lines: string[] = [];
  lines.push(
    report.block < 0
      ? `${command} ${report.pipeline}: nothing committed yet`
      : `${command} ${report.pipeline}: replayed ${count(report.replayedEvents)} events (${count(report.replayedBlocks)} blocks, up to block ${report.block}) in ${(report.replayMs / 1000).toFixed(1)} s`,
  );
  const width = Math.max(...report.tables.map((table) => table.entity.length));
  for (const table of report.tables) {
    const verdict =
      table.differingRows === 0
        ? 'equal'
        : `${count(table.differingRows)} row${table.differingRows === 1 ? '' : 's'} differ${table.differingRows === 1 ? 's' : ''}${report.repaired.includes(table.entity) ? ' — repaired' : ''}`;
    lines.push(
      `  ${table.entity.padEnd(width)}  ${count(table.liveRows).padStart(11)} live  ${count(table.rebuiltRows).padStart(11)} rebuilt  hash ${table.liveHash.slice(0, 8)}/${table.rebuiltHash.slice(0, 8)}  ${verdict}`,
    );
    for (const difference of table.firstDifferences) lines.push(`      ${describe(difference)}`);
    if (table.differingRows > table.firstDifferences.length)
      lines.push(`      … and ${count(table.differingRows - table.firstDifferences.length)} more`);
  }
  const drifted = report.tables.filter((table) => table.differingRows > 0);
  if (drifted.length === 0) lines.push('no drift: every table equals its replay');
  else if (report.repaired.length > 0)
    lines.push(
      `drift found in ${drifted.length} table(s); repaired: their rows are now the replay's (checkpoint kept)`,
    );
  else
    lines.push(
      `drift found in ${drifted.length} table(s); \`strata repair ${report.pipeline}\` replaces them with the replay`,
    );
  return lines.join('\n');
}

function describe({ id, live, rebuilt }: RowDifference): string {
  if (live === null) return `id ${id}: missing in the live table`;
  if (rebuilt === null) return `id ${id}: in the live table, not in the replay`;
  const fields = Object.keys(live)
    .filter((field) => live[field] !== rebuilt[field])
    .map((field) => `${field} ${show(live[field])} (replay: ${show(rebuilt[field])})`);
  return `id ${id}: ${fields.join(', ')}`;
}

const show = (value: string | null | undefined) => (value === null || value === undefined ? 'null' : value);
