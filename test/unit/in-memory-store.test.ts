// The InMemoryStore's reorg undo, against a model. Random batches of sets and deletes (all inside
// the reorg threshold) over a few ids, with commits, drops of committed (all, or down to a few
// objects) and loaded rows, and
// rollbacks to a random recent checkpoint — of the last batch only (`undoLastBatchAbove`) or of
// anything uncommitted (`rollBackTo`). After every step:
//  - every id reads as the model's state at the processed checkpoint (the store's change, else the
//    database's row as of the committed checkpoint);
//  - the changes above the committed checkpoint the store keeps (latest and overwritten) are
//    exactly the model's, with their values: what the writer's history rows are built from;
//  - the last batch's collected changes are exactly the model's changes of that batch (while it is
//    held: not sent, so not committed).

import { describe, expect, it } from 'vitest';
import { decodeChanges, setIds } from '../../src/pipeline/change-codec.ts';
import {
  collectBatchChanges,
  collectBatchChangesInTurns,
  collectUncommittedChanges,
} from '../../src/processing/collect-changes.ts';
import {
  type EntityStore,
  InMemoryStore,
  LOADED_FROM_DB,
  type StoredChange,
} from '../../src/processing/in-memory-store.ts';
import { defineSchema } from '../../src/schema/define-schema.ts';
import { t } from '../../src/schema/fields.ts';
import { mulberry32 } from '../../src/sources/generator.ts';

/** The ids the field index finds for `values` of the Item's value field. */
function idsWithValue(table: EntityStore, values: unknown[]): string[] {
  return table.rowsWithValue('value', values, () => true)!.map((row) => row.id as string);
}

const schema = defineSchema({ Item: { fields: { id: t.text(), value: t.integer() } } });
const IDS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];

type Value = number | null; // null: absent
type State = Map<string, Value>;

class Model {
  /** State after each checkpoint (index = checkpoint; 0 = before the first). */
  states: State[];
  /** Ids changed at each checkpoint. */
  changed: Array<Set<string>> = [new Set()];

  constructor(initial: State) {
    this.states = [initial];
  }

  get processed(): number {
    return this.states.length - 1;
  }

  advance(changes: Array<[string, Value]>): void {
    const state = new Map(this.states[this.processed]!);
    const ids = new Set<string>();
    for (const [id, value] of changes) {
      state.set(id, value);
      ids.add(id);
    }
    this.states.push(state);
    this.changed.push(ids);
  }

  rewind(checkpoint: number): void {
    this.states.length = checkpoint + 1;
    this.changed.length = checkpoint + 1;
  }
}

function storedValue(change: StoredChange): Value {
  return change.kind === 'set' ? Number(change.row.value) : null;
}

