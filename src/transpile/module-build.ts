// Builds a set of entry modules (a pipeline's schema and handlers) and every project module they
// import by relative path into a build directory Node imports from: each module is transpiled by
// the module service (so its L1/L2 cache and the fleet's coalescing apply to handlers too) and
// written as `<canonical path>.mjs`, with its relative import specifiers rewritten to the built
// files. Bare specifiers (npm packages) are left alone: the build directory sits inside the
// project by default, so Node resolves them from the project's node_modules as before. `strata`
// itself, when Strata runs compiled (src/package-root.ts), is rewritten to the running copy's
// entry: the package's own export is TypeScript, which a thread without a loader cannot import,
// and the project then uses the very API instance the daemon runs.
//
// A build directory is named by the content of the whole module graph (paths, source hashes,
// transpiler version): Node caches modules by URL, so a changed graph must get new URLs for a
// reload to see it, and processes sharing a project folder that build the same graph write the
// same directory (written to a temporary name, then renamed into place: atomic, first one wins).
// A source map beside every file points back at the original, so stack traces name the user's
// file and line (workers enable source maps).

import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, realpath, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { init, parse } from 'es-module-lexer';
import { StrataError } from '../errors.ts';
import { codeModule, RUNNING_COMPILED } from '../package-root.ts';
import { TRANSPILER_VERSION } from './transpile-pool.ts';

export interface ModuleBuild {
  id: string;
  dir: string;
  /** Absolute (real) paths of every module in the graph: what a change must rebuild. */
  sources: ReadonlySet<string>;
  /** The built file of an entry (an absolute path given to `buildModules`). */
  builtPath(entry: string): string;
}

const SCRIPT = /\.(ts|tsx|mts|js|mjs|jsx)$/;
/** Builds kept per build root by default; older ones are removed after a build. */
const KEEP_BUILDS = 5;
/** What a bare `strata` import becomes (null: left to Node, which needs a TypeScript loader). */
const SELF_IMPORT = RUNNING_COMPILED ? codeModule('src/index').href : null;

/** Where a build's modules come from: the module service, or a plain in-thread transpile. */
export interface ModuleSource {
  /** The folder modules are read from (canonical paths are relative to its real path). */
  readonly root: string;
  resolve(requestPath: string): Promise<string>;
  /** Transpiled code, its source map (JSON), and a fingerprint of the source. */
  get(canonicalPath: string): Promise<{ code: string; map: string; etag: string }>;
}

interface BuiltFile {
  canonical: string;
  /** Relative to the build directory. */
  output: string;
  content: string | Buffer;
  map: string | null;
  fingerprint: string;
}

/**
 * Builds `entries` (absolute paths inside `modules.root`) and their relative imports. A relative
 * import that leaves `modules.root` is a project error (STRATA_ERR_CONFIG_INVALID).
 */
export async function buildModules(
  modules: ModuleSource,
  entries: readonly string[],
  buildRoot: string,
  keepBuilds = KEEP_BUILDS,
): Promise<ModuleBuild> {
  await init;
  const root = await realpath(modules.root);
  const entryCanonical = new Map<string, string>();
  for (const entry of entries) {
    entryCanonical.set(entry, await modules.resolve(path.relative(modules.root, entry)));
  }
  const files = new Map<string, BuiltFile>();
  const queue = [...new Set(entryCanonical.values())];
  while (queue.length > 0) {
    const canonical = queue.pop()!;
    if (files.has(canonical)) continue;
    const file = await buildOne(modules, canonical, root, buildRoot, queue);
    files.set(canonical, file);
  }

  const hash = createHash('sha256').update(`${TRANSPILER_VERSION}\0${SELF_IMPORT}`);
  for (const canonical of [...files.keys()].sort())
    hash.update(`\0${canonical}\0${files.get(canonical)!.fingerprint}`);
  const id = hash.digest('hex').slice(0, 16);
  const dir = path.join(buildRoot, id);
  await writeBuild(dir, files.values());
  await pruneOldBuilds(buildRoot, id, keepBuilds);
  const outputs = new Map([...files.values()].map((file) => [file.canonical, file.output]));
  return {
    id,
    dir,
    sources: new Set([...files.keys()].map((canonical) => path.join(root, canonical))),
    builtPath: (entry) => {
      const canonical = entryCanonical.get(entry);
      if (canonical === undefined) throw new Error(`${entry} is not an entry of build ${id}`);
      return path.join(dir, outputs.get(canonical)!);
    },
  };
}

