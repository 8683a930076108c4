// Every daemon setting, once: its environment variable, CLI flag, schema (with its default) and the
// line docs/operations.md shows for it. src/config.ts builds its parser from this table, src/cli.ts
// its flags, and test/unit/settings-doc.test.ts keeps the documentation's settings table equal to
// it (the test prints the rows it expects).

import { z } from 'zod';

const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);
/** A switch set by env (`true`/`false`/`1`/`0`) or by a boolean CLI flag. */
const bool = (fallback: boolean) =>
  z
    .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
    .transform((value) => value === true || value === 'true' || value === '1')
    .default(fallback);

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** How a setting is given on the command line. */
export type SettingFlag =
  /** `--name VALUE` */
  | { name: string; kind: 'value' }
  /** `--name` alone sets the setting to true */
  | { name: string; kind: 'switch' }
  /** `--name` alone sets the setting to `value` */
  | { name: string; kind: 'preset'; value: string };

export interface SettingSpec<Schema extends z.ZodType = z.ZodType> {
  env: string;
  flag?: SettingFlag;
  schema: Schema;
  /** The default as the docs show it, when it is not simply the schema's default value. */
  shownDefault?: string;
  /** The documentation's "meaning" cell. */
  doc: string;
}

const spec = <Schema extends z.ZodType>(setting: SettingSpec<Schema>) => setting;
const value = (name: string): SettingFlag => ({ name, kind: 'value' });
const toggle = (name: string): SettingFlag => ({ name, kind: 'switch' });

