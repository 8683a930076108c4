// The module cache across real processes: peers (test/helpers/module-peer.ts) share Postgres (L2)
// and Redis (coalescing). Exactly one transpile per module version across the fleet; a winner
// killed mid-transpile leaves the others to finish by the fallback within the bounded wait; Redis
// stopped mid-run costs coalescing, never service, and coalescing resumes when it is back.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/db/migrator.ts';
import { createDb, type Db } from '../../src/db/pool.ts';
import { createLogger } from '../../src/logger.ts';
import { RedisCoalescer } from '../../src/transpile/coalescer.ts';
import { L2Store } from '../../src/transpile/l2-store.ts';
import { ModuleService } from '../../src/transpile/module-service.ts';
import { TranspilePool } from '../../src/transpile/transpile-pool.ts';
import { createTestDatabase, REDIS_URL, type TestDatabase } from '../helpers/database.ts';
import { type Peer, startPeer } from '../helpers/module-peers.ts';

const log = createLogger({ level: 'silent', format: 'json' });
let database: TestDatabase;
const peers: Peer[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  await migrate({ url: database.url, log, connectTimeoutMs: 5_000 });
});
afterAll(async () => {
  for (const peer of peers) peer.child.kill('SIGKILL');
  await database?.drop();
});

function project(files: Record<string, string>): string {
  const root = mkdtempSync(path.join(tmpdir(), 'strata-fleet-'));
  for (const [file, source] of Object.entries(files)) writeFileSync(path.join(root, file), source);
  return root;
}

function peer(root: string, extra: Record<string, string> = {}): Peer {
  const started = startPeer({ PEER_ROOT: root, DATABASE_URL: database.url, REDIS_URL, ...extra });
  peers.push(started);
  return started;
}

