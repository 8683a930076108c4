// `GET /v1/shape` and `DELETE /v1/shape`: live shapes over Electric's HTTP sync protocol, as the
// official `@electric-sql/client` 1.5 checks it (docs/shapes.md; ../shared/reference/electric-
// client-1.5.md). `offset=-1` answers a consistent snapshot — whole with up-to-date, or, when
// large, its first chunk and the offset `0_<n>` of the next; `<tx>_<op>` with its handle answers
// the log after it; `live=true` holds the request until the shape changes
// (20 s by default, below the client's 45 s watchdog) and then answers up-to-date with a fresh
// cursor. An unknown or rotated handle, or an offset the log cannot serve, answers 409
// must-refetch with a handle the client has not used.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { StrataError } from '../../errors.ts';
import type { ShapeInfo } from '../../materializer/materializer-actor.ts';
import type { ShapeDefinition } from '../../materializer/shape-definition.ts';
import { parseChunkOffset, type SnapshotChunk } from '../../materializer/snapshot-chunks.ts';
import { answerUnowned, forwardToOwner, isForwarded, type ShapeRoute } from '../shape-forwarding.ts';

export interface ShapeBackend {
  open(definition: ShapeDefinition): Promise<ShapeInfo>;
  info(handle: string): Promise<ShapeInfo | null>;
  drop(handle: string): Promise<boolean>;
  /** The first chunk of a snapshot of the shape. */
  firstSnapshotChunk(info: ShapeInfo): Promise<SnapshotChunk>;
  /** A further chunk of a snapshot an earlier answer named; null once it is gone. */
  snapshotChunk(info: ShapeInfo, sequence: number, chunk: number): SnapshotChunk | null;
  read(
    handle: string,
    offset: string,
    limit: number,
  ): Promise<{ messages: string[]; offset: string; processed: number } | null>;
  /** Waits for the shape's log to grow (see LiveWait). */
  waitForChange(handle: string, timeoutMs: number): LiveWait;
  waitForProcessed(pipeline: string, sequence: number, timeoutMs: number): Promise<boolean>;
}

/**
 * A live request's wait: `changed` resolves with when the change reached the main thread (ms,
 * performance.now()), or with null after the timeout or once `cancel` is called. Not an
 * AbortSignal: one per long-poll (with `AbortSignal.any` and the DOMException an abort makes) was
 * ~8% of the main thread's time with 1,000 clients following shapes (bench/shapes).
 */
export interface LiveWait {
  changed: Promise<number | null>;
  cancel(): void;
}

export interface ShapeRouteOptions {
  backend: ShapeBackend;
  /**
   * In a fleet, where a table's shapes are served (src/http/shape-forwarding.ts); absent: here.
   * `forwarded`: the request already came from another process.
   */
  locate?: (table: string, forwarded: boolean) => Promise<ShapeRoute>;
  /** How long a live request is held when nothing changes (Electric: 20 s). */
  longPollMs?: number;
  /** Every answer, by kind of request; and, for a live request a change woke, how long since. */
  observe?: { answered(kind: string, status: number): void; fanout(seconds: number): void };
}

const OPEN_BRACKET = Buffer.from('[');

/** Messages per response before the client is sent on for the rest. */
const READ_LIMIT = 10_000;
/** How long one SSE response is held before the client is made to reconnect. */
const SSE_HOLD_MS = 60_000;
/** A comment line this often keeps proxies from closing an idle SSE response. */
const SSE_KEEPALIVE_MS = 15_000;
const OFFSET = /^(\d+)_(\d+|inf)$/;
const EXPOSED_HEADERS = [
  'electric-handle',
  'electric-offset',
  'electric-schema',
  'electric-cursor',
  'electric-up-to-date',
  'electric-has-data',
  'etag',
].join(', ');
/** Electric's cursor epoch (2024-10-09T00:00Z): cursors are long-poll periods since then. */
const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9);

type Query = Record<string, string | string[] | undefined>;

