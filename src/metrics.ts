// Prometheus metrics, `strata_` prefix, base units, `_total` counters, low-cardinality labels
// (actor and pipeline names come from config, never from requests). Gauges are read from the
// same status snapshot `/status` serves, at scrape time, so the two never disagree.

import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { StatusSnapshot } from './status-types.ts';

export interface DaemonMetrics {
  registry: Registry;
  actorRestarts: Counter<'actor' | 'reason'>;
  batchesCommitted: Counter<'pipeline'>;
  /** Observed by the module service at every transpile. */
  transpileSeconds: Histogram;
  /** GET/DELETE /v1/shape answers, by kind of request and status. */
  shapeRequests: Counter<'kind' | 'status'>;
  /** From a commit reaching the main thread to the answer of a long-poll it woke. */
  shapeFanoutSeconds: Histogram;
  /** Ingest requests to ingest pipelines, by outcome; what they stored; how long they took. */
  ingest: {
    requests: Counter<'pipeline' | 'outcome'>;
    blocks: Counter<'pipeline'>;
    events: Counter<'pipeline'>;
    seconds: Histogram<'pipeline'>;
  };
  /** Pipeline leases: acquired, lost (taken over), refused writes, handovers. */
  leases: {
    acquired: Counter<'pipeline'>;
    lost: Counter<'pipeline'>;
    fencedWrites: Counter<'pipeline'>;
    handovers: Counter<'pipeline'>;
    renewedLate: Counter<'pipeline'>;
  };
}

