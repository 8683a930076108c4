// Reorgs on a real daemon and Postgres (the property test of random chains is
// test/integration/reorg-property.test.ts):
//  - the generator's injected reorgs on erc20, across a kill -9, end as the reference fold, with
//    history pruned to one anchor per id below the safe checkpoint;
//  - a generator reorg deeper than maxReorgDepth puts the pipeline in state `failed` with
//    STRATA_ERR_REORG_TOO_DEEP and changes nothing, while the daemon keeps serving; a pushed
//    replacement reaching history pruned since an earlier reorg is refused at the door.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateOrphanBlock, reorgDepthAt } from '../../src/sources/generator.ts';
import { Chain, postBlocks, pushBlocks, waitForCommittedTip } from '../helpers/chain.ts';
import {
  type DaemonProcess,
  fixtureProject,
  getJson,
  startDaemonProcess,
  waitFor,
  waitForPipelineState,
} from '../helpers/daemon-process.ts';
import { resetPipeline, useTestDatabase } from '../helpers/database.ts';
import { erc20Source, expectErc20Reference } from '../helpers/erc20-reference.ts';
import { randomStream } from '../helpers/model-stream.ts';

const ERC20_PROJECT = path.resolve(import.meta.dirname, '../../examples/erc20');

const db = useTestDatabase();
const reset = (pipeline: string) => resetPipeline(db, pipeline);

/** The message of the fatal error with `code` the daemon logged (the last lines if none). */
function fatalMessage(daemon: DaemonProcess, code: string): string {
  const fatal = daemon.logs.find((line) => (line.err as { code?: string })?.code === code);
  expect(fatal, JSON.stringify(daemon.logs.slice(-5))).toBeDefined();
  return String((fatal!.err as { message: string }).message);
}

const push = pushBlocks;

const committedTip = (chain: Chain, daemon: DaemonProcess) => waitForCommittedTip(db, chain, daemon);

describe('reorgs', () => {
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
