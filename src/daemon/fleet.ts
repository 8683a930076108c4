// This process as a member of the fleet (many processes on one Postgres): its heartbeat, the
// pipeline leases it holds, and which pipelines it runs. One loop in the main thread, every TTL/3
// (sooner when another process's lease is about to expire, so a dead owner is replaced within
// TTL + a moment):
//   1. heartbeat (its row in strata.fleet_processes lives one TTL);
//   2. renew its leases — one missing from the answer was taken over: the pipeline is dropped;
//   3. read the live processes and the leases, plan (src/coordination/lease-plan.ts): hand over
//      what it holds beyond its share, acquire free leases up to it.
// A grant tells the writer the epoch (every write transaction is fenced by it) and starts the
// pipeline's processing actor; a handover stops the actor at its batch boundary, lets the writer
// commit what was processed, then releases the lease; a loss (found here, or by the writer's fence)
// drops what was not committed. `leave` (SIGTERM) hands every pipeline over before the exit.
// Leases use the database's clock and never Redis.

import { hostname } from 'node:os';
import { planLeases } from '../coordination/lease-plan.ts';
import {
  acquireLease,
  expireProcess,
  heartbeat,
  type LeaseRow,
  type LiveProcess,
  leaveFleet,
  liveProcesses,
  type ProcessInfo,
  prepareFleetRows,
  readLeases,
  releaseLease,
  renewLeases,
} from '../coordination/lease-store.ts';
import type { Db } from '../db/pool.ts';
import type { Logger } from '../logger.ts';
import type { DaemonMetrics } from '../metrics.ts';
import type { FleetStatus } from '../status-types.ts';

/** What the fleet asks of this process's actors. */
export interface FleetActions {
  /** The lease of `pipeline` is ours at `epoch`: the writer fences by it, processing starts. */
  take(pipeline: string, epoch: number): Promise<void>;
  /**
   * Stop running `pipeline`: a `handover` lets the writer commit what was processed first; a
   * `loss` (another process holds it now) drops it.
   */
  drop(pipeline: string, how: 'handover' | 'loss'): Promise<void>;
}

export interface FleetOptions {
  id: string;
  db: Db;
  log: Logger;
  metrics: DaemonMetrics;
  pipelines: readonly string[];
  version: string;
  leaseTtlMs: number;
  maxPipelines: number;
}

/** After a failed look (database down), the next one comes this soon (or at TTL/3). */
const RETRY_MS = 1_000;
/** A foreign lease is looked at this long after its expiry (database and timer slack). */
const EXPIRY_SLACK_MS = 100;

export class Fleet {
  readonly id: string;
  private readonly options: FleetOptions;
  /** Pipelines whose lease this process holds → epoch (renewed while their actors start or drain). */
  private readonly held = new Map<string, number>();
  /**
   * Pipelines → the epoch at which this process finished taking them (writer granted, shapes
   * adopted, processing started): it serves their shapes only from then on, at that epoch.
   */
  private readonly taken = new Map<string, number>();
  /** Held pipelines being handed over (their writer is committing): not planned again. */
  private readonly handingOver = new Set<string>();
  /** Per pipeline, its starts and stops in order — never awaited by the look, so renewals stay on time. */
  private readonly pipelineWork = new Map<string, Promise<void>>();
  private actions: FleetActions | null = null;
  private info: ProcessInfo;
  private state: 'idle' | 'member' | 'leaving' | 'left' = 'idle';
  private timer: NodeJS.Timeout | null = null;
  /** Looks run one at a time. */
  private looking: Promise<void> = Promise.resolve();
  private view: {
    processes: LiveProcess[];
    leases: LeaseRow[];
    at: Date;
    targets: Map<string, number>;
  } | null = null;

  constructor(options: FleetOptions) {
    this.options = options;
    this.id = options.id;
    this.info = {
      id: options.id,
      host: hostname(),
      pid: process.pid,
      version: options.version,
      url: null,
      maxPipelines: options.maxPipelines,
    };
  }

  /** The leases held now (the writer's start-up data: a restarted writer goes on fencing by them). */
  grants(): Record<string, number> {
    return Object.fromEntries(this.held);
  }

  /** Whether this process holds the pipeline's lease (it runs and serves it). */
  holds(pipeline: string): boolean {
    return this.held.has(pipeline);
  }

  /**
   * Whether it holds the lease and has finished taking the pipeline over. In between, its
   * materializer may not know the shapes made on the previous owner yet: a request for one would
   * get a 409 and its client a refetch, where a 503 makes it retry a moment later.
   */
  serves(pipeline: string): boolean {
    const epoch = this.held.get(pipeline);
    return epoch !== undefined && this.taken.get(pipeline) === epoch;
  }

  /** The URL of the process that held the pipeline's lease at the last look, if another one. */
  ownerUrl(pipeline: string): string | null {
    const owner = this.view?.leases.find((lease) => lease.pipeline === pipeline)?.owner;
    if (owner == null || owner === this.id) return null;
    return this.view?.processes.find((process) => process.id === owner)?.url ?? null;
  }

