// A daemon of examples/erc20 on the ingest source for a benchmark: `strata start --port 0`, its
// URL read from its JSON logs. One that dies under the benchmark ends the benchmark, with its
// last log lines (a silent exit once left a benchmark polling forever).

import { spawn } from 'node:child_process';

const PROJECT = new URL('../examples/erc20', import.meta.url).pathname;
const STRATA = new URL('../bin/strata.mjs', import.meta.url).pathname;

export interface BenchDaemon {
  base: string;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Node options for the benchmarks' daemons, e.g. `BENCH_DAEMON_NODE_ARGS="--cpu-prof
 * --cpu-prof-dir=/tmp/profiles"` to profile every thread of each (NODE_OPTIONS refuses --cpu-prof).
 */
const DAEMON_NODE_ARGS = process.env.BENCH_DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? [];

export async function startBenchDaemon(
  env: Record<string, string>,
  args: string[] = [],
): Promise<BenchDaemon> {
  const child = spawn(
    process.execPath,
    [...DAEMON_NODE_ARGS, STRATA, 'start', '--project', PROJECT, '--port', '0', ...args],
    {
      env: {
        ...process.env,
        ERC20_SOURCE: 'ingest',
        STRATA_LOG_FORMAT: 'json',
        STRATA_PROGRESS: 'never',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let buffered = '';
  let stopping = false;
  child.once('exit', (code, signal) => {
    if (stopping) return;
    console.error(
      `daemon exited unexpectedly (${code ?? signal}); its last log lines:\n${buffered.slice(-4_000)}`,
    );
    process.exit(1);
  });
  const base = await new Promise<string>((resolve) => {
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /"url":"(http:[^"]+)","database"[^\n]*"msg":"HTTP listening"/.exec(buffered);
      if (match !== null) resolve(match[1]!);
      if (buffered.length > 1_000_000) buffered = buffered.slice(-10_000);
    });
  });
  return {
    base,
    pid: child.pid!,
    async stop() {
      stopping = true;
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
