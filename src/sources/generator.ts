// The deterministic generator source: block N of a given seed is a pure function of (seed, N),
// so a pipeline resumed at any checkpoint sees exactly the stream an uninterrupted run saw, and
// tests can fold the same stream into a reference result without running Strata.

import type { GeneratorSourceConfig } from '../config.ts';
import { type BlockSource, Waker } from './block-source.ts';
import { creditLedgerEvent, LEDGER_TREASURY_INDEX } from './credit-ledger-events.ts';
import type { Block, SourceEvent } from './types.ts';

/** 2025-01-01T00:00:00Z; block N is stamped 12 s after block N-1, like an Ethereum slot. */
const GENESIS_TIMESTAMP = 1_735_689_600;
const BLOCK_TIME_SECONDS = 12;

export type GeneratorShape = Pick<
  GeneratorSourceConfig,
  'workload' | 'seed' | 'eventsPerBlock' | 'addresses' | 'distribution'
> & { reorgs?: GeneratorSourceConfig['reorgs'] };

export function generateBlock(source: GeneratorShape, number: number): Block {
  return makeBlock(source, number, source.seed, blockHash(source.seed, number - 1));
}

/** Mixed into the seed for the orphaned branch of a reorg window: other events, other hashes. */
const ORPHAN_SALT = 0x0bad_c0de;

/** How deep the reorg at block `tip` (a multiple of `every`) goes: 1..maxDepth, from the seed. */
export function reorgDepthAt(source: GeneratorShape, tip: number): number {
  if (source.reorgs === undefined) return 0;
  return 1 + (mix(source.seed ^ ORPHAN_SALT, tip) % source.reorgs.maxDepth);
}

/**
 * Block `number` of the branch that the reorg at `tip` orphans (blocks tip-depth+1..tip): its
 * own events and hash, chained to the orphaned block before it or, at the window's start, to
 * the canonical parent.
 */
export function generateOrphanBlock(source: GeneratorShape, number: number, tip: number): Block {
  const firstOrphan = tip - reorgDepthAt(source, tip) + 1;
  const parentHash =
    number > firstOrphan
      ? blockHash(source.seed ^ ORPHAN_SALT, number - 1)
      : blockHash(source.seed, number - 1);
  return makeBlock(source, number, source.seed ^ ORPHAN_SALT, parentHash);
}

function makeBlock(source: GeneratorShape, number: number, seed: number, parentHash: string): Block {
  const random = mulberry32(mix(seed, number));
  const pickIndex = addressPicker(random, source.addresses, source.distribution);
  const events: SourceEvent[] = [];
  const timestamp = GENESIS_TIMESTAMP + number * BLOCK_TIME_SECONDS;
  for (let logIndex = 0; logIndex < source.eventsPerBlock; logIndex++) {
    if (source.workload === 'erc20') events.push(erc20Event(random, pickIndex, logIndex));
    else if (source.workload === 'credits') events.push(creditEvent(random, pickIndex, logIndex));
    else
      events.push(
        creditLedgerEvent(random, () => addressName(pickIndex()), LEDGER_TREASURY, {
          seed,
          block: number,
          timestamp,
          logIndex,
        }),
      );
  }
  return {
    number,
    hash: blockHash(seed, number),
    parentHash: number === 0 ? null : parentHash,
    timestamp,
    events,
  };
}

/** Blocks `from..to` inclusive, canonical (no reorg windows). */
export function generateBlocks(source: GeneratorShape, from: number, to: number): Block[] {
  const blocks: Block[] = [];
  for (let number = from; number <= to; number++) blocks.push(generateBlock(source, number));
  return blocks;
}

/**
 * Address strings are made once per index and reused: a template literal yields a rope that
 * every Map lookup would flatten and hash anew, which real sources (JSON.parse) never produce.
 */
const addressNames: string[] = [];

export function addressName(index: number): string {
  let name = addressNames[index];
  if (name === undefined) {
    name = `0x${index.toString(16).padStart(40, '0')}`;
    // Flatten now (a Map lookup hashes the flat string once and caches the hash in it).
    new Map([[name, 0]]);
    addressNames[index] = name;
  }
  return name;
}

/**
 * 'uniform' draws every address equally often; 'skewed' draws low indexes far more often
 * (index = n·u³), like token holders, so a small set of hot accounts takes most transfers.
 */
function addressPicker(
  random: () => number,
  addresses: number,
  distribution: GeneratorShape['distribution'],
): () => number {
  if (distribution === 'skewed') return () => Math.floor(addresses * random() ** 3);
  return () => Math.floor(random() * addresses);
}

function creditEvent(random: () => number, pickIndex: () => number, logIndex: number): SourceEvent {
  const pick = () => addressName(pickIndex());
  const amount = () => 1 + Math.floor(random() * 1_000);
  const roll = random();
  if (roll < 0.3) {
    const recipients = [];
    const count = 1 + Math.floor(random() * 3);
    for (let i = 0; i < count; i++) recipients.push({ address: pick(), amount: amount() });
    return { name: 'distribution', payload: { recipients }, logIndex };
  }
  if (roll < 0.7) return { name: 'expense', payload: { address: pick(), amount: amount() }, logIndex };
  return { name: 'transfer', payload: { from: pick(), to: pick(), amount: amount() }, logIndex };
}