export const SETTINGS = {
  databaseUrl: spec({
    env: 'DATABASE_URL',
    flag: value('database-url'),
    schema: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
      .optional(),
    shownDefault: 'unset → embedded PGlite',
    doc: 'Postgres to use. Unset: PGlite inside the daemon, stored under the data dir.',
  }),
  redisUrl: spec({
    env: 'REDIS_URL',
    flag: value('redis-url'),
    schema: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    shownDefault: 'unset → in-process',
    doc: 'Redis for cross-process coordination. Its state shows on `/status` and `/readyz`.',
  }),
  host: spec({
    env: 'STRATA_HOST',
    flag: value('host'),
    schema: z.string().min(1).default('127.0.0.1'),
    doc: 'HTTP bind address. Anything but loopback needs `STRATA_API_TOKENS` (or `STRATA_INSECURE=true`): the daemon refuses to start otherwise.',
  }),
  port: spec({
    env: 'STRATA_PORT',
    flag: value('port'),
    schema: int(4000).pipe(z.number().max(65_535)),
    doc: 'HTTP port (`0`: any free port, logged at start).',
  }),
  projectDir: spec({
    env: 'STRATA_PROJECT',
    flag: value('project'),
    schema: z.string().min(1).optional(),
    shownDefault: '`./` if it has `strata.config.ts`, else `examples/credits`',
    doc: 'Project folder.',
  }),
  dataDir: spec({
    env: 'STRATA_DATA_DIR',
    flag: value('data-dir'),
    schema: z.string().min(1).default('.strata'),
    doc: 'Embedded database folder (locked by a pid file: one daemon per folder).',
  }),
  embedded: spec({
    env: 'STRATA_EMBEDDED',
    flag: { name: 'memory', kind: 'preset', value: 'memory' },
    schema: z.enum(['disk', 'memory']).default('disk'),
    doc: '`memory` keeps the embedded database in memory only.',
  }),
  logLevel: spec({
    env: 'STRATA_LOG_LEVEL',
    flag: value('log-level'),
    schema: z.enum(logLevels).default('info'),
    doc: '`fatal`…`trace`, `silent`.',
  }),
  logFormat: spec({
    env: 'STRATA_LOG_FORMAT',
    flag: value('log-format'),
    schema: z.enum(['auto', 'pretty', 'json']).default('auto'),
    doc: '`pretty` on a TTY, JSON otherwise.',
  }),
  pingIntervalMs: spec({
    env: 'STRATA_PING_INTERVAL_MS',
    schema: int(1_000, 10),
    doc: 'Actor liveness ping; no pong for two intervals → the actor is terminated and restarted.',
  }),
  restartIntensity: spec({
    env: 'STRATA_RESTART_INTENSITY',
    schema: int(5, 0),
    doc: 'Restarts allowed within the period before the supervisor gives up (exit 75).',
  }),
  restartPeriodMs: spec({
    env: 'STRATA_RESTART_PERIOD_MS',
    schema: int(30_000, 1),
    doc: 'The restart-intensity window.',
  }),
  backoffBaseMs: spec({
    env: 'STRATA_BACKOFF_BASE_MS',
    schema: int(200, 0),
    doc: 'Restart backoff: exponential in recent restarts, half of it random, starting here.',
  }),
  backoffMaxMs: spec({
    env: 'STRATA_BACKOFF_MAX_MS',
    schema: int(10_000, 0),
    doc: 'The restart backoff cap.',
  }),
  shutdownTimeoutMs: spec({
    env: 'STRATA_SHUTDOWN_TIMEOUT_MS',
    schema: int(15_000, 1),
    doc: "Graceful shutdown budget (pause intake + writer flush), and each actor's stop timeout.",
  }),
  bodyLimitBytes: spec({
    env: 'STRATA_BODY_LIMIT_BYTES',
    schema: int(1_048_576, 1),
    doc: 'Largest accepted HTTP body (413 beyond).',
  }),
  httpRequestTimeoutMs: spec({
    env: 'STRATA_HTTP_REQUEST_TIMEOUT_MS',
    schema: int(30_000, 100),
    doc: "A request's headers and body must arrive within it (408 beyond, within a second of the limit).",
  }),
  httpHeadersTimeoutMs: spec({
    env: 'STRATA_HTTP_HEADERS_TIMEOUT_MS',
    schema: int(10_000, 100),
    doc: 'The headers alone (at most the request timeout).',
  }),
  apiTokens: spec({
    env: 'STRATA_API_TOKENS',
    schema: z.string().optional(),
    shownDefault: 'unset',
    doc: 'Bearer tokens and their scopes, `<token>:<scope>[+<scope>…]` separated by commas or spaces. Unset: no access control (loopback only). See "Access control".',
  }),
  apiTokensFile: spec({
    env: 'STRATA_API_TOKENS_FILE',
    schema: z.string().min(1).optional(),
    shownDefault: 'unset',
    doc: 'The same list in a file, one or more per line, `#` comments. Both may be set.',
  }),
  insecure: spec({
    env: 'STRATA_INSECURE',
    schema: bool(false),
    doc: 'Serve a non-loopback `STRATA_HOST` without tokens (logged as a warning at start).',
  }),
  dbPoolMax: spec({
    env: 'STRATA_DB_POOL_MAX',
    schema: int(10, 1),
    doc: 'Connections per actor pool.',
  }),
  dbConnectTimeoutMs: spec({
    env: 'STRATA_DB_CONNECT_TIMEOUT_MS',
    schema: int(5_000, 1),
    doc: 'Database connect timeout (node-postgres has none by default).',
  }),
  inMemoryObjectsTarget: spec({
    env: 'STRATA_IN_MEMORY_OBJECTS_TARGET',
    schema: int(100_000, 1),
    doc: 'In-memory objects (entities held + changes queued at the writer) a processing actor keeps before it drops committed changes, then rows loaded from the database, then waits for a commit. Memory stays within the target plus one batch. `strata verify` / `repair` write their replay out to scratch tables each time it holds this many.',
  }),
  maxChangesPerWrite: spec({
    env: 'STRATA_MAX_CHANGES_PER_WRITE',
    schema: int(200_000, 1),
    doc: 'Changes per write transaction before a run of queued batches is cut.',
  }),
  exitWhenCaughtUp: spec({
    env: 'STRATA_EXIT_WHEN_CAUGHT_UP',
    flag: toggle('exit-when-caught-up'),
    schema: bool(false),
    doc: 'Exit 0 once every pipeline has processed and committed its whole finite source (batch jobs, benchmarks).',
  }),
  progress: spec({
    env: 'STRATA_PROGRESS',
    flag: value('progress'),
    schema: z.enum(['auto', 'always', 'never']).default('auto'),
    doc: 'The live progress line on stderr: `auto` (when stderr is a terminal), `always`, `never`. Without it, a `progress` log line every 10 s carries the same figures.',
  }),
  metadataFlushMs: spec({
    env: 'STRATA_METADATA_FLUSH_MS',
    schema: int(1_000, 10),
    doc: 'Shortest interval between two chain-metadata writes while no batch flows (a flowing batch carries it in its own transaction).',
  }),
  historyPruneMs: spec({
    env: 'STRATA_HISTORY_PRUNE_MS',
    schema: int(5_000, 10),
    doc: "Shortest interval between two prunings of a pipeline's reorg history (rows below the safe checkpoint, one anchor per id kept).",
  }),
  shapeLogRetention: spec({
    env: 'STRATA_SHAPE_LOG_RETENTION',
    schema: int(10_000, 1),
    doc: "Live shapes' logs keep a pipeline's last N committed transactions (in `strata.shape_log` and in memory). A client resuming from an older offset that missed a compacted change gets 409 and refetches.",
  }),
  shapeCaptureInlineMax: spec({
    env: 'STRATA_SHAPE_CAPTURE_INLINE_MAX',
    schema: int(50_000, 1),
    doc: "Rows of one table a write transaction may change and still be captured for live shapes in the writer's memory (and sent to the materializer directly). Above it the capture stays in Postgres and the materializer reads it from `strata.shape_log`: memory stays bounded whatever the transaction's size.",
  }),
  shapeSnapshotPageRows: spec({
    env: 'STRATA_SHAPE_SNAPSHOT_PAGE_ROWS',
    schema: int(10_000, 1),
    doc: 'Rows a shape snapshot reads per round trip (on Postgres through a cursor in one repeatable-read transaction; on embedded PGlite each page is its own transaction, the writer committing between them — docs/shapes.md).',
  }),
  shapeChunkBytes: spec({
    env: 'STRATA_SHAPE_CHUNK_BYTES',
    schema: int(10 * 1024 * 1024, 1),
    shownDefault: '10 MiB',
    doc: 'A shape snapshot larger than this is answered in chunks (`offset=-1`, then `0_<n>`) with fixed boundaries, each kept for 10 minutes after its last read (Electric: `ELECTRIC_SHAPE_CHUNK_BYTES_THRESHOLD`).',
  }),
  fleet: spec({
    env: 'STRATA_FLEET',
    schema: z.enum(['on', 'off']).default('on'),
    doc: 'On Postgres, `on`: pipelines are leased, so any number of processes may share the database (docs/operations.md, "Running a fleet"). `off`: this process writes every pipeline with no lease and no fence — only for a process certain to be alone (bench/fleet measures the fence\'s cost with it). Embedded PGlite is always one process.',
  }),
  leaseTtlMs: spec({
    env: 'STRATA_LEASE_TTL_MS',
    schema: int(10_000, 300),
    doc: "On Postgres, how long a pipeline lease lasts without renewal (renewed every TTL/3, in the database's time). A process paused or dead longer than this loses its pipelines to another process within TTL + ~1 s; the epoch fence refuses its writes after that.",
  }),
  maxPipelines: spec({
    env: 'STRATA_MAX_PIPELINES',
    schema: z.coerce.number().int().min(0).optional(),
    shownDefault: 'unset → no cap',
    doc: 'The most pipelines this process owns at once (the fleet spreads the rest over the other processes; 0: it only serves HTTP).',
  }),
  watch: spec({
    env: 'STRATA_WATCH',
    flag: toggle('watch'),
    schema: bool(false),
    doc: 'Rebuild a pipeline when one of its modules changes; new handlers take over at the next batch boundary (a schema change still needs a restart).',
  }),
  buildDir: spec({
    env: 'STRATA_BUILD_DIR',
    schema: z.string().min(1).optional(),
    shownDefault: '`<project>/.strata/build`',
    doc: "Where the project's transpiled modules are written (one folder per module-graph hash; the 5 newest are kept). Must lie inside the project: built modules resolve `strata` and npm packages from the project's `node_modules`.",
  }),
  testFault: spec({
    env: 'STRATA_TEST_FAULT',
    schema: z.string().optional(),
    shownDefault: 'unset',
    doc: 'Test-only fault injection (`processing:crash-at-start`, `persistence:crash-at-start`, `persistence:crash-before-commit:N`, `persistence:crash-after-commit:N`, `persistence:write-delay:MS` — every write waits MS first, so batches queue up, `materializer:crash-at-commit:N` — the materializer exits at its N-th commit marker, `shapes:snapshot-page-delay:MS` — a paged snapshot on embedded PGlite waits MS between pages, `fleet:take-delay:MS` — a process that acquired the lease of a pipeline waits MS before taking it over). Parsed with the config (src/test-faults.ts): an unknown fault is a configuration error. Never set in production.',
  }),
};

