// Start-up phases of the module cache (GET /v1/modules/*, and the builds the actors import):
//  - `startModuleCache`: Redis (optional), the transpile pool, the L1/L2 module services, the
//    cross-process coalescer, and every pipeline's first build;
//  - `watchModules`, once the actors exist: the file watcher and the fleet's invalidation channel,
//    which rebuild a changed pipeline and (with --watch) hand the new handlers to its actor.

import type { Redis } from 'ioredis';
import type { PipelineConfig, StrataConfig } from '../config.ts';
import { connectRedis, type RedisConnection } from '../coordination/redis.ts';
import type { Logger } from '../logger.ts';
import type { DaemonMetrics } from '../metrics.ts';
import { type Coalescer, LocalCoalescer, RedisCoalescer } from '../transpile/coalescer.ts';
import { ModuleInvalidation } from '../transpile/invalidation.ts';
import { L2Store } from '../transpile/l2-store.ts';
import { ModuleService } from '../transpile/module-service.ts';
import { moduleScope, PipelineBuilds } from '../transpile/pipeline-builds.ts';
import { TranspilePool } from '../transpile/transpile-pool.ts';
import type { DaemonDatabase } from './database.ts';
import type { DaemonLifecycle } from './lifecycle.ts';

export interface ModuleCache {
  redis: RedisConnection | null;
  /** Serves the project folder (watched: an L1 hit needs no file system access). */
  modules: ModuleService;
  builds: PipelineBuilds;
  /** Redis connections for invalidations (a subscribed connection cannot run commands). */
  pubsub: { client: Redis; subscriber: Redis } | null;
}

export async function startModuleCache(
  config: StrataConfig,
  log: Logger,
  lifecycle: DaemonLifecycle,
  database: DaemonDatabase,
  metrics: DaemonMetrics,
): Promise<ModuleCache> {
  let redis: RedisConnection | null = null;
  if (config.redis.kind === 'redis') {
    const connection = connectRedis(config.redis.url, log);
    redis = connection;
    lifecycle.onStop('redis', () => connection.close());
  }
  const transpilePool = new TranspilePool({ threads: 2, minThreads: 0 });
  lifecycle.onStop('transpile pool', () => transpilePool.close());
  let coalescer: Coalescer = new LocalCoalescer();
  let pubsub: ModuleCache['pubsub'] = null;
  if (redis !== null) {
    const subscriber = redis.client.duplicate();
    subscriber.on('error', () => undefined); // the main connection logs Redis outages
    pubsub = { client: redis.client, subscriber };
    const shared = new RedisCoalescer({ client: redis.client, subscriber, log });
    coalescer = shared;
    lifecycle.onStop('module coalescer', async () => {
      await shared.close();
      subscriber.disconnect();
    });
  }
  const moduleService = (root: string, freshness: 'watch' | 'hash') =>
    new ModuleService({
      root,
      pool: transpilePool,
      l2: new L2Store(database.mainDb, `file://${root}`),
      coalescer,
      log,
      freshness,
      onTranspile: (durationMs) => metrics.transpileSeconds.observe(durationMs / 1_000),
    });
  const modules = moduleService(config.project.dir, 'watch');
  // Handlers, schemas and what they import are built through the module cache; actors import the
  // built files (src/transpile/pipeline-builds.ts). Modules outside the project folder (shared
  // code of a monorepo) are built by a second service rooted where they live; that one is not
  // watched, so it checks the source hash on every request.
  const scope = moduleScope(config.project.dir, config.pipelines);
  const builds = new PipelineBuilds({
    modules: scope === config.project.dir ? modules : moduleService(scope, 'hash'),
    projectDir: config.project.dir,
    buildRoot: config.project.buildDir,
    pipelines: config.pipelines,
    log,
  });
  await builds.buildAll();
  return { redis, modules, builds, pubsub };
}

/** Watches the project (and the fleet's invalidations); with --watch, reloads changed handlers. */
export async function watchModules(
  config: StrataConfig,
  log: Logger,
  lifecycle: DaemonLifecycle,
  cache: ModuleCache,
  reloadHandlers: (pipeline: PipelineConfig) => Promise<void>,
): Promise<ModuleInvalidation> {
  const invalidation = new ModuleInvalidation({
    modules: cache.modules,
    log,
    redis: cache.pubsub,
    onInvalidate: (paths) => {
      if (config.processing.watch) cache.builds.onChange(paths, reloadHandlers);
    },
  });
  await invalidation.watch(config.project.dir);
  lifecycle.onStop('module watcher', () => invalidation.close());
  return invalidation;
}