describe('module cache fleet (child processes)', () => {
  it('three processes × 50 modules requested concurrently → exactly 50 transpiles, each its own bytes', async () => {
    const files = Object.fromEntries(
      Array.from({ length: 50 }, (_, i) => [
        `mod${i}.ts`,
        `export const marker${i}: string = "module-${i}";`,
      ]),
    );
    const root = project(files);
    const prefix = `strata-fleet-${Date.now()}`;
    const fleet = [
      peer(root, { PEER_PREFIX: prefix }),
      peer(root, { PEER_PREFIX: prefix }),
      peer(root, { PEER_PREFIX: prefix }),
    ];
    await Promise.all(fleet.map((p) => p.ready));
    const names = Object.keys(files).map((file) => file.replace('.ts', ''));
    const replies = await Promise.all(fleet.map((p) => p.request(names)));
    const transpiles = replies.reduce((sum, reply) => sum + reply.stats.transpiles, 0);
    expect(transpiles).toBe(50);
    expect(replies.reduce((sum, reply) => sum + reply.stats.waitTimeoutFallbacks, 0)).toBe(0);
    for (const reply of replies) {
      for (const [index, result] of reply.results.entries()) {
        expect(result.path).toBe(`mod${index}.ts`);
        expect(result.code).toContain(`marker${index} = "module-${index}"`); // no false coalescing
      }
    }
    await Promise.all(fleet.map((p) => p.close()));
  });

  it('the winner killed mid-transpile → the other process finishes by the fallback within the bounded wait', async () => {
    // ~16 MB of TypeScript: the winner spends seconds in oxc, long enough to be killed in it.
    let big = '';
    for (let i = 0; i < 200_000; i++)
      big += `export function f${i}(a: number, b: string): string { return b + a * ${i}; }\n`;
    const root = project({ 'big.ts': big });
    const prefix = `strata-fleet-kill-${Date.now()}`;
    const waitMs = 1_500;
    const winner = peer(root, { PEER_PREFIX: prefix, PEER_WAIT_MS: String(waitMs) });
    const loser = peer(root, { PEER_PREFIX: prefix, PEER_WAIT_MS: String(waitMs) });
    await Promise.all([winner.ready, loser.ready]);
    const redis = new Redis(REDIS_URL);
    try {
      const winnerReply = winner.request(['big']);
      winnerReply.catch(() => undefined);
      // The winner holds the lease once it starts transpiling; the loser then parks on it.
      const deadline = Date.now() + 10_000;
      while ((await redis.keys(`${prefix}:lease:*`)).length === 0 && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 10));
      expect(await redis.keys(`${prefix}:lease:*`)).toHaveLength(1);
      const started = Date.now();
      const loserReply = loser.request(['big']);
      await new Promise((resolve) => setTimeout(resolve, 200));
      winner.child.kill('SIGKILL');
      await expect(winnerReply).rejects.toThrow(/peer exited/);
      const reply = await loserReply;
      expect(reply.results[0]!.codeLength).toBeGreaterThan(1_000_000);
      expect(reply.stats.waitTimeoutFallbacks).toBe(1);
      expect(reply.stats.transpiles).toBe(1);
      // The bounded wait, then its own transpile (a few seconds for 16 MB on a busy machine).
      expect(Date.now() - started).toBeLessThan(waitMs + 30_000);
      await loser.close();
    } finally {
      redis.disconnect();
    }
  });

  it('Redis stopped mid-run → modules still served; Redis back → coalescing resumes', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    let server = await startRedisServer(port);
    const root = project(
      Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`r${i}.ts`, `export const r${i} = ${i};`])),
    );
    const db: Db = createDb({
      url: database.url,
      max: 4,
      connectTimeoutMs: 5_000,
      applicationName: 'test',
      log,
    });
    const pool = new TranspilePool({ threads: 1 });
    const connections: Redis[] = [];
    const member = async () => {
      const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 100 });
      const subscriber = new Redis(url, { retryStrategy: () => 100 });
      for (const connection of [client, subscriber]) connection.on('error', () => undefined);
      connections.push(client, subscriber);
      await Promise.all(
        [client, subscriber].map((c) => (c.status === 'ready' ? undefined : once(c, 'ready'))),
      );
      const coalescer = new RedisCoalescer({ client, subscriber, log, prefix: 'restart', waitMs: 2_000 });
      const modules = new ModuleService({
        root,
        pool,
        l2: new L2Store(db, `file://${root}`),
        coalescer,
        log,
      });
      return { modules, client };
    };
    try {
      const [one, two] = [await member(), await member()];
      const transpiles = () => one.modules.stats.transpiles + two.modules.stats.transpiles;
      /** Both members request `name` at once; how many transpiles that took, and the layers served. */
      const bothServed = async (name: string) => {
        const before = transpiles();
        const results = await Promise.all([one.modules.get(name), two.modules.get(name)]);
        for (const result of results) expect(result.code).toContain(`${name} = ${name.slice(1)}`);
        return { transpiles: transpiles() - before, layers: results.map((result) => result.cache) };
      };
      const both = async (name: string) => (await bothServed(name)).transpiles;
      expect(await both('r0')).toBe(1); // one transpiled; the other joined (or read L2)

      server.kill('SIGTERM');
      await once(server, 'exit');
      await waitUntil(() => one.client.status !== 'ready' && two.client.status !== 'ready');
      const outage = await Promise.all([one.modules.get('r1'), two.modules.get('r2')]);
      expect(outage.map((result) => result.code)).toEqual([
        expect.stringContaining('r1 = 1'),
        expect.stringContaining('r2 = 2'),
      ]);
      // Both served without the coalescer: each transpiles locally, unless (on a busy machine) the
      // first one's L2 write lands before the second looks — never joined across processes.
      const outageBoth = await bothServed('r3');
      expect(outageBoth.layers.every((layer) => layer === 'miss' || layer === 'l2')).toBe(true);
      expect(outageBoth.transpiles).toBe(outageBoth.layers.filter((layer) => layer === 'miss').length);

      server = await startRedisServer(port);
      await waitUntil(() => connections.every((connection) => connection.status === 'ready'));
      await new Promise((resolve) => setTimeout(resolve, 200)); // re-subscribed
      expect(await both('r4')).toBe(1); // coalescing is back
      expect(await both('r5')).toBe(1);
    } finally {
      for (const connection of connections) connection.disconnect();
      server.kill('SIGTERM');
      await pool.close();
      await db.close();
    }
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

async function startRedisServer(port: number): Promise<ChildProcess> {
  const server = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  await new Promise<void>((resolve, reject) => {
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('Ready to accept connections')) resolve();
    });
    server.on('exit', (code) => reject(new Error(`redis-server exited (${code}): ${output}`)));
  });
  return server;
}

async function waitUntil(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
