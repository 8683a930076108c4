// Reorgs on a real daemon and Postgres:
//  - property test: random chains pushed to the ingest log with random replacement branches
//    (landing mid-batch, while writes are in flight, before or after processing saw the orphaned
//    blocks) end in exactly the fold of the final canonical chain — including SET→DELETE→SET on
//    one id and deletes of rows never committed — each reorg undone in the unsent batch, in the
//    writer's queue or in stored state, as /metrics counts them;
//  - the generator's injected reorgs on erc20, across a kill -9, end as the reference fold, with
//    history pruned to one anchor per id below the safe checkpoint;
//  - a generator reorg deeper than maxReorgDepth puts the pipeline in state `failed` with
//    STRATA_ERR_REORG_TOO_DEEP and changes nothing, while the daemon keeps serving; a pushed
//    replacement reaching history pruned since an earlier reorg is refused at the door.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateOrphanBlock, mulberry32, reorgDepthAt } from '../../src/sources/generator.ts';
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
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { erc20Source, expectErc20Reference } from '../helpers/erc20-reference.ts';
import { expectFold, randomStream } from '../helpers/model-stream.ts';

const ERC20_PROJECT = path.resolve(import.meta.dirname, '../../examples/erc20');
const STRATA_BIN = path.resolve(import.meta.dirname, '../../bin/strata.mjs');

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function reset(pipeline: string): Promise<void> {
  await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
  await db.query(`DROP SCHEMA IF EXISTS pipeline_${pipeline} CASCADE`);
}

/** The message of the fatal error with `code` the daemon logged (the last lines if none). */
function fatalMessage(daemon: DaemonProcess, code: string): string {
  const fatal = daemon.logs.find((line) => (line.err as { code?: string })?.code === code);
  expect(fatal, JSON.stringify(daemon.logs.slice(-5))).toBeDefined();
  return String((fatal!.err as { message: string }).message);
}

async function push(url: string, blocks: ChainBlock[]): Promise<void> {
  const response = await postBlocks(url, blocks);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
}

const committedTip = (chain: Chain, daemon: DaemonProcess) => waitForCommittedTip(db, chain, daemon);

const put = (id: string, value: number) => ({
  name: 'put',
  payload: { id, owner: 'owner-1', value: String(value), label: 'l', tags: [], meta: null, price: '1' },
});

