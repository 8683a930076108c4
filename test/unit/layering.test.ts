// The layers of src/, checked on the import graph (TypeScript's own pre-processor reads each file's
// imports, type-only ones included):
//  - the two actors never import each other: what both need (wire codec, reorg errors, the
//    pipeline fingerprint, failures) lives in src/pipeline/, which imports neither;
//  - nothing below the daemon imports it, the CLI or the HTTP layer (the status model sits beside
//    config and errors, not in http/);
//  - no import cycle anywhere.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

/** File (relative to src/) → the src files it imports. */
const graph = new Map<string, string[]>(
  sourceFiles(SRC).map((file) => {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const imports = importedFiles
      .map((imported) => imported.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => path.relative(SRC, path.resolve(path.dirname(file), name)));
    return [path.relative(SRC, file), imports];
  }),
);

/** The top folder (or file) of a path relative to src/: `processing`, `daemon`, `main.ts`, … */
const room = (file: string) => file.split('/')[0]!;

function violations(rule: (from: string, to: string) => boolean): string[] {
  return [...graph].flatMap(([from, imports]) =>
    imports.filter((to) => rule(from, to)).map((to) => `${from} → ${to}`),
  );
}

describe('layering of src/', () => {
  it('the processing actor and the writer never import each other', () => {
    expect(
      violations(
        (from, to) =>
          (room(from) === 'processing' && room(to) === 'persistence') ||
          (room(from) === 'persistence' && room(to) === 'processing'),
      ),
    ).toEqual([]);
  });

  it('src/pipeline depends on neither actor, the supervisor, HTTP nor the daemon', () => {
    const above = new Set(['processing', 'persistence', 'supervisor', 'http', 'daemon', 'main.ts', 'cli.ts']);
    expect(violations((from, to) => room(from) === 'pipeline' && above.has(room(to)))).toEqual([]);
  });

  it('nothing below the daemon imports it, the CLI or the HTTP layer', () => {
    const top = new Set(['daemon', 'main.ts', 'cli.ts', 'http']);
    expect(violations((from, to) => !top.has(room(from)) && top.has(room(to)))).toEqual([]);
  });

  it('has no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      stack.push(file);
      for (const next of graph.get(file) ?? []) {
        if (!graph.has(next)) continue;
        if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' → '));
        else if (!state.has(next)) visit(next);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });

  it('reads the graph (a rule over an empty graph would pass for nothing)', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get('daemon/http.ts')).toContain('http/app.ts');
  });
});
