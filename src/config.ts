// One `buildConfig()` for the whole daemon: env (`DATABASE_URL`, `REDIS_URL`, `STRATA_*`), CLI
// flags and the project's `strata.config.ts`, validated by zod in one pass so that every problem
// is reported at once, then deep-frozen. Precedence: flag > env > config file > default.
// Daemon settings (env names, flags, schemas, defaults, doc lines) are one table in
// src/settings.ts; project-file defaults live here. docs/operations.md lists them all.

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { type ApiToken, isLoopbackHost, parseApiTokens } from './api-tokens.ts';
import { deepFreeze } from './deep-freeze.ts';
import { StrataError } from './errors.ts';
import type { LogFormat, LogLevel } from './logger.ts';
import { PACKAGE_ROOT } from './package-root.ts';
import { isInside } from './path-inside.ts';
import { namedQuerySchema, QUERY_NAME } from './queries/named-query.ts';
import {
  ENV_KEYS,
  FLAGS,
  SETTINGS,
  type SettingKey,
  type SettingSpec,
  type Settings,
  settingsSchema,
} from './settings.ts';
import { parseTestFault, type TestFault } from './test-faults.ts';
import { importProjectFile } from './transpile/project-file-import.ts';

const PIPELINE_NAME = /^[a-z][a-z0-9_]{0,39}$/;

const generatorSourceSchema = z.object({
  kind: z.literal('generator'),
  workload: z.enum(['credits', 'credit-ledger', 'erc20']),
  seed: z.number().int().default(1),
  /** Blocks produced as fast as processing takes them (the backfill). */
  blocks: z.number().int().nonnegative().default(20_000),
  eventsPerBlock: z.number().int().positive().max(10_000).default(10),
  /** Distinct addresses events are drawn from. */
  addresses: z.number().int().positive().default(1_000),
  /** How addresses are drawn: all equally, or a few hot ones taking most events. */
  distribution: z.enum(['uniform', 'skewed']).default('uniform'),
  /** After the backfill: one new block every this many ms (0 = stop at the backfill's end). */
  liveBlockIntervalMs: z.number().int().nonnegative().default(1_000),
  /**
   * Inject reorgs: at every `every`-th block the last 1..`maxDepth` blocks (depth drawn per reorg
   * from the seed) are first served as an orphaned branch, then replaced by the canonical one.
   * The canonical chain is the one served without reorgs, so the final state is the same.
   */
  reorgs: z.object({ every: z.number().int().positive(), maxDepth: z.number().int().positive() }).optional(),
});

/** Blocks from a newline-delimited JSON file, one block per line (see docs/sources.md). */
const ndjsonSourceSchema = z.object({
  kind: z.literal('ndjson'),
  /** Relative to the project folder. */
  path: z.string().min(1),
});

/** Blocks pushed to `POST /v1/pipelines/:name/events` (the durable ingest log). */
const ingestSourceSchema = z.object({ kind: z.literal('ingest') });

const sourceSchema = z.discriminatedUnion('kind', [
  generatorSourceSchema,
  ndjsonSourceSchema,
  ingestSourceSchema,
]);

const pipelineSchema = z.object({
  name: z.string().regex(PIPELINE_NAME, 'lower-case letters, digits and _, starting with a letter, ≤ 40'),
  source: sourceSchema,
  /** Schema module (`export default defineSchema({…})`), relative to the project folder. */
  schema: z.string().min(1),
  /** Handler module(s) (`export default createHandlers(schema)…`), relative to the project folder. */
  handlers: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .transform((value) => (Array.isArray(value) ? value : [value])),
  /** Blocks per batch. */
  batchSize: z.number().int().positive().max(100_000).default(100),
  /** Blocks below the source head that may still be replaced (reorgs; Processing engine II). */
  maxReorgDepth: z.number().int().nonnegative().default(200),
  /** Keep history (and so allow rollback) for every block, not only those inside the reorg threshold. */
  fullHistory: z.boolean().default(false),
  /** Also store every processed event in a raw events table (Processing engine II). */
  rawEvents: z.boolean().default(false),
  /**
   * Build secondary indexes once the pipeline first catches up instead of maintaining them during
   * the backfill (as Envio and Ponder do). getWhere on an indexed field scans until then.
   */
  deferIndexes: z.boolean().default(true),
  /** How a batch's reads are loaded: Envio's two passes, Ponder's profiled prefetch, or auto (both). */
  loadStrategy: z.enum(['auto', 'two-pass', 'prefetch']).default('auto'),
  /**
   * Settings the pipeline's handlers read as `context.options` (plain JSON). They decide derived
   * data, so they are part of the pipeline's fingerprint: changing them needs `strata reset`.
   */
  /** Named read queries: `GET /v1/pipelines/:name/queries/:query` (docs/projects.md). */
  queries: z
    .record(z.string().regex(QUERY_NAME, 'query names: letters, digits, _ and -'), namedQuerySchema)
    .default({}),
  options: z.record(z.string(), z.unknown()).default({}).refine(isPlainJson, {
    message: 'options must be plain JSON (objects, arrays, strings, numbers, booleans, null)',
  }),
});

