// What every source yields: blocks of events, in order. See ARCHITECTURE.md's vocabulary.

export interface SourceEvent {
  name: string;
  payload: Record<string, unknown>;
  logIndex: number;
}

export interface Block {
  number: number;
  /** null for streams that cannot reorg. */
  hash: string | null;
  parentHash: string | null;
  /** Unix seconds. */
  timestamp: number;
  events: SourceEvent[];
}