function runSeed(seed: number): void {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const initial: State = new Map(IDS.map((id) => [id, random() < 0.5 ? Math.floor(random() * 100) : null]));
  const model = new Model(initial);
  const store = new InMemoryStore(schema);
  const table = store.table('Item');
  let committed = 0;
  let lastBatch: { from: number } | null = null;
  const database = () => model.states[committed]!;

  const check = (step: string) => {
    const at = model.states[model.processed]!;
    for (const id of IDS) {
      const change = table.current(id);
      const seen = change === undefined ? database().get(id)! : storedValue(change);
      expect(seen, `${step}: ${id} at checkpoint ${model.processed}`).toBe(at.get(id));
    }
    const kept = table.keptChanges().filter(({ change }) => change.checkpointId > committed);
    const keptKeys = kept
      .map(({ id, change }) => `${id}@${change.checkpointId}=${storedValue(change)}`)
      .sort();
    const expected: string[] = [];
    for (let cp = committed + 1; cp <= model.processed; cp++) {
      for (const id of model.changed[cp]!) expected.push(`${id}@${cp}=${model.states[cp]!.get(id)}`);
    }
    expect(keptKeys, `${step}: kept changes`).toEqual(expected.sort());
    // The field index (built at the first check, then kept up through every mutation above)
    // finds exactly the rows a scan finds, for values held and one that is not.
    const held = [...table.rows()];
    for (const value of [...new Set(held.map((row) => row.value)), -1]) {
      const scanned = held.filter((row) => row.value === value).map((row) => row.id);
      expect(idsWithValue(table, [value]).sort(), `${step}: ids with value ${value}`).toEqual(scanned.sort());
    }
    // A partial index (rows whose id is before 'e', as a filter's other condition) likewise.
    for (const value of new Set(held.map((row) => row.value))) {
      const scanned = held
        .filter((row) => row.value === value && (row.id as string) < 'e')
        .map((row) => row.id);
      const found = table.rowsWithValue('value', [value], (row) => (row.id as string) < 'e', 'id<e')!;
      expect(found.map((row) => row.id).sort(), `${step}: partial index, value ${value}`).toEqual(
        scanned.sort(),
      );
    }
    if (lastBatch === null) return;
    const { encoded, count } = collectBatchChanges(store, true);
    expect(count).toBe(store.lastBatchChangeCount());
    const part = decodeChanges(encoded).Item;
    const history = (part?.history ?? '')
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        const [id, value, cp, kind] = line.split('\t');
        return `${id}@${cp}=${kind === 'd' ? null : Number(value)}`;
      })
      .sort();
    const batchChanges: string[] = [];
    const finalIds = new Set<string>();
    for (let cp = lastBatch.from; cp <= model.processed; cp++) {
      for (const id of model.changed[cp]!) {
        batchChanges.push(`${id}@${cp}=${model.states[cp]!.get(id)}`);
        finalIds.add(id);
      }
    }
    expect(history, `${step}: the last batch's history lines`).toEqual(batchChanges.sort());
    const collected = [
      ...(part === undefined ? [] : setIds(part)),
      ...(part?.deletes ?? []).map(([, id]) => id),
    ].sort();
    expect(collected, `${step}: the last batch's ids`).toEqual([...finalIds].sort());
  };

  for (let step = 0; step < 120; step++) {
    const roll = random();
    if (roll < 0.5) {
      // A batch of 1..4 blocks, each changing 0..3 ids; ids not held are loaded first.
      const from = model.processed + 1;
      store.beginBatch(from);
      for (let block = 0; block < 1 + Math.floor(random() * 4); block++) {
        const cp = model.processed + 1;
        const changes: Array<[string, Value]> = [];
        for (let n = Math.floor(random() * 4); n > 0; n--) {
          const id = pick(IDS);
          if (!table.has(id) && random() < 0.7) {
            const row = database().get(id)!;
            table.putLoaded(id, row === null ? null : { id, value: row });
          }
          const value = random() < 0.25 ? null : Math.floor(random() * 1000);
          table.apply(
            id,
            value === null
              ? { kind: 'delete', checkpointId: cp }
              : { kind: 'set', row: { id, value }, checkpointId: cp },
            true,
          );
          changes.push([id, value]);
        }
        model.advance(changes);
      }
      lastBatch = { from };
      check(`batch from ${from}`);
    } else if (roll < 0.65) {
      // The last batch is held (not sent, so not committed) until it is sent.
      if (lastBatch !== null && random() < 0.5) lastBatch = null;
      const highest = lastBatch === null ? model.processed : lastBatch.from - 1;
      committed = committed + Math.floor(random() * (highest - committed + 1));
      // All committed changes, or only the least recently written down to a few objects.
      store.dropCommitted(committed, random() < 0.5 ? 0 : Math.floor(random() * 6));
      check(`commit ${committed}`);
    } else if (roll < 0.7) {
      store.dropLoaded();
      expect(table.keptChanges().some(({ change }) => change.checkpointId === LOADED_FROM_DB)).toBe(false);
      check('drop loaded');
    } else if (model.processed > committed) {
      const lowest = Math.max(committed, model.processed - 8);
      const target = lowest + Math.floor(random() * (model.processed - lowest));
      if (lastBatch !== null && target >= lastBatch.from - 1 && random() < 0.6) {
        store.undoLastBatchAbove(target);
        model.rewind(target);
        if (target < lastBatch.from) lastBatch = null;
        check(`undo last batch above ${target}`);
      } else {
        store.rollBackTo(target);
        model.rewind(target);
        lastBatch = null;
        check(`roll back to ${target}`);
      }
    }
  }
}

describe('InMemoryStore reorg undo', () => {
  it('the field index follows rows updated in place within a batch', () => {
    const store = new InMemoryStore(schema);
    const table = store.table('Item');
    store.beginBatch(1);
    table.applySet('a', { id: 'a', value: 1 }, 1, 'e', 0, false);
    expect(idsWithValue(table, [1])).toEqual(['a']);
    table.applySet('a', { id: 'a', value: 2 }, 1, 'e', 1, false); // same batch: updated in place
    expect(idsWithValue(table, [1])).toEqual([]);
    expect(idsWithValue(table, [2, 3])).toEqual(['a']);
    store.undoBatch();
    expect(idsWithValue(table, [2])).toEqual([]);
  });

  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) {
    it(`matches the model (seed ${seed})`, () => runSeed(seed));
  }
});

