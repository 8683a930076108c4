// The error registry: every error Strata reports carries a `STRATA_ERR_*` code from this table,
// with its HTTP status and whether retrying can help. `docs/errors.md` documents each code; a unit
// test fails when the two disagree. Errors survive worker-thread boundaries through
// `serializeError` / `deserializeError` (structured clone keeps only message and stack of an Error,
// and comlink-style transfers drop `code`).

export interface ErrorSpec {
  /** Short human message; the thrower may add detail. */
  readonly message: string;
  /** HTTP status when the error reaches an HTTP client. */
  readonly status: number;
  /** True when the same operation may succeed later (lost connection, restarting actor). */
  readonly retryable: boolean;
  /**
   * What else the code says, for those who decide on it (one place, not lists beside this one):
   *  - `actor-restarting`: the actor called is between two lives; ask again once it is back;
   *  - `project`: the project (config, schema, source) must change; no restart can help.
   */
  readonly category?: 'actor-restarting' | 'project';
}

export const errorRegistry = {
  STRATA_ERR_CONFIG_INVALID: {
    message: 'configuration is invalid',
    status: 500,
    retryable: false,
    category: 'project',
  },
  STRATA_ERR_INTERNAL: { message: 'internal error', status: 500, retryable: false },
  STRATA_ERR_NOT_FOUND: { message: 'no such route', status: 404, retryable: false },
  STRATA_ERR_BAD_REQUEST: { message: 'malformed request', status: 400, retryable: false },
  STRATA_ERR_BODY_TOO_LARGE: { message: 'request body is too large', status: 413, retryable: false },
  STRATA_ERR_UNSUPPORTED_MEDIA_TYPE: {
    message: 'unsupported content type',
    status: 415,
    retryable: false,
  },
  STRATA_ERR_NOT_READY: { message: 'not ready', status: 503, retryable: true },
  STRATA_ERR_SHUTTING_DOWN: { message: 'the daemon is shutting down', status: 503, retryable: true },
  STRATA_ERR_ACTOR_EXITED: {
    message: 'the actor exited before answering',
    status: 503,
    retryable: true,
    category: 'actor-restarting',
  },
  STRATA_ERR_ACTOR_UNRESPONSIVE: {
    message: 'the actor stopped answering pings and was terminated',
    status: 503,
    retryable: true,
    category: 'actor-restarting',
  },
  STRATA_ERR_ACTOR_STOPPED: {
    message: 'the actor is not running',
    status: 503,
    retryable: true,
    category: 'actor-restarting',
  },
  STRATA_ERR_ACTOR_UNKNOWN_METHOD: {
    message: 'the actor has no such method',
    status: 500,
    retryable: false,
  },
  STRATA_ERR_ACTOR_START_FAILED: {
    message: 'the actor failed to start',
    status: 503,
    retryable: true,
    category: 'actor-restarting',
  },
  STRATA_ERR_RESTART_INTENSITY: {
    message: 'restart intensity exceeded; the supervisor gave up',
    status: 503,
    retryable: true,
  },
  STRATA_ERR_DB_UNAVAILABLE: { message: 'the database is unavailable', status: 503, retryable: true },
  STRATA_ERR_MIGRATION_MISMATCH: {
    message: 'applied migrations do not match the migrations folder',
    status: 500,
    retryable: false,
  },
  STRATA_ERR_MIGRATION_FAILED: { message: 'a migration failed', status: 500, retryable: false },
  STRATA_ERR_UNKNOWN_PIPELINE: { message: 'no such pipeline', status: 404, retryable: false },
  STRATA_ERR_SHAPE_WHERE_INVALID: { message: 'invalid where clause', status: 400, retryable: false },
  STRATA_ERR_SHAPE_INVALID: { message: 'invalid shape request', status: 400, retryable: false },
  STRATA_ERR_HANDLER_FAILED: { message: 'a handler threw', status: 500, retryable: false },
  STRATA_ERR_WRITE_FAILED: { message: 'the writer could not store a batch', status: 500, retryable: false },
  STRATA_ERR_PIPELINE_RUNNING: {
    message: 'a live process of the fleet writes the pipeline',
    status: 409,
    retryable: false,
  },
  STRATA_ERR_PIPELINE_UNOWNED: {
    message: 'no process of the fleet serves the pipeline right now',
    status: 503,
    retryable: true,
  },
  STRATA_ERR_LEASE_FENCED: {
    message: 'another process holds the pipeline lease; the write was refused',
    status: 409,
    retryable: false,
  },
  STRATA_ERR_SCHEMA_INVALID: {
    message: 'the schema declaration is invalid',
    status: 500,
    retryable: false,
    category: 'project',
  },
  STRATA_ERR_SCHEMA_CHANGED: {
    message: 'the pipeline was built with a different schema or source',
    status: 500,
    retryable: false,
    category: 'project',
  },
  STRATA_ERR_ENTITY_INVALID: {
    message: 'an entity value does not match the schema',
    status: 500,
    retryable: false,
  },
  STRATA_ERR_ENTITY_NOT_FOUND: { message: 'the entity does not exist', status: 404, retryable: false },
  STRATA_ERR_FILTER_INVALID: { message: 'the getWhere filter is invalid', status: 400, retryable: false },
  STRATA_ERR_CONTEXT_EXPIRED: {
    message: 'a handler context was used after the handler resolved',
    status: 500,
    retryable: false,
  },
  STRATA_ERR_SOURCE_INVALID: {
    message: 'the source yielded an invalid block',
    status: 500,
    retryable: false,
    category: 'project',
  },
  STRATA_ERR_BLOCK_INVALID: {
    message: 'a block does not match the block schema',
    status: 400,
    retryable: false,
  },
  STRATA_ERR_BLOCK_OUT_OF_ORDER: {
    message: 'block numbers must increase strictly',
    status: 400,
    retryable: false,
  },
  STRATA_ERR_BLOCK_CHAIN_BROKEN: {
    message: "a block's parentHash is not the hash of the block before it",
    status: 400,
    retryable: false,
  },
  STRATA_ERR_REPLACEMENT_TOO_DEEP: {
    message: 'a replacement branch reaches deeper than the pipeline can roll back',
    status: 400,
    retryable: false,
  },
  STRATA_ERR_BODY_TOO_DEEP: {
    message: 'the request body is nested too deeply',
    status: 400,
    retryable: false,
  },
  STRATA_ERR_REQUEST_TIMEOUT: {
    message: 'the request was not received in time',
    status: 408,
    retryable: true,
  },
  STRATA_ERR_HEADERS_TOO_LARGE: {
    message: 'the request headers are too large',
    status: 431,
    retryable: false,
  },
  STRATA_ERR_UNAUTHORIZED: {
    message: 'a bearer token is required',
    status: 401,
    retryable: false,
  },
  STRATA_ERR_FORBIDDEN: {
    message: "the token's scopes do not allow this request",
    status: 403,
    retryable: false,
  },
  STRATA_ERR_DB_REFUSED: {
    message: 'the database refused the connection (no such database, or wrong credentials)',
    status: 500,
    retryable: false,
  },
  STRATA_ERR_EFFECT_INVALID: {
    message: "an effect's input or output does not match its schema",
    status: 500,
    retryable: false,
  },
  STRATA_ERR_REORG_TOO_DEEP: {
    message:
      'a reorg reaches below what can be rolled back (maxReorgDepth, or blocks written without history)',
    status: 500,
    retryable: false,
  },
  STRATA_ERR_NOT_AN_INGEST_PIPELINE: {
    message: 'the pipeline does not read from the ingest log',
    status: 409,
    retryable: false,
  },
  STRATA_ERR_MODULE_NOT_FOUND: { message: 'no such module in the project', status: 404, retryable: false },
  STRATA_ERR_MODULE_SYNTAX: { message: 'the module does not transpile', status: 422, retryable: false },
  STRATA_ERR_DAEMON_UNREACHABLE: {
    message: 'no Strata daemon answered at that address',
    status: 503,
    retryable: true,
  },
  STRATA_ERR_QUERY_NOT_FOUND: { message: 'no such named query', status: 404, retryable: false },
  STRATA_ERR_QUERY_PARAMS_INVALID: {
    message: 'the named query parameters are invalid',
    status: 400,
    retryable: false,
  },
  STRATA_ERR_QUERY_TIMEOUT: { message: 'the named query ran out of time', status: 503, retryable: true },
  STRATA_ERR_QUERY_FAILED: { message: 'the named query failed', status: 500, retryable: false },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof errorRegistry;

/** The actor a call went to is restarting (the registry's `actor-restarting` codes). */
export function isActorRestarting(error: unknown): boolean {
  return error instanceof StrataError && categoryOf(error.code) === 'actor-restarting';
}

/** The error, or a cause of it (an actor's start failure wraps it), that no restart can fix. */
export function projectError(error: unknown): StrataError | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    if (current instanceof StrataError && categoryOf(current.code) === 'project') return current;
    current = current.cause;
  }
  return undefined;
}