export function registerShapeRoutes(app: FastifyInstance, options: ShapeRouteOptions): void {
  const { backend } = options;
  const longPollMs = options.longPollMs ?? 20_000;
  // Held answers (long-polls, SSE streams) end as soon as the server begins to close: fastify's
  // close waits for every request in flight, and a stop would otherwise wait up to a long-poll
  // (20 s) or an SSE hold for them. They answer as a long-poll that timed out does (up-to-date,
  // same offset); the client's next request then retries until the daemon is back. Requests
  // forwarded to another process's owner are cut too (shape-forwarding.ts).
  const closing = new AbortController();
  /**
   * The long-polls held now, each by its wait's `cancel` (a set, not an abort listener each on
   * `closing.signal`: thousands of listeners on one signal, each removed by a list search).
   */
  const heldLongPolls = new Set<() => void>();
  app.addHook('preClose', async () => {
    closing.abort();
    for (const cancel of heldLongPolls) cancel();
  });
  app.addHook('onResponse', async (request, reply) => {
    if (options.observe === undefined || !request.url.startsWith('/v1/shape')) return;
    options.observe.answered(requestKind(request), reply.statusCode);
  });

  app.options('/v1/shape', async (request, reply) => {
    cors(reply);
    const requested = request.headers['access-control-request-headers'];
    void reply
      .header('access-control-allow-methods', 'GET, DELETE, OPTIONS')
      .header('access-control-allow-headers', typeof requested === 'string' ? requested : '*')
      .header('access-control-max-age', '86400')
      .status(204);
    return reply.send();
  });

  /** In a fleet: the answer, when another process serves the table; null when it is served here. */
  async function elsewhere(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | null> {
    const table = single(request.query as Query, 'table');
    if (options.locate === undefined || table === undefined) return null;
    const route = await options.locate(table, isForwarded(request));
    if (route.kind === 'here') return null;
    if (route.kind === 'unowned') return answerUnowned(reply, route.pipeline);
    return forwardToOwner(request, reply, route.url, table, closing.signal);
  }

  app.delete('/v1/shape', async (request, reply) => {
    const forwarded = await elsewhere(request, reply);
    if (forwarded !== null) return forwarded;
    cors(reply);
    const query = request.query as Query;
    const handle = single(query, 'handle');
    if (handle === undefined)
      return refuse(reply, 'handle', 'DELETE needs the handle of the shape to rotate');
    const dropped = await backend.drop(handle);
    void reply.header('cache-control', 'no-store').status(dropped ? 202 : 404);
    return dropped ? reply.send() : reply.send({ message: `no shape with handle ${handle}` });
  });

  app.get('/v1/shape', async (request, reply) => {
    const forwarded = await elsewhere(request, reply);
    if (forwarded !== null) return forwarded;
    cors(reply);
    const query = request.query as Query;
    let definition: ShapeDefinition;
    try {
      definition = shapeDefinition(query);
    } catch (error) {
      return refuseError(reply, error);
    }
    const offsetText = single(query, 'offset');
    if (offsetText === undefined)
      return refuse(reply, 'offset', 'offset is required (-1, now, or <tx>_<op>)');
    if (offsetText !== '-1' && offsetText !== 'now' && !OFFSET.test(offsetText))
      return refuse(reply, 'offset', `offset ${JSON.stringify(offsetText)} has invalid format`);
    const live = single(query, 'live') === 'true';
    const sse =
      live && (single(query, 'live_sse') === 'true' || single(query, 'experimental_live_sse') === 'true');
    const handle = single(query, 'handle');

    try {
      if (offsetText === '-1') return await initial(reply, definition);
      // `now`: no snapshot, from the shape's head on; a handle sent with it is ignored (Electric).
      if (offsetText === 'now') {
        const info = await backend.open(definition);
        const head = await backend.read(info.handle, 'now', 0);
        if (head === null) return await mustRefetch(reply, definition);
        return send(reply, request, {
          info,
          live,
          requestOffset: offsetText,
          offset: head.offset,
          joined: Buffer.alloc(0),
          upToDate: true,
        });
      }
      if (handle === undefined)
        return refuse(reply, 'handle', 'handle is required with a non-initial offset');
      const info = await backend.info(handle);
      if (info === null || !sameTable(info, definition)) return await mustRefetch(reply, definition);
      const [, tx, op] = OFFSET.exec(offsetText)!;
      // `0_<n>`: a further chunk of a large snapshot.
      if (Number(tx) === 0 && op !== 'inf') {
        const at = parseChunkOffset(Number(op));
        const chunk = backend.snapshotChunk(info, at.sequence, at.chunk);
        // No longer kept: the same offset can never answer other bytes, so the shape rotates.
        if (chunk === null) {
          await backend.drop(handle);
          return await mustRefetch(reply, definition);
        }
        return sendChunk(reply, info, offsetText, chunk);
      }
      // The log starts after the transaction the shape's capture began at: it cannot serve before.
      if (Number(tx) < info.startSequence) return await mustRefetch(reply, definition);
      if (sse) return await stream(request, reply, definition, info, offsetText, Number(tx));
      return await fromLog(request, reply, definition, info, offsetText, Number(tx), live);
    } catch (error) {
      return refuseError(reply, error);
    }
  });

  async function initial(reply: FastifyReply, definition: ShapeDefinition) {
    const info = await backend.open(definition);
    return sendChunk(reply, info, '-1', await backend.firstSnapshotChunk(info));
  }

  /** A snapshot chunk: the last one says up-to-date (the log continues after its sequence). */
  function sendChunk(reply: FastifyReply, info: ShapeInfo, requestOffset: string, chunk: SnapshotChunk) {
    return send(reply, null, {
      info,
      live: false,
      requestOffset,
      offset: chunk.next ?? `${chunk.sequence}_inf`,
      joined: chunk.joined,
      upToDate: chunk.next === null,
    });
  }

  async function fromLog(
    request: FastifyRequest,
    reply: FastifyReply,
    definition: ShapeDefinition,
    info: ShapeInfo,
    offset: string,
    tx: number,
    live: boolean,
  ) {
    let read = await firstRead(info, offset, tx);
    if (read === null) return mustRefetch(reply, definition);
    // (Once the server is closing, a long-poll answers at once, as one that timed out.)
    if (read.messages.length === 0 && live && !closing.signal.aborted) {
      const wait = backend.waitForChange(info.handle, longPollMs);
      let clientGone = false;
      const gone = () => {
        clientGone = true;
        wait.cancel();
      };
      request.raw.once('close', gone);
      heldLongPolls.add(wait.cancel);
      observeFanout(await wait.changed);
      heldLongPolls.delete(wait.cancel);
      request.raw.off('close', gone);
      if (clientGone) return reply;
      // Rotated while waiting: the waiters were woken, the log is gone.
      read = await backend.read(info.handle, offset, READ_LIMIT);
      if (read === null) return mustRefetch(reply, definition);
    }
    return send(reply, request, {
      info,
      live,
      requestOffset: offset,
      offset: read.offset,
      joined: read.messages.join(','),
      upToDate: read.messages.length < READ_LIMIT,
    });
  }

  /**
   * `live_sse=true`: one held response of server-sent events — each message its own event, an
   * up-to-date after every batch (the client delivers a batch only then) — until the connection
   * closes or SSE_HOLD_MS pass (the client reconnects from its last up-to-date).
   */
  async function stream(
    request: FastifyRequest,
    reply: FastifyReply,
    definition: ShapeDefinition,
    info: ShapeInfo,
    offset: string,
    tx: number,
  ) {
    const first = await firstRead(info, offset, tx);
    if (first === null) return mustRefetch(reply, definition);
    const previousCursor = Number(single(request.query as Query, 'cursor') ?? 0);
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'electric-handle': info.handle,
      // The request's offset: the client moves on only at an up-to-date it has processed.
      'electric-offset': offset,
      'electric-cursor': String(nextCursor(previousCursor, longPollMs / 1_000)),
    });
    const connection = new AbortController();
    raw.once('close', () => connection.abort());
    const closed = AbortSignal.any([connection.signal, closing.signal]);
    const deadline = Date.now() + SSE_HOLD_MS;
    let read = first;
    while (!closed.aborted) {
      for (const message of read.messages) raw.write(`data: ${message}\n\n`);
      const at = read.offset;
      if (read.messages.length < READ_LIMIT) {
        const lsn = at.slice(0, at.indexOf('_'));
        raw.write(
          `data: ${JSON.stringify({ headers: { control: 'up-to-date', global_last_seen_lsn: lsn } })}\n\n`,
        );
        // Until the shape changes: a keep-alive comment now and then, nothing read again.
        let changed = false;
        while (!changed && !closed.aborted && Date.now() < deadline) {
          changed = await changeOf(info.handle, Math.min(deadline - Date.now(), SSE_KEEPALIVE_MS), closed);
          if (!changed && !closed.aborted) raw.write(': keep-alive\n\n');
        }
        if (!changed) break;
      }
      const next = await backend.read(info.handle, at, READ_LIMIT);
      if (next === null) break; // rotated: the reconnect gets its 409
      read = next;
    }
    raw.end();
    return reply;
  }

  /** Waits for the shape to change (true) or `timeoutMs` or `signal` (false). */
  async function changeOf(handle: string, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const wait = backend.waitForChange(handle, timeoutMs);
    signal.addEventListener('abort', wait.cancel, { once: true });
    if (signal.aborted) wait.cancel();
    const changedAt = await wait.changed;
    signal.removeEventListener('abort', wait.cancel);
    observeFanout(changedAt);
    return changedAt !== null;
  }

  /** A change's fan-out latency: from reaching this thread to the answer it woke. */
  function observeFanout(changedAt: number | null): void {
    if (changedAt !== null) options.observe?.fanout((performance.now() - changedAt) / 1_000);
  }

  /**
   * The log after `offset`, once this process's materializer has seen transaction `tx` (a
   * snapshot read elsewhere may be ahead of it); null when it cannot serve it (409).
   */
  async function firstRead(info: ShapeInfo, offset: string, tx: number) {
    if (!(await backend.waitForProcessed(info.pipeline, tx, longPollMs / 2))) return null;
    return backend.read(info.handle, offset, READ_LIMIT);
  }

  async function mustRefetch(reply: FastifyReply, definition: ShapeDefinition) {
    // The handle to go on with: the shape of this definition now (a new one if it was rotated).
    const next = await backend.open(definition);
    void reply.header('electric-handle', next.handle);
    void reply.header('cache-control', 'public, max-age=60, must-revalidate').status(409);
    return reply.send([{ headers: { control: 'must-refetch' } }]);
  }
}

