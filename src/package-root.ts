// Where Strata's own files are. Strata runs either from its TypeScript sources (vitest, tsx) or
// from the JavaScript copy `bin/strata.mjs` compiles them into (bin/compile-runtime.mjs, under
// node_modules/.cache/strata/runtime/<id>/). The copy mirrors `src/` and `workers/`, so a module
// of ours is found relative to this file in both cases; the package's other files (migrations,
// examples, package.json, the cache folder, the plain-JavaScript workers) stay in the package.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `.ts` when running from the sources, `.js` when running compiled. */
const OWN_EXTENSION = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

/** True when this process runs the compiled copy (no TypeScript loader is registered). */
export const RUNNING_COMPILED = OWN_EXTENSION === '.js';

/** The folder holding `src/` and `workers/` of the code that is running. */
const CODE_ROOT = new URL('../', import.meta.url);

/** One of Strata's own TypeScript modules, as the running code has it: `codeModule('workers/processing')`. */
export function codeModule(pathWithoutExtension: string): URL {
  return new URL(`${pathWithoutExtension}${OWN_EXTENSION}`, CODE_ROOT);
}

/** The installed package's folder (the one whose package.json is named `strata`). */
export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (
      existsSync(manifest) &&
      (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'strata'
    )
      return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json named "strata" above ${from}`);
  }
}
