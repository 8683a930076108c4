// The deterministic generator source: block N of a given seed is a pure function of (seed, N),
// so a pipeline resumed at any checkpoint sees exactly the stream an uninterrupted run saw, and
// tests can fold the same stream into a reference result without running Strata.

import type { GeneratorSourceConfig } from '../config.ts';
import type { Block, SourceEvent } from './types.ts';

/** 2025-01-01T00:00:00Z; block N is stamped 12 s after block N-1, like an Ethereum slot. */
const GENESIS_TIMESTAMP = 1_735_689_600;
const BLOCK_TIME_SECONDS = 12;

export type GeneratorShape = Pick<
  GeneratorSourceConfig,
  'workload' | 'seed' | 'eventsPerBlock' | 'addresses'
>;

export function generateBlock(source: GeneratorShape, number: number): Block {
  const random = mulberry32(mix(source.seed, number));
  const events: SourceEvent[] = [];
  for (let logIndex = 0; logIndex < source.eventsPerBlock; logIndex++) {
    events.push(creditEvent(random, source.addresses, logIndex));
  }
  return {
    number,
    hash: blockHash(source.seed, number),
    parentHash: number === 0 ? null : blockHash(source.seed, number - 1),
    timestamp: GENESIS_TIMESTAMP + number * BLOCK_TIME_SECONDS,
    events,
  };
}

/** Blocks `from..to` inclusive. */
export function generateBlocks(source: GeneratorShape, from: number, to: number): Block[] {
  const blocks: Block[] = [];
  for (let number = from; number <= to; number++) blocks.push(generateBlock(source, number));
  return blocks;
}

export function addressName(index: number): string {
  return `0x${index.toString(16).padStart(40, '0')}`;
}

function creditEvent(random: () => number, addresses: number, logIndex: number): SourceEvent {
  const pick = () => addressName(Math.floor(random() * addresses));
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

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
