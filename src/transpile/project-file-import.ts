// Imports one of the project's own modules from its source: strata.config.ts, read before the
// daemon's module cache exists, and a pipeline's schema and handlers where no build of the
// module cache is at hand (`strata verify`, an actor given source paths). From the sources
// (vitest, tsx) a TypeScript loader is registered and the file is imported as it is. Compiled
// (bin/strata.mjs), no thread has a loader: the file and what it imports by relative path are
// built like handlers (module-build.ts), transpiled here in the thread by the transpile pool's
// own function, into Strata's cache folder, and the build is imported. Its `strata` import is
// the running copy's.

import { createHash } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT, RUNNING_COMPILED } from '../package-root.ts';
import { buildModules, type ModuleSource } from './module-build.ts';
import { ModuleSyntaxError, resolveModulePath } from './module-service.ts';
import type { TranspileDiagnostic } from './transpile-pool.ts';

const BUILD_ROOT = path.join(PACKAGE_ROOT, 'node_modules/.cache/strata/project-files');
/** Every project a machine runs builds its config here: keep enough that none is pruned in use. */
const KEEP_BUILDS = 50;

export async function importProjectFile(file: string): Promise<{ default?: unknown }> {
  if (!RUNNING_COMPILED) return (await import(pathToFileURL(file).href)) as { default?: unknown };
  const build = await buildModules(
    new InThreadModules(path.parse(file).root),
    [file],
    BUILD_ROOT,
    KEEP_BUILDS,
  );
  return (await import(pathToFileURL(build.builtPath(file)).href)) as { default?: unknown };
}

type TranspileOutcome =
  | { ok: true; code: string; map: string }
  | { ok: false; diagnostic: TranspileDiagnostic };

/** Modules under `root`, transpiled in this thread (a config graph is a file or two). */
class InThreadModules implements ModuleSource {
  private rootReal: string | null = null;
  constructor(readonly root: string) {}

  async resolve(requestPath: string): Promise<string> {
    this.rootReal ??= await realpath(this.root);
    return resolveModulePath(this.rootReal, requestPath);
  }

  async get(canonicalPath: string): Promise<{ code: string; map: string; etag: string }> {
    this.rootReal ??= await realpath(this.root);
    const file = path.join(this.rootReal, canonicalPath);
    const source = await readFile(file, 'utf8');
    // The pool's worker module is plain JavaScript: the same transform, without a thread.
    const { default: transpileChunk } = (await import(
      pathToFileURL(path.join(PACKAGE_ROOT, 'workers/transpile.mjs')).href
    )) as { default: (tasks: Array<{ file: string; source: string }>) => TranspileOutcome[] };
    const [outcome] = transpileChunk([{ file: canonicalPath, source }]);
    if (!outcome!.ok) throw new ModuleSyntaxError(outcome!.diagnostic);
    return {
      code: outcome!.code,
      map: outcome!.map,
      etag: createHash('sha256').update(source).digest('hex'),
    };
  }
}