function send(
  reply: FastifyReply,
  request: FastifyRequest | null,
  response: {
    info: ShapeInfo;
    live: boolean;
    requestOffset: string;
    offset: string;
    /** The messages, joined by commas (empty for none). */
    joined: string | Buffer;
    upToDate: boolean;
  },
) {
  const { info, live, offset, joined, upToDate } = response;
  const etag = `"${info.handle}:${response.requestOffset}:${offset}"`;
  void reply.header('electric-handle', info.handle).header('electric-offset', offset).header('etag', etag);
  if (live) {
    const previous = Number(single((request?.query ?? {}) as Query, 'cursor') ?? 0);
    void reply.header('electric-cursor', String(nextCursor(previous, 20)));
    void reply.header('cache-control', 'public, max-age=5, stale-while-revalidate=5');
  } else {
    void reply.header('electric-schema', info.schema);
    void reply.header('cache-control', 'public, max-age=60, stale-while-revalidate=300');
  }
  if (request !== null && request.headers['if-none-match'] === etag) return reply.status(304).send();
  let control = '';
  if (upToDate) {
    void reply.header('electric-up-to-date', '');
    const lsn = offset.slice(0, offset.indexOf('_'));
    const message = JSON.stringify({ headers: { control: 'up-to-date', global_last_seen_lsn: lsn } });
    control = joined.length === 0 ? message : `,${message}`;
  }
  if (live) void reply.header('electric-has-data', joined.length > 0 ? 'true' : 'false');
  void reply.status(200).header('content-type', 'application/json; charset=utf-8');
  if (typeof joined === 'string') return reply.send(`[${joined}${control}]`);
  return reply.send(Buffer.concat([OPEN_BRACKET, joined, Buffer.from(`${control}]`)]));
}