function categoryOf(code: ErrorCode): ErrorSpec['category'] {
  return (errorRegistry[code] as ErrorSpec).category;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorRegistry, value);
}

export interface StrataErrorOptions {
  cause?: unknown;
  /** Structured facts about the failure (pipeline, block, field names). Never secrets. */
  details?: Record<string, unknown>;
  /** Overrides the registry's retryability for this instance (e.g. a transient DB error). */
  retryable?: boolean;
}

export class StrataError extends Error {
  override readonly name: string = 'StrataError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message?: string, options: StrataErrorOptions = {}) {
    const spec = errorRegistry[code];
    super(message ?? spec.message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = spec.status;
    this.retryable = options.retryable ?? spec.retryable;
    this.details = options.details;
  }
}

/** Exit codes: 1 for errors a restart cannot fix, 75 (EX_TEMPFAIL) for those it may. */
export const EXIT_NON_RETRYABLE = 1;
export const EXIT_RETRYABLE = 75;

export function exitCodeFor(error: unknown): number {
  return isRetryable(error) ? EXIT_RETRYABLE : EXIT_NON_RETRYABLE;
}

export function isRetryable(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { retryable?: unknown }).retryable === true;
}

/** The plain-object form of an error that crosses a thread boundary. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  retryable?: boolean;
  stack?: string;
  details?: Record<string, unknown>;
  cause?: SerializedError;
}

const MAX_CAUSE_DEPTH = 8;

export function serializeError(error: unknown, depth = 0): SerializedError {
  if (!(error instanceof Error)) {
    return { name: 'NonError', message: safeString(error) };
  }
  const source = error as Error & {
    code?: unknown;
    retryable?: unknown;
    details?: unknown;
  };
  const out: SerializedError = { name: source.name, message: source.message };
  if (typeof source.code === 'string') out.code = source.code;
  if (typeof source.retryable === 'boolean') out.retryable = source.retryable;
  if (source.stack !== undefined) out.stack = source.stack;
  if (isPlainRecord(source.details)) out.details = source.details;
  if (source.cause !== undefined && depth < MAX_CAUSE_DEPTH) {
    out.cause = serializeError(source.cause, depth + 1);
  }
  return out;
}

/**
 * Rebuilds an Error on the receiving side. Registry codes become StrataErrors (so `instanceof`
 * and `status` work); other codes (a pg error's SQLSTATE, say) stay on a plain Error.
 */
export function deserializeError(wire: SerializedError): Error {
  const cause = wire.cause === undefined ? undefined : deserializeError(wire.cause);
  let error: Error & { code?: string; retryable?: boolean; details?: Record<string, unknown> };
  if (isErrorCode(wire.code)) {
    error = new StrataError(wire.code, wire.message, {
      cause,
      details: wire.details,
      ...(wire.retryable === undefined ? {} : { retryable: wire.retryable }),
    });
  } else {
    error = new Error(wire.message, cause === undefined ? undefined : { cause });
    if (wire.code !== undefined) error.code = wire.code;
    if (wire.retryable !== undefined) error.retryable = wire.retryable;
    if (wire.details !== undefined) error.details = wire.details;
  }
  Object.defineProperty(error, 'name', { value: wire.name, enumerable: false, configurable: true });
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function safeString(value: unknown): string {
  try {
    return typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}