describe('reorgs', () => {
  // More seeds (a soak): STRATA_REORG_SEEDS=101,102,… (batch sizes and targets cycle).
  const seeds = (process.env.STRATA_REORG_SEEDS ?? '21,22,23,24').split(',').map(Number);
  // A slow writer (`persistence:write-delay`) keeps batches queued, so most orphaned blocks are
  // dropped before they are written; with a fast one most reorgs roll back stored state. One
  // writer crashes once (its uncommitted batches re-sent, reorg requests asked again).
  const shapes = [
    { batchSize: 7, target: 100_000, fault: 'persistence:write-delay:40' },
    { batchSize: 1, target: 30, fault: '' },
    { batchSize: 50, target: 100_000, fault: 'persistence:write-delay:15' },
    { batchSize: 7, target: 100_000, fault: 'persistence:crash-before-commit:12' },
  ];
  const cases = seeds.map((seed, index) => ({ seed, ...shapes[index % shapes.length]! }));
  for (const c of cases) {
    it(`property: random reorgs end as the fold of the final chain (seed ${c.seed}, batch ${c.batchSize}, target ${c.target}${c.fault ? `, ${c.fault}` : ''})`, async () => {
      await reset('model');
      const daemon = startDaemonProcess(
        {
          DATABASE_URL: db.url,
          MODEL_SOURCE: 'ingest',
          MODEL_BATCH_SIZE: String(c.batchSize),
          MODEL_MAX_REORG_DEPTH: '40',
          STRATA_IN_MEMORY_OBJECTS_TARGET: String(c.target),
          STRATA_HISTORY_PRUNE_MS: '50',
          ...(c.fault ? { STRATA_TEST_FAULT: c.fault } : {}),
        },
        [],
        fixtureProject('model'),
      );
      const url = `${await daemon.url}/v1/pipelines/model/events`;
      const random = mulberry32(c.seed);
      const events = randomStream(c.seed, 2_000).map((block) => block.events);
      let next = 0;
      const take = (count: number) => {
        const taken = events.slice(next, next + count);
        next += count;
        return taken;
      };
      const chain = new Chain();

      // SET→DELETE→SET on one id, then a reorg into the middle of it; a row set and deleted
      // before any commit, then replaced.
      await push(url, chain.append([[put('item-x', 1)], [{ name: 'remove', payload: { id: 'item-x' } }]]));
      await push(
        url,
        chain.append([[put('item-x', 3)], [put('item-y', 4), { name: 'remove', payload: { id: 'item-y' } }]]),
      );
      // Processed (not necessarily committed) before the reorg reaches into it.
      const statusUrl = `${await daemon.url}/status`;
      await waitFor(
        () => getJson<StatusSnapshot>(statusUrl),
        ({ body }) => (body.pipelines[0]?.processedBlockNumber ?? -1) >= chain.blocks.at(-1)!.number,
        30_000,
        'the first four blocks processed',
      );
      await push(
        url,
        chain.replace(2, [[{ name: 'bump', payload: { id: 'item-x', by: '5' } }], [put('item-y', 9)]]),
      );

      while (next < events.length) {
        if (random() < 0.3 && chain.blocks.length > 15) {
          const depth = 1 + Math.floor(random() * 12);
          await push(url, chain.replace(depth, take(depth + Math.floor(random() * 4))));
        } else await push(url, chain.append(take(1 + Math.floor(random() * 15))));
        // Sometimes let processing catch up and commit (the next reorg rolls back written state),
        // sometimes not (it lands mid-batch, with writes in flight, or before the orphans were read).
        const pause = random();
        if (pause < 0.15) await committedTip(chain, daemon);
        else if (pause < 0.5) await new Promise((resolve) => setTimeout(resolve, random() * 30));
      }
      await committedTip(chain, daemon);
      // /metrics counts the reorgs by way as the log does.
      const logged = (way: string) =>
        daemon.logs.filter((line) => String(line.msg).startsWith('reorg: rolled back') && line.undid === way)
          .length;
      await waitFor(
        async () => (await fetch(`${await daemon.url}/metrics`)).text(),
        (metrics) =>
          ['unsent batch', 'queued batches', 'stored state'].every((way) =>
            metrics.includes(`strata_pipeline_reorgs{pipeline="model",undid="${way}"} ${logged(way)}\n`),
          ),
        10_000,
        'strata_pipeline_reorgs by way as logged',
      );
      // `strata status` shows them too, with how many rolled back stored state.
      const status = execFileSync(process.execPath, [STRATA_BIN, 'status', '--url', await daemon.url], {
        encoding: 'utf8',
      });
      const total = daemon.logs.filter((line) => String(line.msg).startsWith('reorg: rolled back')).length;
      expect(status).toContain(`${total} (${logged('stored state')} stored)`);
      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
      const rolledBack = daemon.logs.filter((line) => String(line.msg).startsWith('reorg: rolled back'));
      expect(rolledBack.length).toBeGreaterThan(5);
      // Every way: orphaned blocks undone in the batch not yet sent, dropped from the writer's
      // queue, and rolled back once stored.
      const undid = (way: string) => rolledBack.filter((line) => line.undid === way).length;
      expect(undid('stored state')).toBeGreaterThan(0);
      if (c.batchSize > 1) expect(undid('unsent batch')).toBeGreaterThan(0);
      if (c.fault.includes('write-delay')) expect(undid('queued batches')).toBeGreaterThan(0);
      if (c.fault.includes('crash')) {
        expect(
          daemon.logs.some((line) => line.msg === 're-sent uncommitted changes to the restarted writer'),
        ).toBe(true);
      }
      await expectFold(chain.blocks, (sql) => db.query(sql) as never);
    });
  }

  it('generator reorgs on erc20 across a kill -9 end as the reference, history pruned', async () => {
    await reset('erc20');
    const env = {
      DATABASE_URL: db.url,
      ERC20_ADDRESSES: '2000',
      ERC20_BLOCKS: '3000',
      ERC20_BATCH_SIZE: '40',
      ERC20_REORG_EVERY: '50',
      ERC20_REORG_DEPTH: '12',
      ERC20_MAX_REORG_DEPTH: '30',
      STRATA_HISTORY_PRUNE_MS: '50',
    };
    const first = startDaemonProcess(env, [], ERC20_PROJECT);
    await waitFor(
      async () => first.logs.filter((line) => String(line.msg).startsWith('reorg: rolled back')).length,
      (count) => count >= 3,
      30_000,
      'a few reorgs',
    );
    first.kill('SIGKILL');
    await first.exited;
    const second = startDaemonProcess(env, ['--exit-when-caught-up'], ERC20_PROJECT);
    expect((await second.exited).code).toBe(0);
    expect(second.logs.some((line) => String(line.msg).startsWith('reorg: rolled back'))).toBe(true);

    await expectErc20Reference((sql) => db.query(sql) as never, 1, 3_000);
    const [pipeline] = await db.query<{ events_processed: string }>(
      `SELECT events_processed FROM strata.pipelines WHERE name = 'erc20'`,
    );
    expect(Number(pipeline!.events_processed)).toBe(30_000);

    // Pruned: below the last pruning's safe checkpoint (pruning drops the history checkpoints
    // below it) at most one (anchor) row per id; history of the whole run (~17 rows per block)
    // would be ~50,000 rows.
    const [{ safe, block }] = (await db.query<{ safe: string; block: string }>(
      `SELECT checkpoint_id AS safe, block_number AS block FROM strata.checkpoints
        WHERE pipeline = 'erc20' AND history ORDER BY checkpoint_id LIMIT 1`,
    )) as [{ safe: string; block: string }];
    expect(Number(block)).toBeGreaterThan(2_500);
    const [{ rows, duplicated }] = (await db.query<{ rows: string; duplicated: string }>(
      `SELECT (SELECT count(*) FROM pipeline_erc20."_history_Account") AS rows,
              (SELECT count(*) FROM (SELECT id FROM pipeline_erc20."_history_Account"
                WHERE _strata_checkpoint < $1 GROUP BY id HAVING count(*) > 1) AS d) AS duplicated`,
      [safe],
    )) as [{ rows: string; duplicated: string }];
    expect(Number(rows)).toBeLessThan(10_000);
    expect(Number(duplicated)).toBe(0);
  });

  it('a replacement reaching history pruned since an earlier reorg is refused at the door; nothing changes', async () => {
    await reset('model');
    const daemon = startDaemonProcess(
      {
        DATABASE_URL: db.url,
        MODEL_SOURCE: 'ingest',
        MODEL_MAX_REORG_DEPTH: '5',
        STRATA_HISTORY_PRUNE_MS: '50',
      },
      [],
      fixtureProject('model'),
    );
    const url = `${await daemon.url}/v1/pipelines/model/events`;
    const events = randomStream(7, 40).map((block) => block.events);
    const chain = new Chain();
    await push(url, chain.append(events.slice(0, 30)));
    await committedTip(chain, daemon);
    // Let the pruning interval (50 ms) pass, so the next commit prunes.
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Committing block 31 prunes the history below block 26 (31 - maxReorgDepth).
    await push(url, chain.append(events.slice(30, 31)));
    await committedTip(chain, daemon);
    await waitFor(
      () =>
        db.count(
          `SELECT count(*) FROM strata.checkpoints WHERE pipeline = 'model' AND history AND block_number < 26`,
        ),
      (left) => left === 0,
      30_000,
      'history below block 26 pruned',
    );
    // A reorg back to block 27, within reach: blocks 28..31 replaced by one block 28.
    await push(url, chain.replace(4, events.slice(31, 32)));
    await committedTip(chain, daemon);
    const tip = chain.blocks[chain.blocks.length - 1]!;
    // Back to block 23: within maxReorgDepth of block 28, but below what was pruned (more than
    // maxReorgDepth below block 31, the highest the log held): refused at the door, nothing changed.
    const storedBefore = await db.count(`SELECT count(*) FROM strata.ingest_blocks WHERE pipeline = 'model'`);
    const deep = new Chain();
    deep.blocks = [...chain.blocks];
    const refused = await postBlocks(url, deep.replace(5, events.slice(32, 33)));
    expect(refused.status).toBe(400);
    expect(refused.body.error?.code).toBe('STRATA_ERR_REPLACEMENT_TOO_DEEP');
    expect(refused.body.error?.message).toContain("more than the pipeline's maxReorgDepth 5");
    expect(await db.count(`SELECT count(*) FROM strata.ingest_blocks WHERE pipeline = 'model'`)).toBe(
      storedBefore,
    );
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    const [pipeline] = await db.query<{ committed_block: string; committed_block_hash: string }>(
      `SELECT committed_block, committed_block_hash FROM strata.pipelines WHERE name = 'model'`,
    );
    expect(pipeline).toEqual({ committed_block: '28', committed_block_hash: tip.hash });
  });

  it('a reorg deeper than maxReorgDepth fails the pipeline, changing nothing, while the daemon serves', async () => {
    await reset('erc20');
    const env = {
      DATABASE_URL: db.url,
      ERC20_ADDRESSES: '2000',
      ERC20_BLOCKS: '3000',
      ERC20_BATCH_SIZE: '25',
      ERC20_REORG_EVERY: '100',
      ERC20_REORG_DEPTH: '60',
      ERC20_MAX_REORG_DEPTH: '20',
    };
    const source = { ...erc20Source(1), reorgs: { every: 100, maxDepth: 60 } };
    // The first reorg deeper than 20 blocks.
    let tip = 100;
    while (reorgDepthAt(source, tip) <= 20) tip += 100;
    const daemon = startDaemonProcess(env, [], ERC20_PROJECT);
    const base = await daemon.url;
    // The pipeline fails; the daemon keeps serving and says why.
    const body = await waitForPipelineState(base, 'failed', 60_000);
    expect(body.pipelines[0]!.failure).toMatchObject({
      code: 'STRATA_ERR_REORG_TOO_DEEP',
      actor: 'processing',
    });
    // The log line is read from the child's stdout, maybe after /status answered.
    await waitFor(
      async () =>
        daemon.logs.some((line) => (line.err as { code?: string })?.code === 'STRATA_ERR_REORG_TOO_DEEP'),
      (logged) => logged,
      10_000,
      'the failure logged',
    );
    expect(fatalMessage(daemon, 'STRATA_ERR_REORG_TOO_DEEP')).toContain(
      `does not continue processed block ${tip}`,
    );
    expect((await getJson(`${base}/livez`)).status).toBe(200);
    const ready = await getJson<{ error: { message: string } }>(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body.error.message).toContain('pipeline:erc20 (failed: STRATA_ERR_REORG_TOO_DEEP');
    daemon.kill('SIGTERM');
    expect((await daemon.exited).code).toBe(0);
    // Nothing rolled back: the orphaned tip is still what is committed.
    const [pipeline] = await db.query<{ committed_block: string; committed_block_hash: string }>(
      `SELECT committed_block, committed_block_hash FROM strata.pipelines WHERE name = 'erc20'`,
    );
    expect(Number(pipeline!.committed_block)).toBe(tip);
    expect(pipeline!.committed_block_hash).toBe(generateOrphanBlock(source, tip, tip).hash);
  });
});