function isPlainJson(value: unknown): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) return value.every(isPlainJson);
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype)
    return Object.values(value as object).every(isPlainJson);
  return false;
}

export const projectFileSchema = z.object({
  pipelines: z
    .array(pipelineSchema)
    .min(1)
    .refine((pipelines) => new Set(pipelines.map((p) => p.name)).size === pipelines.length, {
      message: 'pipeline names must be unique',
    }),
});

export type ProjectFile = z.input<typeof projectFileSchema>;
export type PipelineConfig = z.output<typeof pipelineSchema>;
export type GeneratorSourceConfig = z.output<typeof generatorSourceSchema>;
export type SourceConfig = z.output<typeof sourceSchema>;

/** Typed helper for `strata.config.ts` files: `export default defineProject({ … })`. */
export function defineProject(project: ProjectFile): ProjectFile {
  return project;
}

export interface StrataConfig {
  readonly version: string;
  readonly database:
    | { readonly kind: 'postgres'; readonly url: string }
    | { readonly kind: 'embedded'; readonly storage: 'disk' | 'memory'; readonly dataDir: string };
  readonly redis: { readonly kind: 'redis'; readonly url: string } | { readonly kind: 'in-process' };
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly bodyLimitBytes: number;
    readonly requestTimeoutMs: number;
    readonly headersTimeoutMs: number;
    /** Empty: no access control (only allowed on a loopback host, or with `insecure`). */
    readonly apiTokens: readonly ApiToken[];
    readonly insecure: boolean;
  };
  readonly log: { readonly level: LogLevel; readonly format: LogFormat | 'auto' };
  readonly supervisor: {
    readonly pingIntervalMs: number;
    readonly restartIntensity: number;
    readonly restartPeriodMs: number;
    readonly backoffBaseMs: number;
    readonly backoffMaxMs: number;
    readonly shutdownTimeoutMs: number;
  };
  readonly db: { readonly poolMax: number; readonly connectTimeoutMs: number };
  /** Many processes on one Postgres (docs/operations.md, "Running a fleet"). */
  readonly fleet: { readonly enabled: boolean; readonly leaseTtlMs: number; readonly maxPipelines: number };
  readonly processing: {
    readonly inMemoryObjectsTarget: number;
    readonly maxChangesPerWrite: number;
    readonly metadataFlushMs: number;
    readonly historyPruneMs: number;
    readonly shapeLogRetention: number;
    readonly shapeChunkBytes: number;
    readonly shapeCaptureInlineMax: number;
    readonly shapeSnapshotPageRows: number;
    readonly exitWhenCaughtUp: boolean;
    readonly progress: 'auto' | 'always' | 'never';
    readonly watch: boolean;
  };
  readonly project: { readonly dir: string; readonly configFile: string | null; readonly buildDir: string };
  readonly pipelines: readonly PipelineConfig[];
  readonly testFault: TestFault | null;
}

/** STRATA_MAX_PIPELINES unset: more than any project has (stored in an integer column). */
const NO_PIPELINE_CAP = 1_000_000;

export interface BuildConfigInput {
  env?: Record<string, string | undefined>;
  /** Parsed CLI flags: `{ port: '4001', memory: true }`. */
  flags?: Record<string, string | boolean>;
  cwd?: string;
  version?: string;
}

/** The project used when neither `--project`, `STRATA_PROJECT` nor `./strata.config.ts` exists. */
export const DEFAULT_PROJECT_DIR = path.join(PACKAGE_ROOT, 'examples/credits');

