import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, DEFAULT_PROJECT_DIR } from '../../src/config.ts';
import { StrataError } from '../../src/errors.ts';

const configImport = path.resolve(import.meta.dirname, '../../src/config.ts');

function projectWith(body: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-config-'));
  writeFileSync(
    path.join(dir, 'strata.config.ts'),
    `import { defineProject } from '${configImport}';\nexport default defineProject(${body});\n`,
  );
  writeFileSync(path.join(dir, 'handlers.ts'), 'export default {};\n');
  return dir;
}

describe('buildConfig', () => {
  it('defaults to embedded PGlite, in-process coordination and the demo project', async () => {
    const config = await buildConfig({ env: {}, cwd: tmpdir() });
    expect(config.database).toMatchObject({ kind: 'embedded', storage: 'disk' });
    expect(config.redis).toEqual({ kind: 'in-process' });
    expect(config.project.dir).toBe(DEFAULT_PROJECT_DIR);
    expect(config.http).toMatchObject({ host: '127.0.0.1', port: 4000 });
    expect(config.pipelines.map((p) => p.name)).toEqual(['credits']);
  });

  it('takes flags over env, and --memory selects in-memory PGlite', async () => {
    const config = await buildConfig({
      env: { STRATA_PORT: '5000' },
      flags: { port: '5001', memory: true },
      cwd: tmpdir(),
    });
    expect(config.http.port).toBe(5001);
    expect(config.database).toMatchObject({ kind: 'embedded', storage: 'memory' });
  });

  it('uses Postgres and Redis when their URLs are set', async () => {
    const config = await buildConfig({
      env: { DATABASE_URL: 'postgres://u@127.0.0.1:5432/db', REDIS_URL: 'redis://127.0.0.1:6379' },
      cwd: tmpdir(),
    });
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgres://u@127.0.0.1:5432/db' });
    expect(config.redis).toEqual({ kind: 'redis', url: 'redis://127.0.0.1:6379' });
  });

  it('is deeply frozen', async () => {
    const config = await buildConfig({ env: {}, cwd: tmpdir() });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.pipelines[0]!.source)).toBe(true);
  });

  it('reports every problem at once: env, flags and the project file', async () => {
    const dir = projectWith(
      `{ pipelines: [{ name: 'Bad-Name', source: { kind: 'generator', workload: 'credits', blocks: -1 }, handlers: './missing.ts' }] } as never`,
    );
    const error = await buildConfig({
      env: { STRATA_PORT: 'eighty', DATABASE_URL: 'mysql://x', STRATA_LOG_LEVEL: 'loud' },
      flags: { project: dir, bogus: 'x' },
      cwd: tmpdir(),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StrataError);
    const problems = (error as StrataError).details?.problems as string[];
    expect((error as StrataError).code).toBe('STRATA_ERR_CONFIG_INVALID');
    expect(problems.join('\n')).toMatch(/--bogus: unknown flag/);
    expect(problems.join('\n')).toMatch(/STRATA_PORT/);
    expect(problems.join('\n')).toMatch(/DATABASE_URL.*postgres/);
    expect(problems.join('\n')).toMatch(/STRATA_LOG_LEVEL/);
    expect(problems.join('\n')).toMatch(/pipelines\.0\.name/);
    expect(problems.join('\n')).toMatch(/pipelines\.0\.source\.blocks/);
    expect(problems.length).toBeGreaterThanOrEqual(6);
  });

  it('names a project folder without strata.config.ts', async () => {
    const error = await buildConfig({ env: { STRATA_PROJECT: tmpdir() }, cwd: tmpdir() }).catch(
      (e: unknown) => e,
    );
    expect((error as StrataError).message).toMatch(/no strata\.config\.ts/);
  });

  it('rejects duplicate pipeline names and missing handler files', async () => {
    const source = `{ kind: 'generator', workload: 'credits' }`;
    const dir = projectWith(
      `{ pipelines: [{ name: 'a', source: ${source}, schema: './schema.ts', handlers: './handlers.ts' }, { name: 'a', source: ${source}, schema: './schema.ts', handlers: './nope.ts' }] }`,
    );
    const error = (await buildConfig({ flags: { project: dir }, env: {}, cwd: tmpdir() }).catch(
      (e: unknown) => e,
    )) as StrataError;
    expect(error.message).toMatch(/unique/);
  });

  it('parses STRATA_TEST_FAULT into a typed plan and refuses an unknown one', async () => {
    const config = await buildConfig({
      env: { STRATA_TEST_FAULT: 'persistence:crash-before-commit:12' },
      cwd: tmpdir(),
    });
    expect(config.testFault).toEqual({ kind: 'persistence:crash-before-commit', transaction: 12 });
    const error = (await buildConfig({
      env: { STRATA_TEST_FAULT: 'persistence:explode' },
      cwd: tmpdir(),
    }).catch((e: unknown) => e)) as StrataError;
    expect(error.message).toContain('unknown fault "persistence:explode"');
  });
});
