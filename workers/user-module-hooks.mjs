// Module loader hooks for worker threads: a project's own TypeScript modules (schema, handlers and
// whatever they import by relative path) are transpiled with oxc-transform, in process, before
// Node evaluates them. Strata's own sources and node_modules are left to the next loader (tsx).
// The Module cache issue replaces this with the cached transpile service; the hook stays the seam.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'oxc-transform';

let strataSources = '';

export function initialize(data) {
  strataSources = data.strataSources;
}

const TYPESCRIPT = /\.(c|m)?tsx?$/;

export async function load(url, context, nextLoad) {
  if (
    !url.startsWith('file:') ||
    !TYPESCRIPT.test(url) ||
    url.startsWith(strataSources) ||
    url.includes('/node_modules/')
  ) {
    return nextLoad(url, context);
  }
  const file = fileURLToPath(url);
  const source = await readFile(file, 'utf8');
  const result = transformSync(file, source, { sourcemap: true, lang: file.endsWith('x') ? 'tsx' : 'ts' });
  if (result.errors.length > 0) {
    // oxc's codeframe names the file, line and column and shows the offending source.
    const frames = result.errors.map((error) => error.codeframe ?? error.message).join('\n');
    throw new SyntaxError(`cannot transpile ${file}:\n${frames}`);
  }
  const map = Buffer.from(JSON.stringify(result.map)).toString('base64');
  return {
    format: 'module',
    source: `${result.code}\n//# sourceMappingURL=data:application/json;base64,${map}\n`,
    shortCircuit: true,
  };
}