export async function buildConfig(input: BuildConfigInput = {}): Promise<StrataConfig> {
  const env = input.env ?? process.env;
  const flags = input.flags ?? {};
  const cwd = input.cwd ?? process.cwd();
  const problems: string[] = [];

  const raw: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  for (const [name, value] of Object.entries(flags)) {
    const entry = FLAGS.get(name);
    if (entry === undefined) {
      problems.push(`--${name}: unknown flag`);
      continue;
    }
    const { key, flag } = entry;
    if (flag.kind === 'switch') raw[key] = value === true;
    else if (flag.kind === 'preset') {
      if (value === true) raw[key] = flag.value;
    } else if (typeof value !== 'string') problems.push(`--${name}: needs a value`);
    else raw[key] = value;
  }

  const parsed = settingsSchema.safeParse(raw);
  if (!parsed.success) problems.push(...formatIssues(parsed.error, settingSource));

  // The project file is read even when settings failed, so that all problems surface at once.
  const projectDir = path.resolve(
    cwd,
    (parsed.success ? parsed.data.projectDir : (raw.projectDir as string | undefined)) ??
      (existsSync(path.join(cwd, 'strata.config.ts')) ? '.' : DEFAULT_PROJECT_DIR),
  );
  const project = await loadProjectFile(projectDir, problems);
  const apiTokens = parsed.success ? loadApiTokens(parsed.data, cwd, problems) : [];
  let testFault: TestFault | null = null;
  if (parsed.success && parsed.data.testFault !== undefined) {
    const plan = parseTestFault(parsed.data.testFault);
    if ('problem' in plan) problems.push(plan.problem);
    else testFault = plan;
  }
  if (parsed.success) {
    const { host, insecure, buildDir } = parsed.data;
    if (!isLoopbackHost(host) && apiTokens.length === 0 && !insecure) {
      problems.push(
        `STRATA_HOST / --host: ${host} serves the network, but no STRATA_API_TOKENS are set; set tokens (docs/operations.md, "Access control") or STRATA_INSECURE=true to serve it open`,
      );
    }
    // Built modules import 'strata' and npm packages by bare name, resolved from where the build
    // lies: outside the project they would not find the project's node_modules.
    if (buildDir !== undefined && !isInside(projectDir, path.resolve(cwd, buildDir))) {
      problems.push(
        `STRATA_BUILD_DIR: ${path.resolve(cwd, buildDir)} is outside the project ${projectDir}; built modules resolve 'strata' and npm packages from the project's node_modules, so the build folder must lie inside the project`,
      );
    }
  }

  if (!parsed.success || project === null || problems.length > 0) {
    throw configError(problems);
  }
  const settings = parsed.data;
  const config: StrataConfig = {
    version: input.version ?? 'dev',
    database:
      settings.databaseUrl === undefined
        ? { kind: 'embedded', storage: settings.embedded, dataDir: path.resolve(cwd, settings.dataDir) }
        : { kind: 'postgres', url: settings.databaseUrl },
    redis:
      settings.redisUrl === undefined ? { kind: 'in-process' } : { kind: 'redis', url: settings.redisUrl },
    http: {
      host: settings.host,
      port: settings.port,
      bodyLimitBytes: settings.bodyLimitBytes,
      requestTimeoutMs: settings.httpRequestTimeoutMs,
      headersTimeoutMs: settings.httpHeadersTimeoutMs,
      apiTokens,
      insecure: settings.insecure,
    },
    log: { level: settings.logLevel, format: settings.logFormat },
    supervisor: {
      pingIntervalMs: settings.pingIntervalMs,
      restartIntensity: settings.restartIntensity,
      restartPeriodMs: settings.restartPeriodMs,
      backoffBaseMs: settings.backoffBaseMs,
      backoffMaxMs: settings.backoffMaxMs,
      shutdownTimeoutMs: settings.shutdownTimeoutMs,
    },
    db: { poolMax: settings.dbPoolMax, connectTimeoutMs: settings.dbConnectTimeoutMs },
    fleet: {
      enabled: settings.fleet === 'on',
      leaseTtlMs: settings.leaseTtlMs,
      maxPipelines: settings.maxPipelines ?? NO_PIPELINE_CAP,
    },
    processing: {
      inMemoryObjectsTarget: settings.inMemoryObjectsTarget,
      maxChangesPerWrite: settings.maxChangesPerWrite,
      metadataFlushMs: settings.metadataFlushMs,
      historyPruneMs: settings.historyPruneMs,
      shapeLogRetention: settings.shapeLogRetention,
      shapeChunkBytes: settings.shapeChunkBytes,
      shapeCaptureInlineMax: settings.shapeCaptureInlineMax,
      shapeSnapshotPageRows: settings.shapeSnapshotPageRows,
      exitWhenCaughtUp: settings.exitWhenCaughtUp,
      progress: settings.progress,
      watch: settings.watch,
    },
    project: {
      dir: projectDir,
      configFile: project.file,
      buildDir: path.resolve(cwd, settings.buildDir ?? path.join(projectDir, '.strata', 'build')),
    },
    pipelines: project.pipelines,
    testFault,
  };
  return deepFreeze(config);
}