/** Transpiles (or copies) one module and queues the project modules it imports. */
async function buildOne(
  modules: ModuleSource,
  canonical: string,
  root: string,
  buildRoot: string,
  queue: string[],
): Promise<BuiltFile> {
  if (!SCRIPT.test(canonical)) {
    // A relative import of a non-script file (JSON with import attributes, say): copied as is.
    const content = await readFile(path.join(root, canonical));
    const fingerprint = createHash('sha256').update(content).digest('hex');
    return { canonical, output: canonical, content, map: null, fingerprint };
  }
  const result = await modules.get(canonical);
  const output = `${canonical}.mjs`;
  const [imports] = parse(result.code, canonical);
  let code = '';
  let last = 0;
  for (const specifier of imports) {
    if (specifier.type === 'import-meta') continue;
    const name = specifier.specifier;
    const glob = specifier.type === 'dynamic' && specifier.glob;
    if (name == null || glob) continue;
    let rewritten: string;
    if (name === 'strata' && SELF_IMPORT !== null) rewritten = SELF_IMPORT;
    else if (name.startsWith('./') || name.startsWith('../')) {
      const target = path.posix.join(path.posix.dirname(canonical), name);
      let targetCanonical: string;
      try {
        targetCanonical = await modules.resolve(target);
      } catch {
        throw new StrataError(
          'STRATA_ERR_CONFIG_INVALID',
          `${canonical} imports '${name}', which is not a file inside ${root}`,
        );
      }
      queue.push(targetCanonical);
      const targetOutput = SCRIPT.test(targetCanonical) ? `${targetCanonical}.mjs` : targetCanonical;
      rewritten = path.posix.relative(path.posix.dirname(output), targetOutput);
      if (!rewritten.startsWith('.')) rewritten = `./${rewritten}`;
    } else continue;
    // Static imports span the bare specifier; a dynamic import() spans its quoted literal.
    const dynamic = specifier.type === 'dynamic';
    code += result.code.slice(last, specifier.start) + (dynamic ? JSON.stringify(rewritten) : rewritten);
    last = specifier.end;
  }
  code += result.code.slice(last);
  const original = path.join(root, canonical);
  const map = JSON.parse(result.map) as { sources?: string[]; file?: string };
  // Relative to where the built file will live (<buildRoot>/<id>/<output>), so stack traces and
  // debuggers open the user's file.
  const builtDir = path.dirname(path.join(buildRoot, 'id', output));
  map.sources = [path.relative(builtDir, original).split(path.sep).join('/')];
  map.file = path.posix.basename(output);
  code += `\n//# sourceMappingURL=${path.posix.basename(output)}.map\n`;
  return { canonical, output, content: code, map: JSON.stringify(map), fingerprint: result.etag };
}

async function writeBuild(dir: string, files: Iterable<BuiltFile>): Promise<void> {
  if (await exists(dir)) {
    // The same graph, already built (by us or a peer): mark it recent so pruning keeps it.
    const now = new Date();
    await utimes(dir, now, now).catch(() => undefined);
    return;
  }
  const temporary = `${dir}.tmp-${process.pid}-${randomUUID().slice(0, 8)}`;
  for (const file of files) {
    const target = path.join(temporary, file.output);
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, file.content);
    if (file.map !== null) await writeFile(`${target}.map`, file.map);
  }
  try {
    await rename(temporary, dir);
  } catch (error) {
    // A concurrent builder renamed the same graph into place first: theirs is identical.
    await rm(temporary, { recursive: true, force: true });
    if (!(await exists(dir))) throw error;
  }
}

async function pruneOldBuilds(buildRoot: string, current: string, keepBuilds: number): Promise<void> {
  const entries = await readdir(buildRoot).catch(() => [] as string[]);
  const builds: Array<{ name: string; mtimeMs: number }> = [];
  for (const name of entries) {
    if (name === current) continue;
    const info = await stat(path.join(buildRoot, name)).catch(() => null);
    // Stale temporaries of a builder that died (older than a minute) go too.
    if (info !== null && (!name.includes('.tmp-') || Date.now() - info.mtimeMs > 60_000))
      builds.push({ name, mtimeMs: info.mtimeMs });
  }
  builds.sort((a, b) => b.mtimeMs - a.mtimeMs);
  for (const { name } of builds.slice(keepBuilds - 1)) {
    await rm(path.join(buildRoot, name), { recursive: true, force: true }).catch(() => undefined);
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}
