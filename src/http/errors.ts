// Every error an HTTP client sees is JSON `{ error: { code, message } }` with a registry code.
// Fastify's own errors (body too large, bad JSON, wrong content type) are mapped to ours.

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}

export function errorBody(error: StrataError): ErrorBody {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.details === undefined ? {} : { details: error.details }),
    },
  };
}

const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'STRATA_ERR_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'STRATA_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'STRATA_ERR_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'STRATA_ERR_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'STRATA_ERR_BAD_REQUEST',
  FST_ERR_VALIDATION: 'STRATA_ERR_BAD_REQUEST',
};

export function toStrataError(error: FastifyError | Error): StrataError {
  if (error instanceof StrataError) return error;
  const fastifyCode = (error as FastifyError).code;
  const mapped = fastifyCode === undefined ? undefined : FASTIFY_CODES[fastifyCode];
  if (mapped !== undefined) return new StrataError(mapped, error.message, { cause: error });
  if (error instanceof SyntaxError || (error as FastifyError).statusCode === 400) {
    return new StrataError('STRATA_ERR_BAD_REQUEST', error.message, { cause: error });
  }
  return new StrataError('STRATA_ERR_INTERNAL', 'internal error', { cause: error });
}

export function errorHandler(log: Logger) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const strata = toStrataError(error);
    if (strata.status >= 500)
      log.error({ err: error, url: request.url, method: request.method }, 'request failed');
    void reply.status(strata.status).send(errorBody(strata));
  };
}
