// Random event streams for the model test, and the plain fold that says what the tables must hold
// afterwards. The fold mirrors test/fixtures/model/handlers.ts with Maps and nothing of Strata.

import { writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import { mulberry32 } from '../../src/sources/generator.ts';

export interface ModelItem {
  owner: string;
  value: bigint;
  label: string;
  tags: string[];
  meta: unknown;
  price: string;
  active: boolean;
  updatedAt: number;
  version: number;
}

export interface StreamBlock {
  number: number;
  timestamp: number;
  events: Array<{ name: string; payload: Record<string, unknown> }>;
}

/** Text that COPY and JSON must carry intact: tabs, newlines, backslashes, quotes, braces, unicode. */
const LABELS = [
  'plain',
  'tab\there',
  'new\nline',
  'back\\slash',
  'quote"d',
  "it's",
  'unicode ✓ 漢字',
  '',
  '{brace,comma}',
  'NULL',
  '\\N',
  'cr\rlf',
];
const PRICES = ['0', '12.50', '-0.001', '100', '99999999999999999999.123456789'];

export function randomStream(seed: number, blocks: number): StreamBlock[] {
  const random = mulberry32(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const itemId = () => `item-${Math.floor(random() * 60)}`;
  const owner = () => `owner-${Math.floor(random() * 5)}`;
  const stream: StreamBlock[] = [];
  for (let number = 1; number <= blocks; number++) {
    const events: StreamBlock['events'] = [];
    const count = Math.floor(random() * 6);
    for (let i = 0; i < count; i++) {
      const roll = random();
      if (roll < 0.35) {
        const label = pick(LABELS);
        events.push({
          name: 'put',
          payload: {
            id: itemId(),
            owner: owner(),
            value: String(Math.floor(random() * 2001) - 1000),
            label,
            tags: [pick(LABELS), pick(LABELS)],
            meta:
              random() < 0.3
                ? null
                : { note: label, n: Math.floor(random() * 10), nested: { list: [label, 1, true] } },
            price: pick(PRICES),
          },
        });
      } else if (roll < 0.55)
        events.push({ name: 'bump', payload: { id: itemId(), by: String(Math.floor(random() * 50) - 10) } });
      else if (roll < 0.68) events.push({ name: 'remove', payload: { id: itemId() } });
      else if (roll < 0.78) {
        const min = Math.floor(random() * 1000) - 600;
        events.push({ name: 'sweep', payload: { owner: owner(), min: String(min), max: String(min + 500) } });
      } else if (roll < 0.86)
        events.push({ name: 'touchMany', payload: { ids: [itemId(), itemId(), itemId(), 'item-none'] } });
      else events.push({ name: 'seen', payload: { owner: owner() } });
    }
    stream.push({ number: number * 2, timestamp: 1_700_000_000 + number * 12, events }); // gaps in numbers are fine
  }
  return stream;
}

export function writeStream(file: string, stream: StreamBlock[]): void {
  writeFileSync(file, `${stream.map((block) => JSON.stringify(block)).join('\n')}\n`);
}

export function foldStream(stream: StreamBlock[]): {
  items: Map<string, ModelItem>;
  owners: Map<string, number>;
} {
  const items = new Map<string, ModelItem>();
  const owners = new Map<string, number>();
  for (const block of stream) {
    for (const { name, payload: p } of block.events) {
      if (name === 'put') {
        const existing = items.get(p.id as string);
        items.set(p.id as string, {
          owner: p.owner as string,
          value: BigInt(p.value as string),
          label: p.label as string,
          tags: p.tags as string[],
          meta: p.meta,
          price: p.price as string,
          active: true,
          updatedAt: block.timestamp * 1000,
          version: (existing?.version ?? 0) + 1,
        });
      } else if (name === 'bump') {
        const item = items.get(p.id as string);
        if (item !== undefined)
          items.set(p.id as string, {
            ...item,
            value: item.value + BigInt(p.by as string),
            version: item.version + 1,
          });
      } else if (name === 'remove') items.delete(p.id as string);
      else if (name === 'sweep') {
        const min = BigInt(p.min as string);
        const max = BigInt(p.max as string);
        for (const [id, item] of items) {
          if (item.owner === p.owner && item.value >= min && item.value < max)
            items.set(id, { ...item, active: !item.active, version: item.version + 1 });
        }
      } else if (name === 'touchMany') {
        for (const id of new Set(p.ids as string[])) {
          const item = items.get(id);
          if (item !== undefined) items.set(id, { ...item, version: item.version + 1 });
        }
      } else if (name === 'seen') owners.set(p.owner as string, (owners.get(p.owner as string) ?? 0) + 1);
    }
  }
  return { items, owners };
}

/** The tables (read through `query`) hold exactly the fold of `stream`, and progress is at its end. */
export async function expectFold(
  stream: StreamBlock[],
  query: <Row>(sql: string) => Promise<Row[]>,
  pipeline = 'model',
): Promise<void> {
  const expected = foldStream(stream);
  const rows = await query<Record<string, unknown>>(`SELECT * FROM pipeline_${pipeline}."Item"`);
  const actual = new Map<string, ModelItem>(
    rows.map((row) => [
      row.id as string,
      {
        owner: row.owner as string,
        value: BigInt(row.value as string),
        label: row.label as string,
        tags: row.tags as string[],
        meta: row.meta,
        price: row.price as string,
        active: row.active as boolean,
        updatedAt: (row.updatedAt as Date).getTime(),
        version: row.version as number,
      },
    ]),
  );
  expect(actual).toEqual(expected.items);
  const owners = await query<{ id: string; seen: number }>(
    `SELECT id, seen FROM pipeline_${pipeline}."Owner"`,
  );
  expect(new Map(owners.map((row) => [row.id, row.seen]))).toEqual(expected.owners);
  const [progress] = await query<{ committed_block: string; events_processed: string }>(
    `SELECT committed_block, events_processed FROM strata.pipelines WHERE name = '${pipeline}'`,
  );
  expect(Number(progress!.committed_block)).toBe(stream[stream.length - 1]!.number);
  expect(Number(progress!.events_processed)).toBe(
    stream.reduce((sum, block) => sum + block.events.length, 0),
  );
}
