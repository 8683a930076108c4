// Hardening on a real daemon and Postgres, one test per defect the survey found (each failed on
// the code before the fix):
//  - a deep replacement branch, one attached to nothing, one whose blocks do not chain, and an
//    append whose parentHash is not the head's hash are refused with 400; the ingest log is never
//    shortened; a retried request is recognised and changes nothing;
//  - poison blocks (a duplicate logIndex, a timestamp or number beyond the documented ranges) are
//    refused and nothing of them is stored;
//  - a handler failing on a block puts its pipeline in state `failed` (reason, block, event on
//    /status, named by /readyz) while the daemon keeps serving and ingesting, and SIGTERM exits 0;
//  - connections terminated by Postgres every second (30 s; STRATA_TERMINATE_SECONDS) while
//    blocks are posted and processed: the daemon stays up, every acknowledged block is stored and
//    the tables equal the fold of the chain;
//  - three 5 s SIGSTOPs within 24 s: no actor restarted, no exit;
//  - the modules endpoint serves pipeline modules only (never dotfiles or configs) and an empty
//    invalidation is refused;
//  - a DATABASE_URL naming no database exits 1 (not 75) with STRATA_ERR_DB_REFUSED.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/sources/generator.ts';
import type { StatusSnapshot } from '../../src/status-types.ts';
import { Chain, type ChainBlock, postBlocks, waitForCommittedTip } from '../helpers/chain.ts';
import {
  type DaemonProcess,
  fixtureProject,
  getJson,
  startDaemonProcess,
  waitFor,
  waitForPipelineState,
} from '../helpers/daemon-process.ts';
import { ADMIN_DATABASE_URL, useTestDatabase } from '../helpers/database.ts';
import { expectFold, randomStream } from '../helpers/model-stream.ts';

const db = useTestDatabase();

const MODEL = fixtureProject('model');
const TERMINATE_SECONDS = Number(process.env.STRATA_TERMINATE_SECONDS ?? 30);

async function startModel(env: Record<string, string> = {}): Promise<{ daemon: DaemonProcess; url: string }> {
  await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
  await db.query('DROP SCHEMA IF EXISTS pipeline_model CASCADE');
  const daemon = startDaemonProcess(
    { DATABASE_URL: db.url, MODEL_SOURCE: 'ingest', MODEL_MAX_REORG_DEPTH: '5', ...env },
    [],
    MODEL,
  );
  return { daemon, url: `${await daemon.url}/v1/pipelines/model/events` };
}

const storedCount = () => db.count(`SELECT count(*) FROM strata.ingest_blocks WHERE pipeline = 'model'`);

async function stop(daemon: DaemonProcess): Promise<void> {
  daemon.kill('SIGTERM');
  expect((await daemon.exited).code).toBe(0);
}

function expectRefused(response: { status: number; body: { error?: { code: string } } }, code: string): void {
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  expect(response.body.error?.code).toBe(code);
}

