// Compact runtime shape ids (seed 003): the handle is a shape's durable external key (HTTP,
// storage, every process of a fleet); inside one process the routing indexes, logs and waiting
// readers are keyed by a small integer minted here. An id is minted exactly once per handle per
// process lifetime and never persisted — a reconnecting client finds the id its handle already
// has (re-minting on reconnect broke lookups and leaked in the design's source).

export class ShapeIds {
  private readonly byHandle = new Map<string, number>();
  private readonly handles: Array<string | undefined> = [];

  /** The handle's id, minted on first sight. */
  idFor(handle: string): number {
    let id = this.byHandle.get(handle);
    if (id === undefined) {
      id = this.handles.length;
      this.handles.push(handle);
      this.byHandle.set(handle, id);
    }
    return id;
  }

  /** The id of a handle seen before, without minting one. */
  lookup(handle: string): number | undefined {
    return this.byHandle.get(handle);
  }

  handleOf(id: number): string | undefined {
    return this.handles[id];
  }

  /** For logs: the handle, or `unknown, id: N` when this process has none for the id. */
  describe(id: number): string {
    return this.handles[id] ?? `unknown, id: ${id}`;
  }

  /** How many ids were minted (they are never reused: a dropped shape's id stays retired). */
  get minted(): number {
    return this.handles.length;
  }
}
