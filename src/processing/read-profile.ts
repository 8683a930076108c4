// What prefetch learns about a pipeline's reads ('prefetch' and 'auto' load strategies): which
// payload fields of an event name the rows its handlers read, learned from reads that missed the
// store, so the next batches load those rows before any handler runs.
//  - ids: `get(payload.to)`, or an id made of a payload field and a constant suffix
//    (`get(`${payload.ref}:0`)`);
//  - getWhere filters whose `_eq` value is a payload field (`{ address: { _eq: payload.from },
//    amountRemaining: { _gt: 0n } }`): the batch's values load in one `= ANY` query.
// Reads it cannot name this way (ids computed otherwise) stay misses, which send `auto` back to
// the two-pass preload.

import type { EntityDescription } from '../schema/define-schema.ts';
import type { Block, SourceEvent } from '../sources/types.ts';
import { lookupCondition, type ParsedFilter, parseFilter } from './where-filter.ts';

/** Longest constant suffix of an id learned after a payload value (`:0`, `-approval`). */
const MAX_SUFFIX = 16;
/** Shortest payload value an id may extend with a suffix (short values match ids by chance). */
const MIN_PREFIX = 4;

interface FilterPlan {
  entity: EntityDescription;
  field: string;
  /** The filter's other conditions, as a filter object. */
  rest: Record<string, Record<string, unknown>>;
  payloadFields: Set<string>;
}

export interface PredictedReads {
  ids: Map<string, Set<string>>;
  filters: ParsedFilter[];
}

export class ReadProfile {
  /** event name → entity → payload field → id suffixes ('' : the value itself). */
  private readonly ids = new Map<string, Map<string, Map<string, Set<string>>>>();
  /** event name → (entity, field, other conditions) → plan. */
  private readonly filters = new Map<string, Map<string, FilterPlan>>();

  get empty(): boolean {
    return this.ids.size === 0 && this.filters.size === 0;
  }

  clear(): void {
    this.ids.clear();
    this.filters.clear();
  }

  learnId(event: SourceEvent, entity: string, id: string): void {
    for (const [field, value] of Object.entries(event.payload)) {
      if (typeof value !== 'string') continue;
      let suffix: string;
      if (value === id) suffix = '';
      else if (
        value.length >= MIN_PREFIX &&
        id.length > value.length &&
        id.length - value.length <= MAX_SUFFIX &&
        id.startsWith(value)
      )
        suffix = id.slice(value.length);
      else continue;
      const byEntity = getOrSet(this.ids, event.name, () => new Map<string, Map<string, Set<string>>>());
      const byField = getOrSet(byEntity, entity, () => new Map<string, Set<string>>());
      getOrSet(byField, field, () => new Set<string>()).add(suffix);
    }
  }

  learnFilter(event: SourceEvent, filter: ParsedFilter): void {
    const lookup = lookupCondition(filter);
    if (lookup === null || lookup.values.length !== 1) return;
    const [value] = lookup.values;
    for (const [payloadField, payloadValue] of Object.entries(event.payload)) {
      if (payloadValue !== value) continue;
      const plans = getOrSet(this.filters, event.name, () => new Map<string, FilterPlan>());
      const plan = getOrSet(plans, `${filter.entity.name}.${lookup.field}?${lookup.restKey}`, () => {
        const rest: Record<string, Record<string, unknown>> = {};
        for (const condition of lookup.rest) {
          const operators: Record<string, unknown> = rest[condition.column.name] ?? {};
          operators[condition.operator] = condition.value;
          rest[condition.column.name] = operators;
        }
        return { entity: filter.entity, field: lookup.field, rest, payloadFields: new Set<string>() };
      });
      plan.payloadFields.add(payloadField);
    }
  }

  /** The ids and filters the batch's handlers will read, as far as the profile knows. */
  predict(blocks: readonly Block[]): PredictedReads {
    const ids = new Map<string, Set<string>>();
    const filters = new Map<string, ParsedFilter>();
    // Per event name, once per batch: the steps to run for each of its events (the per-event loop
    // below then allocates nothing but what it adds).
    const steps = new Map<string, Array<(payload: Record<string, unknown>) => void>>();
    for (const [eventName, byEntity] of this.ids) {
      const list = getOrSet(steps, eventName, () => []);
      for (const [entity, byField] of byEntity) {
        const wanted = getOrSet(ids, entity, () => new Set<string>());
        for (const [field, suffixes] of byField) {
          const all = [...suffixes];
          list.push((payload) => {
            const value = payload[field];
            if (typeof value === 'string') for (const suffix of all) wanted.add(value + suffix);
          });
        }
      }
    }
    for (const [eventName, plans] of this.filters) {
      const list = getOrSet(steps, eventName, () => []);
      for (const plan of plans.values()) {
        const payloadFields = [...plan.payloadFields];
        list.push((payload) => {
          for (const payloadField of payloadFields) {
            const value = payload[payloadField];
            if (typeof value !== 'string') continue;
            const filter = { ...plan.rest, [plan.field]: { ...plan.rest[plan.field], _eq: value } };
            try {
              const parsed = parseFilter(plan.entity, filter);
              filters.set(parsed.key, parsed);
            } catch {
              // Not a value of that field's type: the handler's own read reports what it must.
            }
          }
        });
      }
    }
    for (const block of blocks) {
      for (const event of block.events) {
        const list = steps.get(event.name);
        if (list !== undefined) for (const step of list) step(event.payload);
      }
    }
    return { ids, filters: [...filters.values()] };
  }
}

function getOrSet<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}
