// Cold start: from spawning `strata start` to `/readyz` answering 200, on embedded PGlite (fresh
// data dir, existing data dir, in memory) and on Postgres, in one run. Median of RUNS each. A
// fresh PGlite database starts from the kept empty one (src/db/pglite-template.ts); the first
// line deletes that copy before each of its runs, so it shows the start that runs initdb.
// On Postgres it also gives the CPU the process used until ready (all its threads) and its peak
// RSS, running Strata compiled (bin/compile-runtime.mjs, the default) and, as the reference in
// the same run, from its TypeScript sources through tsx (STRATA_FROM_SOURCE=1).
// Run: `npm run bench:cold-start` (DATABASE_URL defaults to the local Postgres).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { templatePath } from '../src/db/pglite-template.ts';
import { cpuSeconds, memoryBytes } from './proc-figures.ts';

const RUNS = Number(process.env.RUNS ?? 3);
const root = path.resolve(import.meta.dirname, '..');
const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface ReadyRun {
  ms: number;
  /** user + system CPU of every thread of the daemon until ready (Linux /proc). */
  cpuMs: number;
  peakRssMb: number;
}

async function timeToReady(env: Record<string, string>, args: string[]): Promise<number> {
  return (await runToReady(env, args)).ms;
}

async function runToReady(env: Record<string, string>, args: string[]): Promise<ReadyRun> {
  const started = performance.now();
  const child = spawn(
    process.execPath,
    ['bin/strata.mjs', 'start', '--port', '0', '--log-format', 'json', ...args],
    {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', STRATA_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const match = /"msg":"HTTP listening"/.test(buffer)
        ? /"url":"([^"]+)"/.exec(buffer.slice(buffer.indexOf('HTTP listening') - 200))
        : null;
      if (match) resolve(match[1]!);
    });
    child.on('exit', (code) => reject(new Error(`daemon exited ${code}`)));
  });
  for (;;) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const elapsed = performance.now() - started;
  const figures = {
    cpuMs: cpuSeconds(child.pid!) * 1_000,
    peakRssMb: memoryBytes(child.pid!, 'VmHWM') / 1_048_576,
  };
  child.kill('SIGTERM');
  await new Promise((resolve) => child.on('exit', resolve));
  return { ms: elapsed, ...figures };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const results: Array<[string, number[]]> = [];

const existingDir = mkdtempSync(path.join(tmpdir(), 'strata-cold-existing-'));
await timeToReady({ STRATA_DATA_DIR: existingDir }, []); // create it once
const initdb: number[] = [];
const fresh: number[] = [];
const existing: number[] = [];
const memory: number[] = [];
const postgres: ReadyRun[] = [];
const postgresFromSource: ReadyRun[] = [];
for (let run = 0; run < RUNS; run++) {
  rmSync(templatePath(), { force: true });
  const first = mkdtempSync(path.join(tmpdir(), 'strata-cold-initdb-'));
  initdb.push(await timeToReady({ STRATA_DATA_DIR: first }, []));
  rmSync(first, { recursive: true, force: true });
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-cold-fresh-'));
  fresh.push(await timeToReady({ STRATA_DATA_DIR: dir }, []));
  rmSync(dir, { recursive: true, force: true });
  existing.push(await timeToReady({ STRATA_DATA_DIR: existingDir }, []));
  memory.push(await timeToReady({}, ['--memory']));
  const name = `strata_cold_${process.pid}_${run}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.query(`CREATE DATABASE ${name}_src`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  postgres.push(await runToReady({ DATABASE_URL: url.toString() }, []));
  url.pathname = `/${name}_src`;
  postgresFromSource.push(await runToReady({ DATABASE_URL: url.toString(), STRATA_FROM_SOURCE: '1' }, []));
  await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
  await admin.query(`DROP DATABASE ${name}_src WITH (FORCE)`);
  await admin.end();
}
rmSync(existingDir, { recursive: true, force: true });
results.push(
  ['PGlite, new dir, initdb', initdb],
  ['PGlite, fresh data dir', fresh],
  ['PGlite, existing data dir', existing],
  ['PGlite, in memory', memory],
  ['Postgres, fresh database', postgres.map((run) => run.ms)],
);

console.log(`cold-start: spawn \`strata start\` → /readyz 200, median of ${RUNS}`);
for (const [name, values] of results) {
  console.log(
    `${name.padEnd(26)} ${Math.round(median(values)).toString().padStart(6)} ms   (runs: ${values.map((v) => Math.round(v)).join(', ')})`,
  );
}

console.log('\nPostgres, fresh database: compiled (default) against the sources through tsx, same run');
for (const [name, runs] of [
  ['compiled', postgres],
  ['sources (tsx)', postgresFromSource],
] as const) {
  console.log(
    `${name.padEnd(14)} ready ${Math.round(median(runs.map((run) => run.ms)))} ms, CPU until ready ${Math.round(median(runs.map((run) => run.cpuMs)))} ms, peak RSS ${Math.round(median(runs.map((run) => run.peakRssMb)))} MB`,
  );
}
