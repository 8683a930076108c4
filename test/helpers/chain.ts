// A hashed chain as the ingest log stores it (appends and replacement branches), and the helpers
// tests use to push it to a daemon and wait for its tip to be committed.
import { expect } from 'vitest';
import type { DaemonProcess } from './daemon-process.ts';
import { waitFor } from './daemon-process.ts';
import type { TestDatabase } from './database.ts';
import type { StreamBlock } from './model-stream.ts';

export type ChainBlock = StreamBlock & { hash: string; parentHash: string | null };

/** A canonical chain built by appending and replacing, as the ingest log stores it. */
export class Chain {
  blocks: ChainBlock[] = [];
  private branches = 0;

  /** `events` appended as new blocks on the current tip. */
  append(events: StreamBlock['events'][]): ChainBlock[] {
    const branch = this.branches;
    const added = events.map((blockEvents) => {
      const parent = this.blocks[this.blocks.length - 1];
      const number = (parent?.number ?? 0) + 1;
      const block: ChainBlock = {
        number,
        timestamp: 1_700_000_000 + number * 12,
        hash: `b${branch}-${number}`,
        parentHash: parent?.hash ?? null,
        events: blockEvents,
      };
      this.blocks.push(block);
      return block;
    });
    return added;
  }

  /** Replaces the last `depth` blocks by a new branch of `events` (a reorg). */
  replace(depth: number, events: StreamBlock['events'][]): ChainBlock[] {
    this.blocks = this.blocks.slice(0, this.blocks.length - depth);
    this.branches += 1;
    return this.append(events);
  }
}

/** Waits until the chain's tip is processed and committed (a timeout shows the daemon's warnings). */
export async function waitForCommittedTip(
  db: TestDatabase,
  chain: Chain,
  daemon: DaemonProcess,
  timeoutMs = 60_000,
): Promise<void> {
  const tip = chain.blocks[chain.blocks.length - 1]!;
  await waitFor(
    () =>
      db.query<{ committed_block_hash: string }>(
        `SELECT committed_block_hash FROM strata.pipelines WHERE name = 'model'`,
      ),
    (rows) => rows[0]?.committed_block_hash === tip.hash,
    timeoutMs,
    `block ${tip.number} (${tip.hash}) committed`,
  ).catch((error: Error) => {
    const warnings = daemon.logs.filter((line) => (line.level as number) >= 40).slice(-5);
    throw new Error(`${error.message}; last warnings: ${JSON.stringify(warnings)}`);
  });
}

/** POSTs `{ blocks }` (or any body) and returns the status and parsed answer. */
export async function postBlocks(
  url: string,
  blocks: unknown,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ blocks }),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: (await response.json()) as never };
}

/** Posts blocks and expects them stored (200). */
export async function pushBlocks(url: string, blocks: ChainBlock[]): Promise<void> {
  const response = await postBlocks(url, blocks);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
}