export type SettingKey = keyof typeof SETTINGS;

/** The parser of every setting at once (keys are the config's own names). */
export const settingsSchema = z.object(
  Object.fromEntries(Object.entries(SETTINGS).map(([key, setting]) => [key, setting.schema])) as {
    [K in SettingKey]: (typeof SETTINGS)[K]['schema'];
  },
);

export type Settings = z.output<typeof settingsSchema>;

/** Env variable → setting. */
export const ENV_KEYS: Record<string, SettingKey> = Object.fromEntries(
  Object.entries(SETTINGS).map(([key, setting]) => [setting.env, key as SettingKey]),
);

/** CLI flag (without dashes) → its setting and how it is given. */
export const FLAGS: ReadonlyMap<string, { key: SettingKey; flag: SettingFlag }> = new Map(
  Object.entries(SETTINGS).flatMap(([key, setting]: [string, SettingSpec]) =>
    setting.flag === undefined ? [] : [[setting.flag.name, { key: key as SettingKey, flag: setting.flag }]],
  ),
);

/** The default a setting's documentation row shows. */
export function shownDefault(key: SettingKey): string {
  const setting: SettingSpec = SETTINGS[key];
  if (setting.shownDefault !== undefined) return setting.shownDefault;
  return `\`${String(setting.schema.parse(undefined))}\``;
}

/** The documentation row of a setting (docs/operations.md, "Settings"). */
export function settingDocRow(key: SettingKey): string {
  const setting: SettingSpec = SETTINGS[key];
  const flag = setting.flag === undefined ? '—' : `\`--${setting.flag.name}\``;
  return `| \`${setting.env}\` | ${flag} | ${shownDefault(key)} | ${setting.doc} |`;
}