// Outside the reorg threshold (a backfill), a later set of an id in the same batch updates its
// change in place and the batch's changes are read without a lookup per id (`touchedNow`). Random
// batches of reads and sets (some repeated), deletes, sets after deletes, loads, drops between
// batches and failed batches (undone): each batch's encoded changes are exactly its final value
// per id, and each id then reads as that value.
function runBackfillSeed(seed: number): void {
  const random = mulberry32(seed);
  const store = new InMemoryStore(schema);
  const table = store.table('Item');
  let checkpoint = 0;
  for (let batch = 0; batch < 60; batch++) {
    const from = checkpoint + 1;
    store.beginBatch(from);
    const final = new Map<string, Value>();
    for (let block = 0; block < 1 + Math.floor(random() * 4); block++) {
      checkpoint += 1;
      for (let n = Math.floor(random() * 6); n > 0; n--) {
        const id = IDS[Math.floor(random() * IDS.length)]!;
        // A handler's read before its write (getOrCreate, then set), sometimes of another id.
        if (random() < 0.6) table.current(random() < 0.8 ? id : IDS[Math.floor(random() * IDS.length)]!);
        if (!table.has(id) && random() < 0.3) table.putLoaded(id, random() < 0.5 ? null : { id, value: -1 });
        if (random() < 0.2) {
          table.apply(id, { kind: 'delete', checkpointId: checkpoint }, false);
          final.set(id, null);
        } else {
          const value = Math.floor(random() * 1000);
          table.applySet(id, { id, value }, checkpoint, 'E', n, false);
          final.set(id, value);
        }
      }
    }
    if (random() < 0.15) {
      // A failed batch: undone, and the next one starts where this one did.
      store.undoBatch();
      checkpoint = from - 1;
      continue;
    }
    const part = decodeChanges(collectBatchChanges(store, false).encoded).Item;
    const collected = new Map<string, Value>();
    for (const line of part === undefined || part.rows === '' ? [] : part.rows.slice(0, -1).split('\n')) {
      const [id, value] = line.split('\t');
      collected.set(id!, Number(value));
    }
    for (const [, id] of part?.deletes ?? []) collected.set(id, null);
    expect(collected, `seed ${seed}, batch from ${from}`).toEqual(final);
    for (const [id, value] of final) {
      const change = table.current(id)!;
      expect(
        change.kind === 'set' ? change.row.value : null,
        `seed ${seed}, ${id} after batch from ${from}`,
      ).toBe(value);
    }
    // Committed at once; sometimes dropped down to a few (the next batch's ids may be gone).
    if (random() < 0.4) store.dropCommitted(checkpoint, random() < 0.5 ? 0 : 3);
    if (random() < 0.2) store.dropLoaded();
  }
}

describe('a batch outside the reorg threshold', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`encodes each id's final change (seed ${seed})`, () => runBackfillSeed(seed));
  }
});

/** A store of accounts (read by handlers) and transfers (never read). */
function ledgerStore() {
  const ledger = defineSchema({
    Account: { fields: { id: t.text(), value: t.integer() } },
    Transfer: { fields: { id: t.text(), value: t.integer() } },
  });
  const store = new InMemoryStore(ledger);
  return { store, accounts: store.table('Account'), transfers: store.table('Transfer') };
}

