// The supervisor: owns the actors of one process, in the OTP manner. Children start in order and
// stop in reverse order. When one exits it is restarted according to its restart policy and the
// supervisor's strategy, after a jittered exponential backoff. More than `intensity` restarts
// within `periodMs` means something is wrong that restarting will not fix: every child is stopped
// in reverse start order and `onGiveUp` is called (the daemon then exits 75 so systemd or
// Kubernetes restarts the whole process).

import { projectError, StrataError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { ActorMethods } from './actor-host.ts';
import type { ActorExit, ActorRef } from './actor-ref.ts';

/** permanent: always restarted; transient: only after an abnormal exit; temporary: never. */
export type RestartPolicy = 'permanent' | 'transient' | 'temporary';
/** one_for_one: restart the child alone; rest_for_one: also the children started after it. */
export type Strategy = 'one_for_one' | 'rest_for_one';

export interface ChildSpec {
  id: string;
  // biome-ignore lint/suspicious/noExplicitAny: the supervisor never calls methods; any actor fits.
  ref: ActorRef<ActorMethods, any, any, any>;
  restart: RestartPolicy;
  shutdownTimeoutMs: number;
  /** Runs in the main thread before every start of this child (e.g. wait for a writer flush). */
  beforeStart?: () => Promise<void>;
  /**
   * Not started with the others: the child runs once `enable`d and until `disable`d (a pipeline's
   * processing actor runs only while this process holds the pipeline's lease).
   */
  dormant?: boolean;
}

export interface SupervisorOptions {
  strategy: Strategy;
  /** Restarts allowed within `periodMs` before giving up. */
  intensity: number;
  periodMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  log: Logger;
  onGiveUp: (error: StrataError) => void;
  onChildExit?: (exit: ActorExit) => void;
  onChildStarted?: (id: string, incarnation: number, restarted: boolean) => void;
  /** Injectable for deterministic tests of the backoff. */
  random?: () => number;
}

interface ChildRecord {
  spec: ChildSpec;
  /** True while the supervisor itself is stopping this child, so its exit is not a failure. */
  stopRequested: boolean;
  /** Not to run (see ChildSpec.dormant): neither started nor restarted. */
  dormant: boolean;
}

export type SupervisorState = 'idle' | 'running' | 'stopping' | 'stopped' | 'gave-up';

export class Supervisor {
  private readonly options: SupervisorOptions;
  private readonly children: ChildRecord[] = [];
  private readonly restartTimes: number[] = [];
  private supervisorState: SupervisorState = 'idle';
  private queue: Promise<void> = Promise.resolve();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(options: SupervisorOptions) {
    this.options = options;
  }

  get state(): SupervisorState {
    return this.supervisorState;
  }

  /** Registers a child; call before `start`. The child's ActorRef must route exits to `childExited`. */
  add(spec: ChildSpec): void {
    if (this.children.some((child) => child.spec.id === spec.id)) {
      throw new Error(`duplicate child id ${spec.id}`);
    }
    this.children.push({ spec, stopRequested: false, dormant: spec.dormant === true });
  }

  /** A dormant child is to run: started now (in the supervisor's order), restarted as any other. */
  enable(id: string): Promise<void> {
    const child = this.child(id);
    return this.serialize(async () => {
      child.dormant = false;
      if (this.supervisorState === 'running') await this.startChild(child, false);
    });
  }

  /** The child is to stop and stay stopped (gracefully, within its shutdown timeout). */
  disable(id: string): Promise<void> {
    const child = this.child(id);
    return this.serialize(async () => {
      child.dormant = true;
      await this.stopChildren([child]);
    });
  }

  isEnabled(id: string): boolean {
    return !this.child(id).dormant;
  }

  private child(id: string): ChildRecord {
    const child = this.children.find((candidate) => candidate.spec.id === id);
    if (child === undefined) throw new Error(`no child ${id}`);
    return child;
  }

  /** Starts every child in order. A child that fails to start goes through the restart path. */
  async start(): Promise<void> {
    this.supervisorState = 'running';
    await this.serialize(async () => {
      for (const child of this.children) {
        if (this.supervisorState !== 'running') return;
        if (child.dormant) continue;
        await this.startChild(child, false);
      }
    });
  }

  /** Called by each child's ActorRef `onExit`. */
  childExited(exit: ActorExit): void {
    const child = this.children.find((candidate) => candidate.spec.ref.name === exit.actor);
    if (child === undefined) return;
    this.options.onChildExit?.(exit);
    if (child.stopRequested || child.dormant || this.supervisorState !== 'running') return;
    const level = exit.reason === 'normal' ? 'info' : 'error';
    this.options.log[level](
      {
        actor: exit.actor,
        incarnation: exit.incarnation,
        reason: exit.reason,
        code: exit.code,
        err: exit.error,
      },
      'actor exited',
    );
    if (!this.shouldRestart(child.spec.restart, exit)) return;
    const permanent = exit.reason === 'start-failed' ? projectError(exit.error) : undefined;
    if (permanent !== undefined) {
      // Restarting cannot fix a project that is wrong (a changed schema, an invalid module):
      // stop now with that error instead of burning the restart budget and exiting "retryable".
      void this.giveUp(child.spec.id, permanent);
      return;
    }
    this.scheduleRestart(child);
  }

  /** Stops every child in reverse start order, each within its shutdown timeout. */
  async stop(): Promise<void> {
    if (this.supervisorState === 'stopped' || this.supervisorState === 'stopping') return;
    const gaveUp = this.supervisorState === 'gave-up';
    this.supervisorState = 'stopping';
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await this.stopChildren([...this.children].reverse());
    this.supervisorState = gaveUp ? 'gave-up' : 'stopped';
  }

  /** Restarts within the current period (for `/status`). */
  recentRestarts(now = Date.now()): number {
    this.pruneRestartTimes(now);
    return this.restartTimes.length;
  }

  private shouldRestart(policy: RestartPolicy, exit: ActorExit): boolean {
    if (policy === 'temporary') return false;
    if (policy === 'transient') return exit.reason !== 'normal';
    return true;
  }

  private scheduleRestart(child: ChildRecord): void {
    const now = Date.now();
    this.pruneRestartTimes(now);
    this.restartTimes.push(now);
    if (this.restartTimes.length > this.options.intensity) {
      void this.giveUp(child.spec.id);
      return;
    }
    const delay = this.backoffDelay(this.restartTimes.length);
    this.options.log.warn(
      { actor: child.spec.id, delayMs: delay, strategy: this.options.strategy },
      'restarting actor',
    );
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.serialize(() => this.restart(child));
    }, delay);
    this.timers.add(timer);
  }

  /** Exponential in the number of recent restarts, capped, with "equal jitter" (½ fixed + ½ random). */
  private backoffDelay(recent: number): number {
    const exponential = Math.min(this.options.backoffMaxMs, this.options.backoffBaseMs * 2 ** (recent - 1));
    const random = this.options.random ?? Math.random;
    return Math.round(exponential / 2 + random() * (exponential / 2));
  }

  private async restart(child: ChildRecord): Promise<void> {
    if (this.supervisorState !== 'running') return;
    const index = this.children.indexOf(child);
    const affected = this.options.strategy === 'rest_for_one' ? this.children.slice(index) : [child];
    // Under rest_for_one, the children started after the failed one depend on it: stop them (in
    // reverse order) and start them again after it.
    await this.stopChildren(affected.slice(1).reverse());
    for (const record of affected) {
      if (this.supervisorState !== 'running') return;
      if (record.dormant) continue;
      await this.startChild(record, true);
    }
  }

  private async startChild(child: ChildRecord, restarted: boolean): Promise<void> {
    const { spec } = child;
    const state = spec.ref.state;
    if (state === 'running' || state === 'starting') return;
    child.stopRequested = false;
    if (restarted) spec.ref.restarts += 1;
    try {
      await spec.beforeStart?.();
    } catch (error) {
      this.options.log.error({ actor: spec.id, err: error }, 'actor could not be prepared for start');
      this.childExited({
        actor: spec.ref.name,
        incarnation: spec.ref.incarnation,
        reason: 'start-failed',
        code: 1,
        error: error instanceof Error ? error : new Error(String(error)),
      });
      return;
    }
    try {
      await spec.ref.start();
      this.options.onChildStarted?.(spec.id, spec.ref.incarnation, restarted);
    } catch {
      // The ActorRef already reported the exit through onExit → childExited, which decides.
    }
  }

  private async stopChildren(records: ChildRecord[]): Promise<void> {
    for (const record of records) {
      record.stopRequested = true;
      try {
        await record.spec.ref.stop(record.spec.shutdownTimeoutMs);
      } catch (error) {
        this.options.log.warn({ actor: record.spec.id, err: error }, 'actor stop failed');
      }
    }
  }

  private async giveUp(actor: string, cause?: StrataError): Promise<void> {
    if (this.supervisorState !== 'running') return;
    const error =
      cause ??
      new StrataError(
        'STRATA_ERR_RESTART_INTENSITY',
        `more than ${this.options.intensity} restarts within ${this.options.periodMs} ms (last: ${actor}); stopping`,
        { details: { actor, intensity: this.options.intensity, periodMs: this.options.periodMs } },
      );
    this.options.log.fatal(
      { err: error },
      cause === undefined
        ? 'restart intensity exceeded; stopping every actor'
        : 'cannot start; stopping every actor',
    );
    this.supervisorState = 'gave-up';
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await this.stopChildren([...this.children].reverse());
    this.options.onGiveUp(error);
  }

  private pruneRestartTimes(now: number): void {
    while (this.restartTimes.length > 0 && now - (this.restartTimes[0] ?? now) > this.options.periodMs) {
      this.restartTimes.shift();
    }
  }

  /** Start/restart work runs one at a time, so overlapping exits cannot interleave restarts. */
  private serialize(work: () => Promise<void>): Promise<void> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
