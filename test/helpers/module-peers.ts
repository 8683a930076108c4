// Starts module-cache peers (test/helpers/module-peer.ts) as child processes and talks to them.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const root = new URL('../..', import.meta.url).pathname;

export interface PeerReply {
  results: Array<{ path: string; cache: string; code?: string; codeLength?: number }>;
  stats: { transpiles: number; crossProcessJoins: number; waitTimeoutFallbacks: number; l2Hits: number };
  ms: number;
}

export interface Peer {
  child: ChildProcess;
  ready: Promise<void>;
  request(paths: string[]): Promise<PeerReply>;
  close(): Promise<void>;
}

export function startPeer(env: Record<string, string>): Peer {
  const child = spawn(process.execPath, ['bin/run-ts.mjs', 'test/helpers/module-peer.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const pending: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => pending.shift()?.(line));
  const exited = new Promise<never>((_, reject) => {
    child.on('exit', (code, signal) =>
      reject(new Error(`peer exited (${code ?? signal}): ${stderr.join('').slice(-2_000)}`)),
    );
  });
  exited.catch(() => undefined);
  const nextLine = () => Promise.race([new Promise<string>((resolve) => pending.push(resolve)), exited]);
  return {
    child,
    ready: nextLine().then(() => undefined),
    async request(paths) {
      const reply = nextLine();
      child.stdin!.write(`${JSON.stringify({ get: paths })}\n`);
      return JSON.parse(await reply) as PeerReply;
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end(`${JSON.stringify({})}\n`);
      await gone;
    },
  };
}
