// Errors Node's HTTP parser raises before a request reaches fastify (malformed request lines,
// oversized headers, a request or its headers not received in time) are answered here, in the
// same `{ error: { code, message } }` body as every other error, straight on the socket.

import type { Socket } from 'node:net';
import { type ErrorCode, errorRegistry } from '../errors.ts';

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

function codeFor(error: NodeJS.ErrnoException): ErrorCode {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'STRATA_ERR_REQUEST_TIMEOUT';
  if (error.code === 'HPE_HEADER_OVERFLOW') return 'STRATA_ERR_HEADERS_TOO_LARGE';
  return 'STRATA_ERR_BAD_REQUEST';
}

export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection or one whose response already started cannot take an answer.
  const inProgress = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || inProgress?.headersSent === true) {
    socket.destroy(error);
    return;
  }
  const code = codeFor(error);
  const status = errorRegistry[code].status;
  const message =
    code === 'STRATA_ERR_REQUEST_TIMEOUT'
      ? 'the request was not received within the configured timeout'
      : code === 'STRATA_ERR_HEADERS_TOO_LARGE'
        ? 'the request headers are too large'
        : `malformed HTTP request (${error.code ?? error.message})`;
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${REASONS[status]}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