describe('hardening', () => {
  it('refuses deep, detached and broken replacement branches and broken appends; the log is never shortened', async () => {
    const { daemon, url } = await startModel();
    const events = randomStream(31, 80).map((block) => block.events);
    const chain = new Chain();
    expect((await postBlocks(url, chain.append(events.slice(0, 40)))).status).toBe(200);
    await waitForCommittedTip(db, chain, daemon);

    // Block 30 replaced: 10 blocks deep with maxReorgDepth 5 (it once cut the log to 29 rows).
    const deep = new Chain();
    deep.blocks = chain.blocks.slice(0, 29);
    const deepResponse = await postBlocks(url, deep.replace(0, events.slice(40, 41)));
    expectRefused(deepResponse, 'STRATA_ERR_REPLACEMENT_TOO_DEEP');
    expect(deepResponse.body.error).toMatchObject({
      message: expect.stringContaining('nothing was changed'),
    });
    // A replacement at block 1 attaches to nothing stored below it.
    const first = { number: 1, timestamp: 1_700_000_000, hash: 'x-1', parentHash: 'x-0', events: [] };
    expectRefused(await postBlocks(url, [first]), 'STRATA_ERR_BLOCK_CHAIN_BROKEN');
    // A shallow replacement whose own blocks do not chain.
    const tip = chain.blocks[chain.blocks.length - 1]!;
    const parent = chain.blocks[chain.blocks.length - 3]!;
    const unchained = [
      { number: tip.number - 1, timestamp: 1, hash: 'r-1', parentHash: parent.hash, events: [] },
      { number: tip.number, timestamp: 1, hash: 'r-2', parentHash: 'not-r-1', events: [] },
    ];
    expectRefused(await postBlocks(url, unchained), 'STRATA_ERR_BLOCK_CHAIN_BROKEN');
    // An append whose parentHash is not the head's hash (it once made the pipeline spin).
    const detached = { number: tip.number + 1, timestamp: 1, hash: 'd-1', parentHash: 'nope', events: [] };
    expectRefused(await postBlocks(url, [detached]), 'STRATA_ERR_BLOCK_CHAIN_BROKEN');
    // A block naming no parent after a hashed one, appended or inside a replacement branch: the
    // fuzz test found that processing, resting on the old tip, took such a block for a
    // continuation and folded it onto the orphaned branch.
    const orphanless = { number: tip.number + 1, timestamp: 1, hash: 'n-1', parentHash: null, events: [] };
    expectRefused(await postBlocks(url, [orphanless]), 'STRATA_ERR_BLOCK_CHAIN_BROKEN');
    const halfHashed = [
      { number: tip.number - 1, timestamp: 1, hash: 'q-1', parentHash: parent.hash, events: [] },
      { number: tip.number, timestamp: 1, hash: 'q-2', parentHash: 'q-1', events: [] },
      { number: tip.number + 1, timestamp: 1, hash: 'q-3', events: [] },
    ];
    expectRefused(await postBlocks(url, halfHashed), 'STRATA_ERR_BLOCK_CHAIN_BROKEN');
    expect(await storedCount()).toBe(40);

    // A retried request (its first answer lost) is recognised: 200, nothing changes.
    const retried = await postBlocks(url, chain.blocks.slice(10, 20));
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ stored: 0, alreadyStored: true, head: 40 });
    expect(await storedCount()).toBe(40);

    // Valid appends and a replacement within reach go on being processed.
    expect((await postBlocks(url, chain.replace(3, events.slice(41, 45)))).status).toBe(200);
    expect((await postBlocks(url, chain.append(events.slice(45, 50)))).status).toBe(200);
    await waitForCommittedTip(db, chain, daemon);
    await expectFold(chain.blocks, (sql) => db.query(sql) as never);
    // Progress reaches /status once a second.
    await waitFor(
      async () => (await getJson<StatusSnapshot>(`${await daemon.url}/status`)).body.pipelines[0],
      (pipeline) => pipeline?.state === 'live' && pipeline.reorgs === 1,
      10_000,
      'one reorg on /status',
    );
    expect(daemon.logs.filter((line) => String(line.msg).startsWith('reorg:'))).toHaveLength(1);
    await stop(daemon);
  });

  it('refuses poison blocks: a duplicate logIndex, timestamps and numbers beyond the documented ranges', async () => {
    const { daemon, url } = await startModel();
    const put = (id: string, logIndex?: number) => ({
      name: 'put',
      payload: { id, owner: 'o', value: '1', label: 'l', tags: [], meta: null, price: '1' },
      ...(logIndex === undefined ? {} : { logIndex }),
    });
    const block = (number: number, extra: Record<string, unknown> = {}) => ({
      number,
      timestamp: 1_700_000_000,
      events: [put('a')],
      ...extra,
    });
    expectRefused(
      await postBlocks(url, [block(1, { events: [put('a', 3), put('b', 3)] })]),
      'STRATA_ERR_BLOCK_INVALID',
    );
    // An explicit index equal to another event's default one (its position) collides too.
    expectRefused(
      await postBlocks(url, [block(1, { events: [put('a'), put('b', 0)] })]),
      'STRATA_ERR_BLOCK_INVALID',
    );
    expectRefused(
      await postBlocks(url, [block(1, { timestamp: Number.MAX_SAFE_INTEGER })]),
      'STRATA_ERR_BLOCK_INVALID',
    );
    expectRefused(await postBlocks(url, [block(Number.MAX_SAFE_INTEGER)]), 'STRATA_ERR_BLOCK_INVALID');
    expectRefused(
      await postBlocks(url, [block(1, { events: [put('a', 2 ** 31)] })]),
      'STRATA_ERR_BLOCK_INVALID',
    );
    expectRefused(await postBlocks(url, [block(1, { hash: 'h\u0000' })]), 'STRATA_ERR_BLOCK_INVALID');
    expect(await storedCount()).toBe(0);
    // The largest accepted values are stored and processed.
    const largest = block(2 ** 50 - 1, { timestamp: 253_402_300_799, events: [put('z', 2 ** 31 - 1)] });
    expect((await postBlocks(url, [largest])).status).toBe(200);
    await waitFor(
      () => db.query<{ committed_block: string }>(`SELECT committed_block FROM strata.pipelines`),
      (rows) => rows[0]?.committed_block === String(2 ** 50 - 1),
      30_000,
      'the largest block committed',
    );
    await stop(daemon);
  });

  it('a handler failing on a block fails its pipeline only: the daemon serves, ingests, and stops cleanly', async () => {
    const { daemon, url } = await startModel();
    const base = await daemon.url;
    const put = {
      name: 'put',
      payload: { id: 'a', owner: 'o', value: '1', label: 'l', tags: [], meta: null, price: '1' },
    };
    const ok = await postBlocks(url, [
      { number: 1, timestamp: 1_700_000_000, events: [put] },
      // BigInt('x') throws in the bump handler.
      { number: 2, timestamp: 1_700_000_001, events: [put, { name: 'bump', payload: { id: 'a', by: 'x' } }] },
    ]);
    expect(ok.status).toBe(200);
    const body = await waitForPipelineState(base, 'failed', 30_000);
    expect(body.pipelines[0]!.failure).toMatchObject({
      code: 'STRATA_ERR_HANDLER_FAILED',
      block: 2,
      event: 'bump',
      logIndex: 1,
      actor: 'processing',
    });
    expect((await getJson(`${base}/livez`)).status).toBe(200);
    const ready = await getJson<{ error: { message: string } }>(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.error.message).toContain(
      'pipeline:model (failed: STRATA_ERR_HANDLER_FAILED at block 2)',
    );
    // Ingest still stores (the log is the source a fixed handler resumes from).
    expect((await postBlocks(url, [{ number: 3, timestamp: 1_700_000_002, events: [] }])).status).toBe(200);
    // No restart loop: the actors keep their first incarnation.
    expect(body.actors.every((actor) => actor.incarnation === 1 && actor.restarts === 0)).toBe(true);
    await stop(daemon);
    // Block 1 was committed; nothing of block 2's batch half-stored.
    const [pipeline] = await db.query<{ committed_block: string }>(
      'SELECT committed_block FROM strata.pipelines',
    );
    expect(Number(pipeline!.committed_block)).toBeLessThan(2);
  });

  it(`connections terminated every second for ${TERMINATE_SECONDS} s: the daemon stays up, acknowledged blocks stored, tables equal the fold`, async () => {
    const seed = Number(process.env.STRATA_TERMINATE_SEED ?? Date.now() % 100_000);
    const { daemon, url } = await startModel({
      MODEL_MAX_REORG_DEPTH: '200',
      MODEL_BATCH_SIZE: '5',
      STRATA_DB_POOL_MAX: '4',
    });
    try {
      const random = mulberry32(seed);
      const events = randomStream(seed, 3_000).map((block) => block.events);
      const chain = new Chain();
      let next = 0;
      let terminated = 0;
      let answersOtherThan200 = 0;
      // 30 s in the suite; STRATA_TERMINATE_SECONDS=60 (or more) for a longer soak.
      const deadline = Date.now() + TERMINATE_SECONDS * 1_000;
      const killer = (async () => {
        while (Date.now() < deadline) {
          const rows = await db.query<{ count: number }>(
            `SELECT count(pg_terminate_backend(pid))::int AS count FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()`,
            [db.name],
          );
          terminated += rows[0]?.count ?? 0;
          await new Promise((resolve) => setTimeout(resolve, 1_000));
        }
      })();
      while (Date.now() < deadline && next < events.length) {
        const count = 1 + Math.floor(random() * 20);
        const blocks: ChainBlock[] = chain.append(events.slice(next, next + count));
        next += count;
        // A request cut by a terminated connection is sent again until it is acknowledged; a
        // replay of one that committed is recognised as already stored.
        for (let attempt = 0; ; attempt++) {
          const response = await postBlocks(url, blocks).catch(() => null);
          if (response?.status === 200) break;
          answersOtherThan200 += 1;
          expect(response === null || response.status === 503, JSON.stringify(response?.body)).toBe(true);
          expect(attempt, 'acknowledged within 50 tries').toBeLessThan(50);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      await killer;
      expect(terminated, `seed ${seed}`).toBeGreaterThan(30);
      await waitForCommittedTip(db, chain, daemon, 90_000);
      expect(daemon.child.exitCode).toBeNull();
      const rows = await db.query<{ number: string; hash: string }>(
        `SELECT number, hash FROM strata.ingest_blocks WHERE pipeline = 'model' ORDER BY number`,
      );
      expect(rows.map((row) => row.hash)).toEqual(chain.blocks.map((block) => block.hash));
      await expectFold(chain.blocks, (sql) => db.query(sql) as never);
      const { body } = await getJson<StatusSnapshot>(`${await daemon.url}/status`);
      expect(body.pipelines[0]?.state, `seed ${seed}`).toBe('live');
      expect(daemon.logs.some((line) => (line.level as number) >= 60)).toBe(false);
      console.log(
        `terminated ${terminated} connections in ${TERMINATE_SECONDS} s; ${answersOtherThan200} requests retried; seed ${seed}`,
      );
      await stop(daemon);
    } catch (error) {
      daemon.kill('SIGKILL');
      throw new Error(`seed ${seed}: ${(error as Error).message}`, { cause: error });
    }
  }, 240_000);

  it('three 5 s SIGSTOPs within 24 s restart no actor and do not end the process', async () => {
    const { daemon, url } = await startModel();
    const base = await daemon.url;
    const chain = new Chain();
    const events = randomStream(41, 30).map((block) => block.events);
    expect((await postBlocks(url, chain.append(events.slice(0, 10)))).status).toBe(200);
    for (let pause = 0; pause < 3; pause++) {
      daemon.kill('SIGSTOP');
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      daemon.kill('SIGCONT');
      await new Promise((resolve) => setTimeout(resolve, 3_000));
    }
    expect((await postBlocks(url, chain.append(events.slice(10, 20)))).status).toBe(200);
    await waitForCommittedTip(db, chain, daemon);
    const { body } = await getJson<StatusSnapshot>(`${base}/status`);
    expect(body.actors.map((actor) => [actor.name, actor.incarnation, actor.restarts])).toEqual(
      body.actors.map((actor) => [actor.name, 1, 0]),
    );
    expect(body.actors.some((actor) => actor.pausesForgiven > 0)).toBe(true);
    expect(daemon.logs.some((line) => line.msg === 'actor unresponsive; terminating')).toBe(false);
    await stop(daemon);
  });

  it('the modules endpoint serves pipeline modules only; an empty invalidation is refused', async () => {
    const secret = path.join(MODEL, '.env.hardening-test');
    writeFileSync(secret, 'SECRET_TOKEN=do-not-serve\n');
    try {
      const { daemon } = await startModel();
      const base = await daemon.url;
      for (const served of ['handlers.ts', 'handlers', 'schema.ts', 'handlers.ts?map']) {
        expect((await fetch(`${base}/v1/modules/${served}`)).status, served).toBe(200);
      }
      for (const refused of ['.env.hardening-test', 'strata.config.ts', 'nope.ts']) {
        const response = await fetch(`${base}/v1/modules/${refused}`);
        const text = await response.text();
        expect(response.status, refused).toBe(404);
        expect(JSON.parse(text).error.code).toBe('STRATA_ERR_MODULE_NOT_FOUND');
        expect(text).not.toContain('do-not-serve');
      }
      const empty = await fetch(`${base}/v1/modules/invalidate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(empty.status).toBe(400);
      const all = await fetch(`${base}/v1/modules/invalidate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"all":true}',
      });
      expect(await all.json()).toEqual({ invalidated: 'all' });
      await stop(daemon);
    } finally {
      rmSync(secret, { force: true });
    }
  });

  it('a DATABASE_URL naming no database exits 1 with STRATA_ERR_DB_REFUSED', async () => {
    const url = new URL(ADMIN_DATABASE_URL);
    url.pathname = '/strata_no_such_database';
    const daemon = startDaemonProcess({ DATABASE_URL: url.toString(), MODEL_SOURCE: 'ingest' }, [], MODEL);
    expect((await daemon.exited).code).toBe(1);
    expect(daemon.stderr.join('') + JSON.stringify(daemon.logs)).toContain('STRATA_ERR_DB_REFUSED');
  });
});
