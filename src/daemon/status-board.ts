// What `/status`, `/readyz` and the metrics gauges read: one snapshot built from the parts of the
// daemon, each added by the start-up phase that creates it. Reads only in-memory figures (plus,
// for readiness, one `SELECT 1`), so it answers fast even when the actors are busy.

import type { StrataConfig } from '../config.ts';
import type { RedisConnection } from '../coordination/redis.ts';
import type { Db } from '../db/pool.ts';
import { TABLE_LOG_MESSAGES, TABLE_SHAPES } from '../materializer/shape-report.ts';
import type { FleetStatus, ReadinessCheck, ShapesStatus, StatusSnapshot } from '../status-types.ts';
import type { ActorRef } from '../supervisor/actor-ref.ts';
import type { PipelineRouter } from '../supervisor/pipeline-router.ts';
import type { ModuleService } from '../transpile/module-service.ts';
import type { DaemonLifecycle } from './lifecycle.ts';
import { withTimeout } from './with-timeout.ts';

export interface StatusParts {
  mainDb: Db;
  redis: RedisConnection | null;
  modules: ModuleService;
  // biome-ignore lint/suspicious/noExplicitAny: only the actors' stats are read.
  actors: () => Array<ActorRef<any, any, any, any>>;
  router: PipelineRouter;
  // biome-ignore lint/suspicious/noExplicitAny: idem.
  materializer: ActorRef<any, any, any, any>;
  /** Live requests waiting for a change. */
  liveShapeRequests: () => number;
  /** The fleet's processes and leases (undefined on embedded PGlite: one process). */
  fleet: () => FleetStatus | undefined;
}

export class StatusBoard {
  private parts: StatusParts | null = null;
  private readonly startedAt = new Date();

  constructor(
    private readonly id: string,
    private readonly config: StrataConfig,
    private readonly lifecycle: DaemonLifecycle,
  ) {}

  /** The daemon's parts exist (the last start-up phase before HTTP). */
  complete(parts: StatusParts): void {
    this.parts = parts;
  }

  snapshot(): StatusSnapshot {
    const { config, parts } = this;
    const pools: StatusSnapshot['database']['pools'] = {};
    if (parts !== null) {
      pools.main = parts.mainDb.stats();
      for (const actor of parts.actors()) {
        const extra = actor.stats().extra;
        if (extra.dbPoolTotal !== undefined) {
          pools[actor.name] = {
            total: extra.dbPoolTotal,
            idle: extra.dbPoolIdle ?? 0,
            waiting: extra.dbPoolWaiting ?? 0,
          };
        }
      }
    }
    return {
      process: {
        id: this.id,
        pid: process.pid,
        version: config.version,
        node: process.version,
        state: this.lifecycle.state,
        startedAt: this.startedAt.toISOString(),
        uptimeSeconds: Math.round(process.uptime()),
      },
      actors: parts?.actors().map((actor) => ({ name: actor.name, ...actor.stats() })) ?? [],
      pipelines: parts?.router.progress() ?? [],
      database: {
        kind: config.database.kind,
        storage: config.database.kind === 'embedded' ? config.database.storage : null,
        pools,
      },
      redis: { configured: parts?.redis != null, state: parts?.redis?.state() ?? 'not configured' },
      ...(parts === null ? {} : { modules: parts.modules.status(), shapes: shapesStatus(parts) }),
      ...(parts?.fleet() === undefined ? {} : { fleet: parts.fleet() }),
    };
  }

  async readiness(): Promise<ReadinessCheck[]> {
    const state = this.lifecycle.state;
    const checks: ReadinessCheck[] = [{ name: 'daemon', ok: state === 'running', detail: state }];
    const { parts } = this;
    if (parts === null) return checks;
    for (const actor of parts.actors()) {
      checks.push({ name: `actor:${actor.name}`, ok: actor.state === 'running', detail: actor.state });
    }
    for (const pipeline of parts.router.progress()) {
      if (pipeline.failure !== null) {
        checks.push({
          name: `pipeline:${pipeline.pipeline}`,
          ok: false,
          detail: `failed: ${pipeline.failure.code}${pipeline.failure.block === null ? '' : ` at block ${pipeline.failure.block}`}`,
        });
      }
    }
    try {
      await withTimeout(parts.mainDb.query('SELECT 1'), 2_000, 'database check timed out');
      checks.push({ name: 'database', ok: true });
    } catch (error) {
      checks.push({ name: 'database', ok: false, detail: (error as Error).message });
    }
    if (parts.redis !== null)
      checks.push({ name: 'redis', ok: parts.redis.state() === 'ready', detail: parts.redis.state() });
    return checks;
  }
}

function shapesStatus(parts: StatusParts): ShapesStatus {
  const report = parts.materializer.stats().extra;
  const tables = Object.keys(report)
    .filter((key) => key.startsWith(TABLE_SHAPES))
    .map((key) => {
      const table = key.slice(TABLE_SHAPES.length);
      return {
        table,
        shapes: report[key] ?? 0,
        logMessages: report[`${TABLE_LOG_MESSAGES}${table}`] ?? 0,
      };
    })
    .sort((a, b) => a.table.localeCompare(b.table));
  return {
    shapes: report.shapes ?? 0,
    indexed: report.shapesIndexed ?? 0,
    scanned: report.shapesScanned ?? 0,
    logMessages: report.shapeLogMessages ?? 0,
    liveRequests: parts.liveShapeRequests(),
    tables,
  };
}
