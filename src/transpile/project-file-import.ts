// The project's own modules, imported from their sources: strata.config.ts, read before the
// daemon's module cache exists, and a pipeline's schema and handlers for `strata verify` (the
// daemon's actors get the module cache's builds instead, src/transpile/pipeline-builds.ts). From
// the sources (vitest, tsx) a TypeScript loader is registered and a file is imported as it is.
// Compiled (bin/strata.mjs), no thread has a loader: the files and what they import by relative
// path are built like handlers (module-build.ts), transpiled here in the thread by the transpile
// pool's own function, into Strata's cache folder, and the build is imported. Its `strata`
// import is the running copy's.

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

/**
 * Paths Node can import for the project's `files` (absolute): the files themselves from the
 * sources, one build of them all when compiled (so a schema they share is one module).
 */
export async function importablePaths(files: readonly string[]): Promise<string[]> {
  if (!RUNNING_COMPILED || files.length === 0) return [...files];
  const build = await buildModules(
    new InThreadModules(path.parse(files[0]!).root),
    files,
    BUILD_ROOT,
    KEEP_BUILDS,
  );
  return files.map((file) => build.builtPath(file));
}

export async function importProjectFile(file: string): Promise<{ default?: unknown }> {
  const [importable] = await importablePaths([file]);
  return (await import(pathToFileURL(importable!).href)) as { default?: unknown };
}

type TranspileOutcome =
  | { ok: true; code: string; map: string }
  | { ok: false; diagnostic: TranspileDiagnostic };

/** Modules under `root`, transpiled in this thread (a config, or one pipeline's modules). */
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
