// The compiled copy `bin/strata.mjs` runs (bin/compile-runtime.mjs): every source compiled, no
// TypeScript import left, one folder per set of sources however many processes build it at once,
// and a project whose config is TypeScript (importing `strata` and a module of its own) loads in
// a process that has no TypeScript loader at all.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const fixture = path.join(root, 'test/fixtures/credit-totals');
const scratch = mkdtempSync(path.join(tmpdir(), 'strata-compiled-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Builds into `cacheRoot` from a separate plain Node process (no vitest, no loader). */
async function compileIn(cacheRoot: string): Promise<string> {
  const script = `import('./bin/compile-runtime.mjs').then(async (m) => console.log(await m.compiledRuntime({ cacheRoot: ${JSON.stringify(cacheRoot)} })))`;
  const { stdout } = await run(process.execPath, ['-e', script], { cwd: root });
  return stdout.trim();
}

function listFiles(dir: string, relative = ''): string[] {
  return readdirSync(path.join(dir, relative), { withFileTypes: true }).flatMap((entry) => {
    const child = path.posix.join(relative, entry.name);
    return entry.isDirectory() ? listFiles(dir, child) : [child];
  });
}

describe('compiled runtime', () => {
  it('compiles every source once, with no TypeScript import left, whoever builds it', async () => {
    const cacheRoot = path.join(scratch, 'cache');
    // Three processes at once on an empty cache: each returns the same entry, one folder exists.
    const entries = await Promise.all([compileIn(cacheRoot), compileIn(cacheRoot), compileIn(cacheRoot)]);
    expect(new Set(entries).size).toBe(1);
    expect(readdirSync(cacheRoot)).toHaveLength(1);
    const copy = path.join(cacheRoot, readdirSync(cacheRoot)[0]!);

    const sources = ['src', 'workers'].flatMap((folder) =>
      listFiles(root, folder).filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts')),
    );
    const compiled = listFiles(copy).filter((file) => file.endsWith('.js'));
    expect(compiled.sort()).toEqual(sources.map((file) => file.replace(/\.ts$/, '.js')).sort());
    for (const file of compiled) {
      const code = readFileSync(path.join(copy, file), 'utf8');
      expect(code, file).not.toMatch(/(from|import\()\s*["'][^"']+\.ts["']/);
    }

    // Unchanged sources: the same folder, not rebuilt.
    const cli = path.join(copy, 'src/cli.js');
    const built = statSync(cli).mtimeMs;
    expect(await compileIn(cacheRoot)).toBe(entries[0]);
    expect(statSync(cli).mtimeMs).toBe(built);
  });

  it('runs a TypeScript project config that imports strata and a module of its own', async () => {
    const project = path.join(scratch, 'project');
    const write = (name: string, text: string) => {
      writeFileSync(path.join(project, name), text);
    };
    mkdirSync(project, { recursive: true });
    write(
      'pipelines.ts',
      `const source = { kind: 'generator' as const, workload: 'credits' as const, seed: 1, blocks: 1, eventsPerBlock: 1, addresses: 1 };
export const pipelines = ['alpha', 'beta'].map((name: string) => ({ name, source, schema: ${JSON.stringify(`${fixture}/schema.ts`)}, handlers: ${JSON.stringify(`${fixture}/handlers.ts`)} }));`,
    );
    write(
      'strata.config.ts',
      `import { defineProject } from 'strata';\nimport { pipelines } from './pipelines.ts';\nexport default defineProject({ pipelines });\n`,
    );
    // `strata reset` with no pipeline named loads the config, lists its pipelines, touches no database.
    const reset = await run(process.execPath, ['bin/strata.mjs', 'reset', '--project', project], {
      cwd: root,
    }).catch((error: { stderr: string; code: number }) => error);
    expect(reset.stderr).toContain("strata reset needs one of this project's pipelines: alpha, beta");

    write(
      'strata.config.ts',
      `import { defineProject } from 'strata';\nexport default defineProject({ pipelines: [ });\n`,
    );
    const broken = await run(process.execPath, ['bin/strata.mjs', 'reset', '--project', project], {
      cwd: root,
    }).catch((error: { stderr: string; code: number }) => error);
    expect(broken.stderr).toMatch(
      /STRATA_ERR_CONFIG_INVALID[\s\S]*strata\.config\.ts: cannot be loaded: .*strata\.config\.ts:2:\d+/,
    );
  });
});
