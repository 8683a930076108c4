// Shapes in a fleet: a pipeline's live shapes are served by the process that owns it (its writer
// captures the changes, its materializer keeps the logs). Any other process forwards a shape
// request there and streams the answer back — long-polls and SSE included — so clients may talk
// to any process (a load balancer in front of the fleet). A forwarded request is never forwarded
// again: a process that does not own the pipeline either (ownership just moved) answers 503 with
// `retry-after: 1`, which the Electric client retries with backoff.

import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Where a shape request is answered. */
export type ShapeRoute =
  | { kind: 'here' }
  | { kind: 'owner'; url: string }
  | { kind: 'unowned'; pipeline: string };

/** Marks a request one process forwarded to another. */
export const FORWARDED_HEADER = 'x-strata-forwarded';

/** Headers that belong to one connection, not to the request or answer (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'host',
  'content-length',
  // fetch decodes the body, so what arrives here is no longer encoded
  'content-encoding',
]);

export function isForwarded(request: FastifyRequest): boolean {
  return request.headers[FORWARDED_HEADER] !== undefined;
}

/** No process owns the table's pipeline right now (a takeover or handover is under way). */
export function answerUnowned(reply: FastifyReply, pipeline: string): FastifyReply {
  return reply
    .header('cache-control', 'no-store')
    .header('retry-after', '1')
    .status(503)
    .send({
      code: 'STRATA_ERR_PIPELINE_UNOWNED',
      message: `no process of the fleet serves pipeline ${pipeline} right now (its lease is moving); retry`,
    });
}

/**
 * Sends the request to the owner at `ownerUrl` and streams its answer back unchanged. `closing`
 * aborts when this server begins to close: a forwarded long-poll or SSE stream must not hold the
 * stop for as long as the owner holds it (the client retries elsewhere).
 */
export async function forwardToOwner(
  request: FastifyRequest,
  reply: FastifyReply,
  ownerUrl: string,
  pipeline: string,
  closing: AbortSignal,
): Promise<FastifyReply> {
  // The client went away (or the answer is done), or this server closes: stop the upstream request too.
  const clientGone = new AbortController();
  reply.raw.once('close', () => clientGone.abort());
  const upstream = AbortSignal.any([clientGone.signal, closing]);
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (HOP_BY_HOP.has(name) || value === undefined) continue;
    headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  headers.set(FORWARDED_HEADER, '1');
  let response: Response;
  try {
    response = await fetch(new URL(request.url, ownerUrl), {
      method: request.method,
      headers,
      signal: upstream,
      redirect: 'manual',
    });
  } catch (error) {
    request.log.warn(
      { err: error, owner: ownerUrl, pipeline },
      'the owner of the pipeline did not answer a shape request',
    );
    return answerUnowned(reply, pipeline);
  }
  reply.status(response.status);
  response.headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name)) void reply.header(name, value);
  });
  if (response.body === null) return reply.send();
  return reply.send(Readable.fromWeb(response.body as import('node:stream/web').ReadableStream));
}
