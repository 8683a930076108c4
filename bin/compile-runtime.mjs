// Compiles Strata's own TypeScript (src/ and workers/, tests excluded) to JavaScript once, so the
// daemon and its worker threads run without a TypeScript loader. Through tsx, every thread
// registered its own loader, whose hooks thread resolved and loaded each of the ~400 modules a
// thread imports: ~1 s of CPU per thread, ~5 s per daemon start on 2 cores. The compiled copy
// loads natively.
//
// The copy lives in node_modules/.cache/strata/runtime/<id>/, mirroring src/ and workers/; <id>
// hashes every source file and the compiler's version, so an edited source gets a new copy on
// the next start, and processes starting together build the same folder (written under a
// temporary name, then renamed into place: the first one wins, the others' copies are equal).
// A source map beside each file points back at the TypeScript, so stack traces name src/*.ts.
import { createHash, randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const PACKAGE_ROOT = path.resolve(import.meta.dirname, '..');
const RUNTIME_FOLDERS = ['src', 'workers'];
const DEFAULT_CACHE_ROOT = path.join(PACKAGE_ROOT, 'node_modules/.cache/strata/runtime');
/** Copies kept besides the current one (other checkouts' versions, a rebuild after an edit). */
const KEEP_OTHERS = 3;
/** ~3 MB each: beyond KEEP_OTHERS, a copy goes once no start has used it for this long. */
const UNUSED_FOR_MS = 60 * 60 * 1000;
const OXC_VERSION = createRequire(import.meta.url)('oxc-transform/package.json').version;

/**
 * Returns the file URL of the compiled `src/cli.js`, compiling first when the sources changed.
 * `cacheRoot` is where copies are kept (tests pass a temporary folder).
 */
export async function compiledRuntime({ cacheRoot = DEFAULT_CACHE_ROOT } = {}) {
  const copy = await compiledCopy({ cacheRoot, folders: RUNTIME_FOLDERS });
  return pathToFileURL(path.join(copy, 'src/cli.js')).href;
}

/**
 * The folder of a compiled copy of `folders` (relative to the package), compiled first when
 * their sources changed. Benchmarks add `bench` to run their in-memory limits as the daemon does.
 */
export async function compiledCopy({ cacheRoot = DEFAULT_CACHE_ROOT, folders = RUNTIME_FOLDERS } = {}) {
  const sources = listSources(folders);
  const hash = createHash('sha256').update(`oxc-${OXC_VERSION}`);
  const contents = new Map();
  for (const relative of sources) {
    const content = readFileSync(path.join(PACKAGE_ROOT, relative), 'utf8');
    contents.set(relative, content);
    hash.update(`\0${relative}\0${content}`);
  }
  const id = hash.digest('hex').slice(0, 16);
  const dir = path.join(cacheRoot, id);
  if (existsSync(path.join(dir, 'package.json'))) {
    const now = new Date();
    utimesSync(dir, now, now); // recently used: pruning keeps it
  } else {
    const { transformSync } = await import('oxc-transform'); // loaded only to build
    build(dir, contents, transformSync);
    prune(cacheRoot, id);
  }
  return dir;
}

function listSources(folders) {
  const found = [];
  const walk = (relative) => {
    for (const entry of readdirSync(path.join(PACKAGE_ROOT, relative), { withFileTypes: true })) {
      const child = path.posix.join(relative, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (
        entry.name.endsWith('.ts') &&
        !entry.name.endsWith('.test.ts') &&
        !entry.name.endsWith('.d.ts')
      )
        found.push(child);
    }
  };
  for (const folder of folders) walk(folder);
  return found.sort();
}

function build(dir, contents, transformSync) {
  const temporary = `${dir}.tmp-${process.pid}-${randomUUID().slice(0, 8)}`;
  try {
    for (const [relative, source] of contents) {
      const original = path.join(PACKAGE_ROOT, relative);
      const result = transformSync(original, source, {
        lang: 'ts',
        sourcemap: true,
        // `./x.ts` → `./x.js`, in static and dynamic imports alike.
        typescript: { rewriteImportExtensions: 'rewrite' },
      });
      if (result.errors.length > 0) throw new Error(`${relative}: ${result.errors[0].message}`);
      const output = path.join(temporary, relative.replace(/\.ts$/, '.js'));
      mkdirSync(path.dirname(output), { recursive: true });
      const map = {
        ...result.map,
        sources: [path.relative(path.dirname(output.replace(temporary, dir)), original)],
      };
      writeFileSync(output, `${result.code}\n//# sourceMappingURL=${path.basename(output)}.map\n`);
      writeFileSync(`${output}.map`, JSON.stringify(map));
    }
    // Written last: its presence marks a complete copy. Not named `strata`, so the package root
    // is still found above it (src/package-root.ts).
    writeFileSync(path.join(temporary, 'package.json'), '{ "type": "module", "private": true }\n');
    mkdirSync(path.dirname(dir), { recursive: true });
    try {
      renameSync(temporary, dir);
    } catch (error) {
      // A process starting beside us renamed the same copy into place first: theirs is equal.
      if (!existsSync(path.join(dir, 'package.json'))) throw error;
    }
  } finally {
    rmSync(temporary, { recursive: true, force: true });
  }
}

function prune(cacheRoot, current) {
  const others = [];
  for (const name of readdirSync(cacheRoot)) {
    if (name === current) continue;
    const info = statSync(path.join(cacheRoot, name), { throwIfNoEntry: false });
    // A temporary is removed only once its builder has surely finished or died.
    if (info !== undefined && (!name.includes('.tmp-') || Date.now() - info.mtimeMs > 60_000))
      others.push({ name, mtimeMs: info.mtimeMs });
  }
  others.sort((a, b) => b.mtimeMs - a.mtimeMs);
  // A copy a daemon started from in the last hour stays: its actors load it again on a restart.
  for (const { name, mtimeMs } of others.slice(KEEP_OTHERS))
    if (Date.now() - mtimeMs > UNUSED_FOR_MS)
      rmSync(path.join(cacheRoot, name), { recursive: true, force: true });
}
