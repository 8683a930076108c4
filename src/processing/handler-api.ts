// The handler API users write against. A handler module does
//
//   import { createHandlers } from 'strata';
//   import schema from './schema.ts';
//
//   const handlers = createHandlers(schema);
//   handlers.onEvent<{ from: string; to: string; value: string }>('Transfer', async ({ event, context }) => {
//     const from = await context.Account.getOrCreate({ id: event.payload.from, balance: 0n });
//     context.Account.set({ ...from, balance: from.balance - BigInt(event.payload.value) });
//   });
//   export default handlers;
//
// Entity accessors (`context.Account`) and their row types are inferred from the schema value,
// so editors autocomplete fields without a code generator. Rows handed to handlers are frozen:
// change an entity by `set`-ting a new object.

import type { Logger } from '../logger.ts';
import type { RowOf, Schema } from '../schema/define-schema.ts';
import type { Block, SourceEvent } from '../sources/types.ts';
import type { Effect } from './effects.ts';
import type { OrderBy, WhereFilter } from './where-filter.ts';

export interface EntityOperations<Row> {
  /** The entity, or undefined when it does not exist. */
  get(id: string): Promise<Readonly<Row> | undefined>;
  /** The entity, or a STRATA_ERR_ENTITY_NOT_FOUND error (with `message` if given). */
  getOrThrow(id: string, message?: string): Promise<Readonly<Row>>;
  /** The entity if it exists; otherwise `entity` is set and returned. */
  getOrCreate(entity: Row): Promise<Readonly<Row>>;
  /** Creates or replaces the entity (validated against the schema here, not at write time). */
  set(entity: Row): void;
  /** Deletes the entity. "Unsafe": nothing checks that other entities still point at it. */
  deleteUnsafe(id: string): void;
  /**
   * Every entity matching all conditions: committed rows merged with this run's changes, ordered
   * by `orderBy` (fields, or `[field, 'desc']`), ties and the default by id.
   */
  getWhere(filter: WhereFilter<Row>, options?: { orderBy?: OrderBy<Row> }): Promise<Array<Readonly<Row>>>;
}

export type HandlerContext<S extends Schema> = {
  readonly [E in keyof S['declaration'] & string]: EntityOperations<RowOf<S, E>>;
} & {
  readonly log: Logger;
  /** The pipeline's `options` from the project file (frozen; part of the pipeline's fingerprint). */
  readonly options: Readonly<Record<string, unknown>>;
  /** True during the preload pass (reads only; writes are ignored). */
  readonly isPreload: boolean;
  /**
   * Runs an effect (see `createEffect`), or answers from its cache. `{ cache: false }` keeps this
   * call's output in memory only, even for an effect declared with `cache: true`.
   */
  effect<Input, Output>(
    effect: Effect<Input, Output>,
    input: Input,
    options?: { cache?: boolean },
  ): Promise<Output>;
};

export interface HandlerArgs<S extends Schema, Payload> {
  event: SourceEvent & { payload: Payload };
  block: Block;
  context: HandlerContext<S>;
}

export type EventHandler<S extends Schema, Payload = Record<string, unknown>> = (
  args: HandlerArgs<S, Payload>,
) => Promise<void> | void;

/** Brand that survives the module being loaded twice (e.g. through two resolution paths). */
const HANDLERS_BRAND = Symbol.for('strata.handlers');

export class HandlerRegistry<S extends Schema = Schema> {
  readonly [HANDLERS_BRAND] = true;
  readonly schema: S;
  /** Event name → handlers in registration order. */
  readonly handlers = new Map<string, Array<EventHandler<S, never>>>();

  constructor(schema: S) {
    this.schema = schema;
  }

  onEvent<Payload = Record<string, unknown>>(name: string, handler: EventHandler<S, Payload>): this {
    const list = this.handlers.get(name) ?? [];
    list.push(handler as EventHandler<S, never>);
    this.handlers.set(name, list);
    return this;
  }
}

export function createHandlers<S extends Schema>(schema: S): HandlerRegistry<S> {
  return new HandlerRegistry(schema);
}

export function isHandlerRegistry(value: unknown): value is HandlerRegistry {
  return (
    typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[HANDLERS_BRAND] === true
  );
}