async function loadProjectFile(
  projectDir: string,
  problems: string[],
): Promise<{ file: string; pipelines: PipelineConfig[] } | null> {
  const file = path.join(projectDir, 'strata.config.ts');
  if (!existsSync(file)) {
    problems.push(`project: no strata.config.ts in ${projectDir}`);
    return null;
  }
  let exported: unknown;
  try {
    exported = (await importProjectFile(file)).default;
  } catch (error) {
    problems.push(`${file}: cannot be loaded: ${error instanceof Error ? error.message : String(error)}`);
    return null;
  }
  const parsed = projectFileSchema.safeParse(exported);
  if (!parsed.success) {
    problems.push(...formatIssues(parsed.error, (p) => `${path.basename(file)}: ${p || '(root)'}`));
    return null;
  }
  // Module and file paths are resolved against the project folder once, here.
  const pipelines = parsed.data.pipelines.map((pipeline) => ({
    ...pipeline,
    schema: path.resolve(projectDir, pipeline.schema),
    handlers: pipeline.handlers.map((handler) => path.resolve(projectDir, handler)),
    source:
      pipeline.source.kind === 'ndjson'
        ? { ...pipeline.source, path: path.resolve(projectDir, pipeline.source.path) }
        : pipeline.source,
  }));
  for (const pipeline of pipelines) {
    const where = `${path.basename(file)}: pipeline ${pipeline.name}`;
    if (!existsSync(pipeline.schema)) problems.push(`${where}: schema ${pipeline.schema} not found`);
    for (const handlers of pipeline.handlers) {
      if (!existsSync(handlers)) problems.push(`${where}: handlers ${handlers} not found`);
    }
    if (pipeline.source.kind === 'ndjson' && !existsSync(pipeline.source.path))
      problems.push(`${where}: source file ${pipeline.source.path} not found`);
  }
  return { file, pipelines };
}

function loadApiTokens(settings: Settings, cwd: string, problems: string[]): ApiToken[] {
  const tokens: ApiToken[] = [];
  if (settings.apiTokens !== undefined)
    tokens.push(...parseApiTokens(settings.apiTokens, problems, 'STRATA_API_TOKENS'));
  if (settings.apiTokensFile !== undefined) {
    const file = path.resolve(cwd, settings.apiTokensFile);
    try {
      tokens.push(...parseApiTokens(readFileSync(file, 'utf8'), problems, `STRATA_API_TOKENS_FILE ${file}`));
    } catch (error) {
      problems.push(`STRATA_API_TOKENS_FILE: cannot read ${file}: ${(error as Error).message}`);
    }
  }
  return tokens;
}

function settingSource(key: string): string {
  const setting: SettingSpec | undefined = SETTINGS[key as SettingKey];
  if (setting === undefined) return key;
  return [setting.env, setting.flag === undefined ? undefined : `--${setting.flag.name}`]
    .filter(Boolean)
    .join(' / ');
}

function formatIssues(error: z.ZodError, where: (path: string) => string): string[] {
  return error.issues.map((issue) => `${where(issue.path.join('.'))}: ${issue.message}`);
}

function configError(problems: string[]): StrataError {
  const list = problems.map((problem) => `  - ${problem}`).join('\n');
  return new StrataError(
    'STRATA_ERR_CONFIG_INVALID',
    `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${list}`,
    {
      details: { problems },
    },
  );
}