export const ZERO_ADDRESS = addressName(0);
const LEDGER_TREASURY = addressName(LEDGER_TREASURY_INDEX);

/**
 * The open-indexer-benchmark ERC20 stream: 90% Transfer (5% of them mints from the zero
 * address), 10% Approval. Values are uint256 decimal strings, as a decoder would give them.
 */
function erc20Event(random: () => number, pickIndex: () => number, logIndex: number): SourceEvent {
  // No closures per event: tsx (keepNames) names every one it creates, which cost ~3% of a run.
  const roll = random();
  if (roll < 0.9) {
    const from = roll < 0.045 ? ZERO_ADDRESS : addressName(1 + pickIndex());
    const to = addressName(1 + pickIndex());
    return { name: 'Transfer', payload: { from, to, value: erc20Value(random) }, logIndex };
  }
  const owner = addressName(1 + pickIndex());
  const spender = addressName(1 + pickIndex());
  return { name: 'Approval', payload: { owner, spender, value: erc20Value(random) }, logIndex };
}

/** A uint256 amount as a decimal string: 1..1e9 gwei. */
function erc20Value(random: () => number): string {
  return `${1 + Math.floor(random() * 1_000_000_000)}000000000`;
}

/**
 * The generator as a block source: the backfill (`blocks`) is available at once; after it, one
 * block every `liveBlockIntervalMs` (counted from when the backfill was reached), or nothing more
 * when the interval is 0.
 *
 * With `reorgs`, it behaves like a chain followed at its tip: a read stops at the next reorg tip
 * R (a multiple of `every`) and serves R's window as the orphaned branch; once a reader asks for
 * blocks after R, the chain has reorged and every block up to R is served canonical — so the
 * next block's parent hash no longer matches what the reader processed. Its head is the highest
 * block served, so everything read is inside the reorg threshold.
 */
export class GeneratorSource implements BlockSource {
  readonly finite: boolean;
  private readonly config: GeneratorSourceConfig;
  private readonly waker = new Waker();
  private liveStartedAt: number | null = null;
  /** Reorg tips at or below this have happened: their windows are served canonical. */
  private reorgedUpTo = 0;
  private servedHead = 0;

  constructor(config: GeneratorSourceConfig) {
    this.config = config;
    this.finite = config.liveBlockIntervalMs === 0;
  }

  async read(after: number, max: number): Promise<Block[]> {
    const head = this.headAfter(after);
    const from = Math.max(after + 1, 1); // the generator's first block is 1
    const to = Math.min(from + max - 1, head);
    const { reorgs } = this.config;
    if (reorgs === undefined) return generateBlocks(this.config, from, to);
    this.reorgedUpTo = Math.max(this.reorgedUpTo, Math.floor(after / reorgs.every) * reorgs.every);
    const tip = this.reorgedUpTo + reorgs.every;
    const last = Math.min(to, tip);
    // A finite stream's end is final: no reorg at or after its last block.
    const final = this.finite && tip >= this.config.blocks;
    const firstOrphan = final ? Number.POSITIVE_INFINITY : tip - reorgDepthAt(this.config, tip) + 1;
    const blocks: Block[] = [];
    for (let number = from; number <= last; number++) {
      blocks.push(
        number >= firstOrphan
          ? generateOrphanBlock(this.config, number, tip)
          : generateBlock(this.config, number),
      );
    }
    this.servedHead = Math.max(this.servedHead, last);
    return blocks;
  }

  head(): number {
    if (this.config.reorgs !== undefined) return this.servedHead;
    if (this.liveStartedAt === null) return this.config.blocks;
    return this.headAfter(this.config.blocks);
  }

  private headAfter(after: number): number {
    const { blocks, liveBlockIntervalMs } = this.config;
    if (liveBlockIntervalMs === 0 || after < blocks) return blocks;
    // Live: the first call past the backfill starts the clock (a resumed run continues from
    // where it is, as a chain's head would have moved on meanwhile).
    this.liveStartedAt ??= Date.now() - (after - blocks) * liveBlockIntervalMs;
    return blocks + Math.floor((Date.now() - this.liveStartedAt) / liveBlockIntervalMs);
  }

  waitForMore(ms: number): Promise<void> {
    const wait = this.config.liveBlockIntervalMs > 0 ? Math.min(ms, this.config.liveBlockIntervalMs) : ms;
    return this.waker.wait(wait);
  }

  wake(): void {
    this.waker.wake();
  }

  async close(): Promise<void> {
    this.waker.wake();
  }
}

function blockHash(seed: number, number: number): string {
  const a = mix(seed, number) >>> 0;
  const b = mix(a, number ^ 0x5bd1e995) >>> 0;
  return `0x${a.toString(16).padStart(8, '0')}${b.toString(16).padStart(8, '0')}${number.toString(16).padStart(16, '0')}`;
}

/** A 32-bit mix of two integers (murmur3's finaliser over a combined word). */
function mix(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b, 0xc2b2ae35)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A small seeded PRNG (mulberry32): the same seed, the same sequence, on every machine. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
