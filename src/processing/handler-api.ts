// The handler API of the Foundation's vertical slice: one entity, `AccountTotal`, reached through
// `context.account(address)`. The processing engine replaces this with entities generated from
// the project's schema (`context.<Entity>.get/set/…`); the shape of a handler stays the same.

import type { Block, SourceEvent } from '../sources/types.ts';

export interface AccountTotal {
  readonly id: string;
  credited: number;
  debited: number;
  events: number;
}

export interface HandlerContext {
  /** The address's running totals, created at zero on first use. Mutate it in place. */
  account(address: string): AccountTotal;
}

export type EventHandler = (args: { event: SourceEvent; block: Block; context: HandlerContext }) => void;

/** A handler module's default export: event name → handler. */
export type HandlerModule = Readonly<Record<string, EventHandler>>;

export function defineHandlers<const T extends HandlerModule>(handlers: T): T {
  return handlers;
}

export const ACCOUNT_TOTAL_ENTITY = 'AccountTotal';