  /** Joins: the first look runs now; resolves once the pipelines it got run here. */
  async join(actions: FleetActions, url: string): Promise<void> {
    if (this.state !== 'idle') return; // stopped before it joined: it must take no lease now
    this.actions = actions;
    this.info = { ...this.info, url };
    await prepareFleetRows(this.options.db, this.options.pipelines);
    if (this.state !== 'idle') return;
    this.state = 'member';
    await this.lookNow();
    // The daemon says it runs once the pipelines it got at once are running.
    await Promise.all(this.pipelineWork.values());
  }

  /** The writer's fence refused a write at `epoch`: the lease is gone. */
  fenced(pipeline: string, epoch: number): void {
    this.options.metrics.leases.fencedWrites.inc({ pipeline });
    if (this.held.get(pipeline) === epoch) this.lose(pipeline, 'the write fence refused a write');
  }

  /**
   * SIGTERM: take nothing more, hand every pipeline over (each after its writer committed; the
   * leases are renewed meanwhile), leave the fleet. The others take the pipelines at their next look.
   */
  async leave(): Promise<void> {
    if (this.state !== 'member') return;
    this.state = 'leaving';
    await this.lookNow(); // tells the fleet this process is stopping
    for (const pipeline of [...this.held.keys()].sort()) this.handOver(pipeline);
    await Promise.all(this.pipelineWork.values());
    this.state = 'left'; // a look still running schedules no other
    this.clearTimer();
    await this.looking;
    await leaveFleet(this.options.db, this.id).catch(() => undefined);
  }

  /** Stops looking (the process is stopping; `releaseAll` follows once its actors stopped). */
  stop(): void {
    if (this.state === 'member' || this.state === 'leaving') this.state = 'left';
    this.clearTimer();
  }

  /**
   * After the actors stopped, whatever the reason of the stop: the leases still held are released
   * and the process leaves, so the next owner need not wait out the TTL. Safe without a flush —
   * the next owner resumes from what was committed.
   */
  async releaseAll(): Promise<void> {
    const joined = this.state !== 'idle';
    this.state = 'left'; // no look acts, no join happens from here on
    this.clearTimer();
    await this.looking;
    const { db } = this.options;
    for (const [pipeline, epoch] of [...this.held]) {
      this.held.delete(pipeline);
      await releaseLease(db, this.id, { pipeline, epoch }).catch(() => undefined);
    }
    if (joined) await leaveFleet(db, this.id).catch(() => undefined);
  }

  status(): FleetStatus {
    const view = this.view;
    return {
      self: this.id,
      leaseTtlMs: this.options.leaseTtlMs,
      observedAt: view?.at.toISOString() ?? null,
      processes: (view?.processes ?? []).map((process) => ({
        id: process.id,
        host: process.host,
        pid: process.pid,
        version: process.version,
        url: process.url,
        startedAt: process.startedAt,
        lastHeartbeat: process.heartbeatAt,
        stopping: process.stopping,
        target: view?.targets.get(process.id) ?? 0,
      })),
      leases: (view?.leases ?? []).map((lease) => ({
        pipeline: lease.pipeline,
        owner: lease.owner,
        epoch: lease.epoch,
        expiresAt: lease.expiresAt,
        held: this.held.has(lease.pipeline),
      })),
    };
  }

  private lookNow(): Promise<void> {
    this.clearTimer();
    const next = this.looking.then(() => this.look());
    this.looking = next.catch(() => undefined);
    return next;
  }

  /** Heartbeat, renewals, then (a member, not leaving) the plan: hand over and acquire. */
  private async look(): Promise<void> {
    if (this.state !== 'member' && this.state !== 'leaving') return;
    const { db, log, leaseTtlMs, metrics } = this.options;
    let nextMs = leaseTtlMs / 3;
    try {
      await heartbeat(db, this.info, leaseTtlMs, this.state === 'leaving');
      const held = [...this.held].map(([pipeline, epoch]) => ({ pipeline, epoch }));
      const { renewed } = await renewLeases(db, this.id, held, leaseTtlMs);
      const kept = new Set(renewed.map((lease) => lease.pipeline));
      for (const lease of renewed) {
        if (!lease.late) continue;
        metrics.leases.renewedLate.inc({ pipeline: lease.pipeline });
        log.warn(
          { pipeline: lease.pipeline, epoch: lease.epoch },
          'pipeline lease renewed late: it had expired (this process was paused or the database slow), no one took it',
        );
      }
      for (const { pipeline, epoch } of held) {
        if (!kept.has(pipeline) && this.held.get(pipeline) === epoch)
          this.lose(pipeline, 'another process holds it (found at renewal)');
      }
      let processes = await liveProcesses(db);
      if (await this.expireDeadNeighbours(processes)) processes = await liveProcesses(db);
      const leases = await readLeases(db, this.options.pipelines);
      const plan = planLeases({
        me: this.id,
        processes,
        leases,
        held: new Set([...this.held.keys()].filter((pipeline) => !this.handingOver.has(pipeline))),
        ttlMs: leaseTtlMs,
      });
      this.view = { processes, leases, at: new Date(), targets: new Map(plan.targets) };
      if (this.state === 'member') {
        for (const pipeline of plan.release) this.handOver(pipeline);
        for (const pipeline of plan.acquire) await this.acquire(pipeline);
      }
      // A foreign lease about to expire: look again just after, so a dead owner is replaced soon.
      for (const lease of leases) {
        if (lease.owner === null || lease.owner === this.id || lease.expiresInMs < 0) continue;
        nextMs = Math.min(nextMs, lease.expiresInMs + EXPIRY_SLACK_MS);
      }
    } catch (error) {
      log.warn({ err: error }, 'fleet: could not renew or read the leases; trying again');
      nextMs = Math.min(nextMs, RETRY_MS);
    }
    this.schedule(nextMs);
  }