export function createMetrics(options: { version: string; status: () => StatusSnapshot }): DaemonMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'strata_process_' });

  new Gauge({
    name: 'strata_build_info',
    help: 'Always 1; labels carry the Strata and Node versions.',
    labelNames: ['version', 'node'],
    registers: [registry],
  }).set({ version: options.version, node: process.version }, 1);

  const actorGauge = (
    name: string,
    help: string,
    read: (actor: StatusSnapshot['actors'][number]) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['actor'],
      registers: [registry],
      collect() {
        this.reset();
        for (const actor of options.status().actors) this.set({ actor: actor.name }, read(actor));
      },
    });
  actorGauge('strata_actor_up', '1 while the actor is running.', (a) => (a.state === 'running' ? 1 : 0));
  actorGauge(
    'strata_actor_incarnation',
    'Current incarnation (starts at 1, +1 per restart).',
    (a) => a.incarnation,
  );
  actorGauge(
    'strata_actor_mailbox_depth',
    'Messages received by the actor and not yet started.',
    (a) => a.mailboxDepth,
  );
  actorGauge(
    'strata_actor_in_flight_calls',
    'Calls sent to the actor and not yet answered.',
    (a) => a.inFlightCalls,
  );
  actorGauge(
    'strata_actor_event_loop_utilization',
    'Event-loop utilization of the actor thread (0..1).',
    (a) => a.eventLoopUtilization,
  );
  actorGauge('strata_actor_heap_used_bytes', 'V8 heap used by the actor thread.', (a) => a.heapUsedBytes);
  actorGauge(
    'strata_actor_heap_after_gc_peak_bytes',
    'Peak V8 heap in use right after a full collection in the actor thread (what it keeps alive).',
    (a) => a.heapAfterGcPeakBytes,
  );
  actorGauge(
    'strata_actor_heap_after_gc_recent_median_bytes',
    'Median V8 heap in use after the recent full collections in the actor thread (what it settles at).',
    (a) => a.heapAfterGcRecentMedianBytes,
  );

  const pipelineGauge = (
    name: string,
    help: string,
    read: (p: StatusSnapshot['pipelines'][number]) => number,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ['pipeline'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pipeline of options.status().pipelines)
          this.set({ pipeline: pipeline.pipeline }, read(pipeline));
      },
    });
  pipelineGauge(
    'strata_pipeline_processed_checkpoint',
    'Last checkpoint processed in memory.',
    (p) => p.processedCheckpoint,
  );
  pipelineGauge(
    'strata_pipeline_committed_checkpoint',
    'Last checkpoint durably committed.',
    (p) => p.committedCheckpoint,
  );
  pipelineGauge(
    'strata_pipeline_events_processed',
    'Events processed by this process since it started.',
    (p) => p.eventsProcessed,
  );
  pipelineGauge(
    'strata_pipeline_events_per_second',
    'Events per second over the last 10 s.',
    (p) => p.eventsPerSecond,
  );
  pipelineGauge(
    'strata_pipeline_in_memory_objects',
    'Entities held in memory plus changes queued at the writer.',
    (p) => p.inMemoryObjects,
  );
  pipelineGauge(
    'strata_pipeline_blocks_per_second',
    'Blocks processed per second over the last 10 s.',
    (p) => p.blocksPerSecond,
  );
  pipelineGauge(
    'strata_pipeline_commit_lag_checkpoints',
    'Checkpoints processed but not yet committed by the writer.',
    (p) => Math.max(0, p.processedCheckpoint - p.committedCheckpoint),
  );
  pipelineGauge(
    'strata_pipeline_head_block',
    'Highest block number the source is known to have (-1 when unknown).',
    (p) => p.headBlockNumber ?? -1,
  );
  pipelineGauge(
    'strata_pipeline_writer_busy_seconds',
    "Time the writer spent in this pipeline's transactions since the processing actor started.",
    (p) => p.writerBusyMs / 1_000,
  );

  new Gauge({
    name: 'strata_pipeline_reorgs',
    help: 'Reorgs rolled back since the processing actor started, by where the orphaned blocks were undone: unsent batch, queued batches (both in memory), stored state (from history).',
    labelNames: ['pipeline', 'undid'],
    registers: [registry],
    collect() {
      this.reset();
      for (const pipeline of options.status().pipelines) {
        for (const [undid, count] of Object.entries(pipeline.reorgsUndid ?? {})) {
          this.set({ pipeline: pipeline.pipeline, undid }, count);
        }
      }
    },
  });
  new Gauge({
    name: 'strata_effect_calls',
    help: 'Effect calls since the processing actor started, by result: memory_hit, database_hit, invalidated (a stored output that no longer matches the output schema; recomputed), run.',
    labelNames: ['pipeline', 'effect', 'result'],
    registers: [registry],
    collect() {
      this.reset();
      for (const pipeline of options.status().pipelines) {
        for (const [effect, stats] of Object.entries(pipeline.effects ?? {})) {
          const labels = { pipeline: pipeline.pipeline, effect };
          this.set({ ...labels, result: 'memory_hit' }, stats.memoryHits);
          this.set({ ...labels, result: 'database_hit' }, stats.databaseHits);
          this.set({ ...labels, result: 'invalidated' }, stats.invalidated);
          this.set({ ...labels, result: 'run' }, stats.runs);
        }
      }
    },
  });

  const moduleCounters: Array<[string, (m: NonNullable<StatusSnapshot['modules']>) => number]> = [
    ['l1_hit', (m) => m.l1Hits],
    ['l2_hit', (m) => m.l2Hits],
    ['in_process_join', (m) => m.inProcessJoins],
    ['cross_process_join', (m) => m.crossProcessJoins],
    ['transpile', (m) => m.transpiles],
    ['syntax_error', (m) => m.syntaxErrors],
    ['stale_write_rejected', (m) => m.staleWritesRejected],
    ['l1_write_skipped', (m) => m.l1WritesSkipped],
    ['l2_failure', (m) => m.l2Failures],
    ['wait_timeout_fallback', (m) => m.waitTimeoutFallbacks],
  ];
  new Gauge({
    name: 'strata_module_cache_operations',
    help: 'Module cache operations since start, by kind (hits per layer, joins, transpiles, fences, fallbacks).',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const modules = options.status().modules;
      if (modules === undefined) return;
      for (const [kind, read] of moduleCounters) this.set({ kind }, read(modules));
    },
  });
  const transpileSeconds = new Histogram({
    name: 'strata_module_transpile_seconds',
    help: 'Time of each transpile in the pool (oxc), seconds.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  new Gauge({
    name: 'strata_module_transpile_pool_utilization',
    help: 'Utilization of the transpile pool (0..1).',
    registers: [registry],
    collect() {
      const modules = options.status().modules;
      if (modules !== undefined) this.set(modules.pool.utilization);
    },
  });

  new Gauge({
    name: 'strata_db_pool_connections',
    help: 'Database pool connections by pool and state.',
    labelNames: ['pool', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [pool, stats] of Object.entries(options.status().database.pools)) {
        this.set({ pool, state: 'total' }, stats.total);
        this.set({ pool, state: 'idle' }, stats.idle);
        this.set({ pool, state: 'waiting' }, stats.waiting);
      }
    },
  });

  new Gauge({
    name: 'strata_shapes',
    help: 'Live shapes, by how changes are routed to them (index: equality/IN lookup; scan).',
    labelNames: ['routing'],
    registers: [registry],
    collect() {
      const shapes = options.status().shapes;
      this.set({ routing: 'index' }, shapes?.indexed ?? 0);
      this.set({ routing: 'scan' }, shapes?.scanned ?? 0);
    },
  });
  new Gauge({
    name: 'strata_shape_log_messages',
    help: "Messages held in the shapes' logs.",
    registers: [registry],
    collect() {
      this.set(options.status().shapes?.logMessages ?? 0);
    },
  });
  new Gauge({
    name: 'strata_shape_live_requests',
    help: 'Live shape requests waiting for a change.',
    registers: [registry],
    collect() {
      this.set(options.status().shapes?.liveRequests ?? 0);
    },
  });

  return {
    registry,
    shapeRequests: new Counter({
      name: 'strata_shape_requests_total',
      help: 'Shape requests answered, by kind (initial, catch-up, live, now, rotate) and HTTP status (409: must-refetch).',
      labelNames: ['kind', 'status'],
      registers: [registry],
    }),
    shapeFanoutSeconds: new Histogram({
      name: 'strata_shape_fanout_seconds',
      help: 'From a commit reaching the main thread to the answer of a live request it woke.',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
      registers: [registry],
    }),
    ingest: {
      requests: new Counter({
        name: 'strata_ingest_requests_total',
        help: 'Requests to POST /v1/pipelines/<name>/events of ingest pipelines, by outcome: stored, already_stored (a retry), replaced (a replacement branch), or the error code of a refusal.',
        labelNames: ['pipeline', 'outcome'],
        registers: [registry],
      }),
      blocks: new Counter({
        name: 'strata_ingest_blocks_total',
        help: 'Blocks stored in the ingest log.',
        labelNames: ['pipeline'],
        registers: [registry],
      }),
      events: new Counter({
        name: 'strata_ingest_events_total',
        help: 'Events of the blocks stored in the ingest log.',
        labelNames: ['pipeline'],
        registers: [registry],
      }),
      seconds: new Histogram({
        name: 'strata_ingest_request_seconds',
        help: 'From an ingest request parsed to its answer (checks and storing), whatever the outcome.',
        labelNames: ['pipeline'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [registry],
      }),
    },
    actorRestarts: new Counter({
      name: 'strata_actor_restarts_total',
      help: 'Actor restarts by the supervisor, by exit reason.',
      labelNames: ['actor', 'reason'],
      registers: [registry],
    }),
    batchesCommitted: new Counter({
      name: 'strata_pipeline_batches_committed_total',
      help: 'Batches committed by the writer.',
      labelNames: ['pipeline'],
      registers: [registry],
    }),
    transpileSeconds,
    leases: {
      acquired: leaseCounter(registry, 'acquired', 'Pipeline leases this process was granted.'),
      lost: leaseCounter(
        registry,
        'lost',
        'Pipeline leases this process lost to another process (found at renewal or by the write fence).',
      ),
      fencedWrites: leaseCounter(
        registry,
        'fenced_writes',
        "Write transactions refused by the lease fence (this process wrote after another took the pipeline's lease over; rolled back).",
      ),
      handovers: leaseCounter(
        registry,
        'handovers',
        'Pipelines this process handed over (rebalancing or SIGTERM) after its writer committed.',
      ),
      renewedLate: leaseCounter(
        registry,
        'renewed_late',
        'Lease renewals that came after the lease had expired (a pause or a slow database; no one took it).',
      ),
    },
  };
}

function leaseCounter(registry: Registry, what: string, help: string): Counter<'pipeline'> {
  return new Counter({
    name: `strata_lease_${what}_total`,
    help,
    labelNames: ['pipeline'],
    registers: [registry],
  });
}