/** Electric's cursor: the current long-poll period since its epoch, strictly above the last one. */
function nextCursor(previous: number, periodSeconds: number): number {
  const periods = Math.ceil((Date.now() - CURSOR_EPOCH_MS) / 1000 / periodSeconds) * periodSeconds;
  return periods > previous ? periods : previous + 1 + Math.floor(Math.random() * 3600);
}

function requestKind(request: FastifyRequest): string {
  if (request.method === 'DELETE') return 'rotate';
  if (request.method !== 'GET') return 'other';
  const query = request.query as Query;
  const offset = single(query, 'offset');
  if (offset === '-1') return 'initial';
  if (offset === 'now') return 'now';
  return single(query, 'live') === 'true' ? 'live' : 'catch-up';
}

function cors(reply: FastifyReply): void {
  void reply
    .header('access-control-allow-origin', '*')
    .header('access-control-expose-headers', EXPOSED_HEADERS);
}

function single(query: Query, name: string): string | undefined {
  const value = query[name];
  return Array.isArray(value) ? value[value.length - 1] : value;
}

/** The shape's identity from the query: table, where, params[n], columns, replica. */
function shapeDefinition(query: Query): ShapeDefinition {
  const table = single(query, 'table');
  if (table === undefined || table === '') throw invalid('table', 'table is required');
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(query)) {
    const match = /^params\[(\d+)\]$/.exec(name);
    if (match !== null && value !== undefined)
      params[match[1]!] = Array.isArray(value) ? value[value.length - 1]! : value;
  }
  const replica = single(query, 'replica') ?? 'default';
  if (replica !== 'default' && replica !== 'full')
    throw invalid('replica', 'replica must be default or full');
  const columns = single(query, 'columns');
  return {
    table,
    where: single(query, 'where') ?? null,
    params,
    columns: columns === undefined ? null : splitColumns(columns),
    replica,
  };
}

/** `a,"B c",d` → names (double quotes keep case and commas; "" is a quote). */
function splitColumns(text: string): string[] {
  const names: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        current += '"';
        i++;
      } else if (char === '"') quoted = false;
      else current += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      names.push(current.trim());
      current = '';
    } else current += char;
  }
  names.push(current.trim());
  return names.filter((name) => name !== '');
}

function sameTable(info: ShapeInfo, definition: ShapeDefinition): boolean {
  return definition.table === `${info.pipeline}.${info.entity}` || definition.table === info.entity;
}

function invalid(param: string, message: string): StrataError {
  return new StrataError('STRATA_ERR_SHAPE_INVALID', message, { details: { [param]: [message] } });
}

function refuse(reply: FastifyReply, param: string, message: string) {
  return refuseError(reply, invalid(param, message));
}

/** Electric's 400 body, `{message, errors: {param: [...]}}`, with our code beside it. */
function refuseError(reply: FastifyReply, error: unknown) {
  if (!(error instanceof StrataError) || error.status !== 400) throw error;
  void reply.header('cache-control', 'no-store').status(400);
  return reply.send({ message: error.message, code: error.code, errors: error.details ?? {} });
}
