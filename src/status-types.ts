// The shape of `/status`, shared by the HTTP route, the metrics collector and `strata status`.

import type { DbPoolStats } from './db/pool.ts';
import type { PipelineProgress } from './protocol.ts';
import type { ActorStats } from './supervisor/actor-ref.ts';
import type { ModuleCacheStatus } from './transpile/module-service.ts';

export interface ActorStatus extends ActorStats {
  name: string;
}

export type DaemonState = 'starting' | 'running' | 'stopping' | 'stopped';

export interface StatusSnapshot {
  process: {
    id: string;
    pid: number;
    version: string;
    node: string;
    state: DaemonState;
    startedAt: string;
    uptimeSeconds: number;
  };
  actors: ActorStatus[];
  pipelines: PipelineProgress[];
  database: {
    kind: 'postgres' | 'embedded';
    storage: 'disk' | 'memory' | null;
    pools: Record<string, DbPoolStats>;
  };
  redis: { configured: boolean; state: string };
  /** The module cache (GET /v1/modules): hits per layer, joins, fences, the transpile pool. */
  modules?: ModuleCacheStatus;
  /** Live shapes (GET /v1/shape), from the materializer's last report and the waiting requests. */
  shapes?: ShapesStatus;
  /** Many processes on one Postgres: who is alive, who owns which pipeline (absent on PGlite). */
  fleet?: FleetStatus;
}

export interface FleetStatus {
  /** This process's id (the `owner` of its leases). */
  self: string;
  leaseTtlMs: number;
  /** When the lease table was last read (this process's clock, ISO). */
  observedAt: string | null;
  processes: Array<{
    id: string;
    host: string;
    pid: number;
    version: string;
    url: string | null;
    startedAt: string;
    lastHeartbeat: string;
    stopping: boolean;
    /** Pipelines it should own (the fleet's spread). */
    target: number;
  }>;
  leases: Array<{
    pipeline: string;
    owner: string | null;
    epoch: number;
    expiresAt: string;
    /** Whether this process holds it. */
    held: boolean;
  }>;
}

export interface ShapesStatus {
  shapes: number;
  /** Routed through the equality index / scanned for every change of their table. */
  indexed: number;
  scanned: number;
  /** Messages held in the shapes' logs. */
  logMessages: number;
  /** Live requests waiting for a change. */
  liveRequests: number;
  /** Per table (`<pipeline>.<Entity>`): its shapes and the messages their logs hold. */
  tables: Array<{ table: string; shapes: number; logMessages: number }>;
}

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail?: string;
}