  /**
   * A process of this host whose pid no longer exists was killed (kill -9, OOM) and is restarted
   * here, typically: its leases need not run out their TTL. (A pid reused since only delays this.)
   */
  private async expireDeadNeighbours(processes: readonly LiveProcess[]): Promise<boolean> {
    const { db, log } = this.options;
    let expired = false;
    for (const other of processes) {
      if (other.id === this.id || other.host !== this.info.host || pidAlive(other.pid)) continue;
      await expireProcess(db, other.id);
      expired = true;
      log.info(
        { process: other.id, pid: other.pid },
        'fleet: a process of this host is gone; its leases expire now',
      );
    }
    return expired;
  }

  private async acquire(pipeline: string): Promise<void> {
    const { db, log, leaseTtlMs, metrics } = this.options;
    const lease = await acquireLease(db, pipeline, this.id, leaseTtlMs);
    if (lease === null) return; // another process was quicker
    this.held.set(pipeline, lease.epoch);
    metrics.leases.acquired.inc({ pipeline });
    log.info({ pipeline, epoch: lease.epoch }, 'pipeline lease acquired; processing it here');
    this.queueFor(pipeline, async () => {
      if (this.held.get(pipeline) !== lease.epoch) return; // lost meanwhile
      try {
        await this.actions!.take(pipeline, lease.epoch);
        this.taken.set(pipeline, lease.epoch);
      } catch (error) {
        // The writer could not take it (restarting): give it back; a later look tries again.
        log.warn({ err: error, pipeline }, 'could not start the pipeline; releasing its lease');
        this.held.delete(pipeline);
        await this.actions!.drop(pipeline, 'loss').catch(() => undefined);
        await releaseLease(db, this.id, lease).catch(() => undefined);
      }
    });
  }

  /** Stops the pipeline at its batch boundary, lets the writer commit, then releases the lease. */
  private handOver(pipeline: string): void {
    const epoch = this.held.get(pipeline);
    if (epoch === undefined || this.handingOver.has(pipeline)) return;
    this.handingOver.add(pipeline);
    const { db, log, metrics } = this.options;
    this.queueFor(pipeline, async () => {
      const started = performance.now();
      try {
        if (this.held.get(pipeline) !== epoch) return; // lost meanwhile
        await this.actions!.drop(pipeline, 'handover');
        this.held.delete(pipeline);
        const released = await releaseLease(db, this.id, { pipeline, epoch }).catch(() => false);
        metrics.leases.handovers.inc({ pipeline });
        log.info(
          { pipeline, epoch, released, durationMs: Math.round(performance.now() - started) },
          'pipeline handed over (its writer committed what was processed)',
        );
      } finally {
        this.handingOver.delete(pipeline);
      }
    });
  }

  private lose(pipeline: string, why: string): void {
    const epoch = this.held.get(pipeline);
    if (epoch === undefined) return;
    this.held.delete(pipeline);
    this.options.metrics.leases.lost.inc({ pipeline });
    this.options.log.warn(
      { pipeline, epoch },
      `pipeline lease lost: ${why}; its processing stops here and what was not committed is dropped`,
    );
    this.queueFor(pipeline, () => this.actions!.drop(pipeline, 'loss'));
  }

  /** Runs `work` after the pipeline's earlier starts and stops. */
  private queueFor(pipeline: string, work: () => Promise<void>): void {
    const previous = this.pipelineWork.get(pipeline) ?? Promise.resolve();
    const next = previous
      .then(work)
      .catch((error: unknown) =>
        this.options.log.error({ err: error, pipeline }, 'fleet: starting or stopping the pipeline failed'),
      );
    this.pipelineWork.set(pipeline, next);
  }

  private schedule(ms: number): void {
    if (this.state !== 'member' && this.state !== 'leaving') return;
    this.clearTimer();
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.lookNow();
      },
      Math.max(10, ms),
    );
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Whether a process of this host with that pid exists (EPERM: it exists, owned by another user). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