describe('InMemoryStore capacity', () => {
  it('drops the rows of entities no handler reads before any row that may be read again', () => {
    const { store, accounts, transfers } = ledgerStore();
    store.beginBatch(1);
    for (let i = 0; i < 40; i++) {
      accounts.current(`a${i}`); // what a handler's get/getOrCreate does first
      accounts.applySet(`a${i}`, { id: `a${i}`, value: i }, 1, 'Transfer', i, false);
      transfers.applySet(`t${i}`, { id: `t${i}`, value: i }, 1, 'Transfer', i, false);
    }
    expect([accounts.isRead, transfers.isRead]).toEqual([true, false]);
    // 80 held, keep 50: the 30 go from the transfers (never loaded back), none from the accounts.
    expect(store.dropCommitted(1, 50)).toBe(30);
    expect([accounts.size(), transfers.size()]).toEqual([40, 10]);
    // Past what the unread entity holds, the rest comes from the read ones.
    expect(store.dropCommitted(1, 30)).toBe(20);
    expect([accounts.size(), transfers.size()]).toEqual([30, 0]);
  });

  it('drops the committed rows of entities no handler reads at a commit, and nothing else', () => {
    const { store, accounts, transfers } = ledgerStore();
    transfers.markComplete(); // its table was empty
    for (const checkpoint of [1, 2]) {
      store.beginBatch(checkpoint);
      for (let i = 0; i < 10; i++) {
        const id = `${checkpoint}-${i}`;
        accounts.current(id); // what a handler's getOrCreate does first
        accounts.applySet(id, { id, value: i }, checkpoint, 'Transfer', i, false);
        transfers.applySet(id, { id, value: i }, checkpoint, 'Transfer', i, false);
      }
    }
    // Batch 1 committed: its 10 transfers go; batch 2's stay (uncommitted), and every account.
    expect(store.dropCommittedAppends(1)).toBe(10);
    expect([accounts.size(), transfers.size()]).toEqual([20, 10]);
    // The store no longer holds every transfer: a later read of one must ask the database.
    expect(transfers.isComplete).toBe(false);
    // A re-send holds batch 2's accounts and transfers.
    const resent = decodeChanges(collectUncommittedChanges(store, 1, false).encoded);
    expect([resent.Account?.checkpoints.length, resent.Transfer?.checkpoints.length]).toEqual([10, 10]);
  });

  it('drops from an entity held whole last, and only while the store holds more than it spares', () => {
    const ledger = defineSchema({
      Account: { fields: { id: t.text(), value: t.integer() } },
      Token: { fields: { id: t.text(), value: t.integer() } },
    });
    const store = new InMemoryStore(ledger);
    const accounts = store.table('Account');
    const tokens = store.table('Token');
    accounts.markComplete(); // its table was empty; Token's was not
    store.beginBatch(1);
    for (let i = 0; i < 40; i++) {
      for (const [table, prefix] of [
        [accounts, 'a'],
        [tokens, 't'],
      ] as const) {
        table.current(`${prefix}${i}`);
        table.applySet(`${prefix}${i}`, { id: `${prefix}${i}`, value: i }, 1, 'Mint', i, false);
      }
    }
    expect([accounts.isComplete, tokens.isComplete]).toEqual([true, false]);
    // 80 held, keep 30, spare the whole entity up to 50: Token gives all it has, Account nothing.
    expect(store.dropCommitted(1, 30, 50)).toBe(40);
    expect([accounts.size(), tokens.size(), accounts.isComplete]).toEqual([40, 0, true]);
    // Above what is spared, it gives rows too — and is no longer held whole.
    expect(store.dropCommitted(1, 30, 35)).toBe(10);
    expect([accounts.size(), accounts.isComplete]).toEqual([30, false]);
  });
});

describe('an entity held whole', () => {
  it('stops being whole when the store forgets any id: dropped, rolled back or cleared', () => {
    const store = new InMemoryStore(schema);
    const items = store.table('Item');
    const fill = (checkpoint: number) => {
      store.beginBatch(checkpoint);
      items.applySet(`i${checkpoint}`, { id: `i${checkpoint}`, value: checkpoint }, checkpoint, 'E', 0, true);
    };
    const forgets: Array<[string, () => void]> = [
      ['dropCommitted', () => store.dropCommitted(1)],
      ['rollBackTo', () => store.rollBackTo(0)],
      ['undoBatch', () => store.undoBatch()],
      ['clear', () => store.clear()],
    ];
    for (const [name, forget] of forgets) {
      store.clear();
      items.markComplete();
      fill(1);
      expect(items.isComplete, name).toBe(true); // writes keep it whole
      forget();
      expect(items.isComplete, name).toBe(false);
    }
  });
});

describe('collectBatchChangesInTurns', () => {
  it('encodes the same bytes as collectBatchChanges, letting the event loop run between slices', async () => {
    const store = new InMemoryStore(schema);
    const items = store.table('Item');
    store.beginBatch(1);
    for (let i = 0; i < 200_000; i++) items.applySet(`i${i}`, { id: `i${i}`, value: i }, 1, 'E', i, false);
    const whole = collectBatchChanges(store, false);
    let turns = 0;
    const ticking = setInterval(() => turns++, 0);
    const inTurns = await collectBatchChangesInTurns(store, false, 1);
    clearInterval(ticking);
    expect(inTurns.count).toBe(200_000);
    expect(Buffer.concat(inTurns.encoded).equals(Buffer.concat(whole.encoded))).toBe(true);
    // A timer ran while it encoded: the thread was not held for the whole batch.
    expect(turns).toBeGreaterThan(0);
  });
});
