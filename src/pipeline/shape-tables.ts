// Which entity tables have live shapes, per pipeline: the writer captures their changes for the
// materializer, and the main thread keeps the same set so a restarted writer goes on capturing.

/**
 * Shape logs are compacted once every this many transactions of a pipeline (by the writer in
 * `strata.shape_log`, by the materializer in memory) — or every `retention`, when that is fewer —
 * down to the configured retention.
 */
export const SHAPE_LOG_COMPACT_EVERY = 256;

/** The transactions compaction drops when transaction `sequence` commits (null: none this time). */
export function shapeLogCompaction(sequence: number, retention: number): number | null {
  const every = Math.min(SHAPE_LOG_COMPACT_EVERY, retention);
  if (sequence % every !== 0 || sequence <= retention) return null;
  return sequence - retention;
}

export class ShapeTables {
  private readonly tables = new Map<string, Set<string>>();

  constructor(initial: Record<string, string[]> = {}) {
    for (const [pipeline, entities] of Object.entries(initial)) this.tables.set(pipeline, new Set(entities));
  }

  add(pipeline: string, entity: string): void {
    let entities = this.tables.get(pipeline);
    if (entities === undefined) {
      entities = new Set();
      this.tables.set(pipeline, entities);
    }
    entities.add(entity);
  }

  /** Whether the pipeline has any table with shapes. */
  has(pipeline: string): boolean {
    return (this.tables.get(pipeline)?.size ?? 0) > 0;
  }

  entities(pipeline: string): ReadonlySet<string> {
    return this.tables.get(pipeline) ?? new Set();
  }

  /** As plain data (a restarted writer's start data). */
  snapshot(): Record<string, string[]> {
    return Object.fromEntries([...this.tables].map(([pipeline, entities]) => [pipeline, [...entities]]));
  }
}
