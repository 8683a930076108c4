// Runs a real Strata daemon as a child process (`node bin/strata.mjs start`), reads its JSON logs,
// and reports how it exited.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll } from 'vitest';
import type { StatusSnapshot } from '../../src/status-types.ts';

const root = path.resolve(import.meta.dirname, '../..');
export const TEST_PROJECT = path.join(root, 'test/fixtures/project');

export interface DaemonProcess {
  child: ChildProcess;
  url: Promise<string>;
  logs: Array<Record<string, unknown>>;
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
}

// A test that fails before it stops its daemon would leave it running (and busy) for the rest of
// the suite: every daemon still alive when its test file ends is killed.
const running = new Set<ChildProcess>();
afterAll(() => {
  for (const child of running) child.kill('SIGKILL');
});

export const fixtureProject = (name: string) => path.join(root, 'test/fixtures', name);

export function startDaemonProcess(
  env: Record<string, string>,
  args: string[] = [],
  project = TEST_PROJECT,
): DaemonProcess {
  const child = spawn(
    process.execPath,
    ['bin/strata.mjs', 'start', '--project', project, '--port', '0', '--log-format', 'json', ...args],
    {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        STRATA_LOG_LEVEL: 'info',
        STRATA_BACKOFF_BASE_MS: '20',
        STRATA_BACKOFF_MAX_MS: '200',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  const logs: Array<Record<string, unknown>> = [];
  const stderr: string[] = [];
  let resolveUrl: (url: string) => void = () => {};
  let rejectUrl: (error: Error) => void = () => {};
  const url = new Promise<string>((resolve, reject) => {
    resolveUrl = resolve;
    rejectUrl = reject;
  });
  url.catch(() => undefined);
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'HTTP listening') resolveUrl(entry.url as string);
      } catch {
        stderr.push(line);
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close', not 'exit': it comes once stdout is drained too, so no log line is lost after exit.
    child.on('close', (code, signal) => {
      running.delete(child);
      rejectUrl(new Error(`daemon exited (${code ?? signal}) before listening: ${stderr.join('')}`));
      resolve({ code, signal });
    });
  });
  return { child, url, logs, stderr, exited, kill: (signal = 'SIGTERM') => child.kill(signal) };
}

export async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: (await response.json()) as T };
}

export async function waitFor<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read().catch(() => undefined);
    if (value !== undefined && done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Waits until `/status` shows the daemon's first pipeline in `state`; resolves with the snapshot. */
export async function waitForPipelineState(
  baseUrl: string,
  state: StatusSnapshot['pipelines'][number]['state'],
  timeoutMs: number,
): Promise<StatusSnapshot> {
  const { body } = await waitFor(
    () => getJson<StatusSnapshot>(`${baseUrl}/status`),
    ({ body }) => body.pipelines[0]?.state === state,
    timeoutMs,
    `the pipeline ${state}`,
  );
  return body;
}

/** A `fetch` for a shape client that records every answer's status (to assert no 409 came). */
export function statusRecorder(): { fetch: typeof fetch; statuses: number[] } {
  const statuses: number[] = [];
  return {
    statuses,
    fetch: async (input, init) => {
      const response = await fetch(input, init);
      statuses.push(response.status);
      return response;
    },
  };
}
