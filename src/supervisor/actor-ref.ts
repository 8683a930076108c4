// The main-thread handle to one actor, stable across the actor's restarts. It fixes what comlink
// alone gets wrong (see ../shared/reference/reliability.md):
//  - every pending call is rejected the moment the actor's thread exits or errors, instead of
//    hanging forever;
//  - each life of the actor is an *incarnation*; every message is stamped with it, and replies
//    or events from a dead incarnation are dropped (and counted);
//  - a ping every `pingIntervalMs` detects a blocked event loop: no pong for two intervals and
//    the thread is terminated, its calls rejected, and the supervisor told.
// It also counts in-flight calls and reports the actor's own figures (mailbox, ELU, heap).

import { deserializeError, StrataError, serializeError } from '../errors.ts';
import type { Logger, LoggerOptions } from '../logger.ts';
import type {
  ActorEvent,
  ActorSelfReport,
  AnswerMessage,
  FromActorMessage,
  RequestMap,
  RequestMessage,
} from '../protocol.ts';
import { isFromActorMessage } from '../protocol.ts';
import { type ActorMethod, type ActorMethods, STOP_METHOD } from './actor-host.ts';
import type { ActorEndpoint, ExitInfo, SpawnEndpoint } from './endpoints.ts';

export type ActorState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped' | 'crashed';
export type ExitReason = 'normal' | 'crash' | 'unresponsive' | 'start-failed';

export interface ActorExit {
  actor: string;
  incarnation: number;
  reason: ExitReason;
  code: number;
  error?: Error;
}

export interface ActorStats {
  state: ActorState;
  incarnation: number;
  restarts: number;
  lastExitReason: string | null;
  inFlightCalls: number;
  mailboxDepth: number;
  eventLoopUtilization: number;
  heapUsedBytes: number;
  /** The thread's peak heap right after a full GC (see heap-after-gc.ts). */
  heapAfterGcPeakBytes: number;
  /** The median after the recent full GCs (see heap-after-gc.ts): what the thread settles at. */
  heapAfterGcRecentMedianBytes: number;
  droppedStaleMessages: number;
  /** Times the supervisor's own thread was paused and the missed pongs were forgiven. */
  pausesForgiven: number;
  threadId: number | null;
  extra: Record<string, number>;
}

export interface ActorRefOptions<
  Data,
  Event = ActorEvent,
  Requests extends RequestMap = Record<never, never>,
> {
  name: string;
  spawn: SpawnEndpoint<Data>;
  /** Start-up data; a function is re-evaluated on every restart (fresh ports, current config). */
  data: Data | (() => Data);
  logger: LoggerOptions;
  log: Logger;
  pingIntervalMs: number;
  /** How long `start` waits for the actor's `ready` before treating it as a failed start. */
  startTimeoutMs?: number;
  /** The actor's domain events (the actor's definition says which: see ActorDefinition). */
  onEvent?: (event: Event, incarnation: number) => void;
  /**
   * Carries out the actor's requests of other actors (see ActorContext.request); the answer, or
   * the error, goes back to the incarnation that asked. Without it every request is refused.
   */
  onRequest?: <Method extends keyof Requests & string>(
    method: Method,
    args: Requests[Method]['args'],
  ) => Promise<Requests[Method]['result']>;
  onExit?: (exit: ActorExit) => void;
}

interface PendingCall {
  resolve(value: unknown): void;
  reject(error: Error): void;
  method: string;
}

type Args<M extends ActorMethods, K extends keyof M> = Parameters<M[K]>;
type Result<M extends ActorMethods, K extends keyof M> = Awaited<ReturnType<M[K]>>;

export class ActorRef<
  Methods extends ActorMethods,
  Data = unknown,
  Event = ActorEvent,
  Requests extends RequestMap = Record<never, never>,
> {
  readonly name: string;
  private readonly options: ActorRefOptions<Data, Event, Requests>;
  private endpoint: ActorEndpoint | null = null;
  private currentIncarnation = 0;
  private actorState: ActorState = 'idle';
  private nextCallId = 1;
  private readonly pending = new Map<number, PendingCall>();
  private pingTimer: NodeJS.Timeout | null = null;
  private pingSeq = 0;
  private lastPongAt = 0;
  /** Pauses of this thread noticed by the ping timer (see startPinging). */
  private pausesSeen = 0;
  private lastReport: ActorSelfReport = {
    eventLoopUtilization: 0,
    heapUsedBytes: 0,
    heapAfterGcPeakBytes: 0,
    heapAfterGcRecentMedianBytes: 0,
    mailboxDepth: 0,
    extra: {},
  };
  private exitReasonOverride: { reason: ExitReason; error: Error } | null = null;
  private droppedStale = 0;
  private exitWaiters: Array<() => void> = [];
  /** Set by the supervisor; kept here so `/status` reads one object per actor. */
  restarts = 0;
  lastExitReason: string | null = null;

  constructor(options: ActorRefOptions<Data, Event, Requests>) {
    this.name = options.name;
    this.options = options;
  }

  get state(): ActorState {
    return this.actorState;
  }

  get incarnation(): number {
    return this.currentIncarnation;
  }

  /** Spawns a new incarnation and resolves once it is ready; rejects if it fails to start. */
  start(): Promise<void> {
    if (this.actorState === 'starting' || this.actorState === 'running' || this.actorState === 'stopping') {
      return Promise.reject(new Error(`actor ${this.name} is already ${this.actorState}`));
    }
    const incarnation = ++this.currentIncarnation;
    this.actorState = 'starting';
    this.exitReasonOverride = null;
    const data =
      typeof this.options.data === 'function' ? (this.options.data as () => Data)() : this.options.data;
    const endpoint = this.options.spawn({ name: this.name, incarnation, data, logger: this.options.logger });
    this.endpoint = endpoint;

    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const startTimer =
        this.options.startTimeoutMs === undefined
          ? null
          : setTimeout(() => {
              if (settled) return;
              this.exitReasonOverride = {
                reason: 'start-failed',
                error: new StrataError(
                  'STRATA_ERR_ACTOR_START_FAILED',
                  `actor ${this.name} was not ready within ${this.options.startTimeoutMs} ms`,
                ),
              };
              void endpoint.terminate();
            }, this.options.startTimeoutMs);
      const settle = (error?: Error) => {
        if (settled) return;
        settled = true;
        if (startTimer !== null) clearTimeout(startTimer);
        if (error === undefined) resolve();
        else reject(error);
      };

      endpoint.onMessage((raw) => {
        if (!isFromActorMessage(raw)) return;
        if (raw.incarnation !== incarnation || this.endpoint !== endpoint) {
          this.droppedStale += 1;
          return;
        }
        if (raw.kind === 'ready') {
          this.actorState = 'running';
          this.startPinging(endpoint, incarnation);
          settle();
          return;
        }
        if (raw.kind === 'start-failed') {
          this.exitReasonOverride = {
            reason: 'start-failed',
            error: new StrataError('STRATA_ERR_ACTOR_START_FAILED', `actor ${this.name} failed to start`, {
              cause: deserializeError(raw.error),
            }),
          };
          return; // the thread exits next; the exit handler settles
        }
        this.receive(raw);
      });

      endpoint.onExit((info) => {
        if (this.endpoint !== endpoint) return;
        const exit = this.handleExit(info, incarnation);
        // After `ready` this is a no-op; before it, the exit is a failed start.
        settle(
          exit.error ??
            new StrataError('STRATA_ERR_ACTOR_START_FAILED', `actor ${this.name} exited during start`),
        );
      });
    });
  }

  /** Calls a method and resolves with its result (or rejects with its error, `code` intact). */
  call<K extends keyof Methods & string>(method: K, ...args: Args<Methods, K>): Promise<Result<Methods, K>> {
    return this.callTransferring(method, args, []);
  }

  /** Like `call`, moving the given buffers to the actor instead of copying them. */
  callTransferring<K extends keyof Methods & string>(
    method: K,
    args: Args<Methods, K>,
    transfer: readonly ArrayBuffer[],
  ): Promise<Result<Methods, K>> {
    return this.send(method, args as unknown[], transfer) as Promise<Result<Methods, K>>;
  }

  /** One-way message through the mailbox; dropped (and logged) if the actor is not running. */
  notify<K extends keyof Methods & string>(method: K, ...args: Args<Methods, K>): void {
    const endpoint = this.endpoint;
    if (endpoint === null || this.actorState !== 'running') {
      this.options.log.debug({ actor: this.name, method }, 'notification dropped: actor not running');
      return;
    }
    endpoint.post({ kind: 'notify', incarnation: this.currentIncarnation, method, args: args as unknown[] });
  }

  /**
   * Graceful stop: the actor's own `stop` runs through its mailbox (after queued work), then the
   * thread ends. Past `timeoutMs` the thread is terminated.
   */
  async stop(timeoutMs: number): Promise<void> {
    const endpoint = this.endpoint;
    if (endpoint === null || this.actorState === 'stopped' || this.actorState === 'crashed') return;
    this.actorState = 'stopping';
    const exited = this.waitForExit();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    this.send(STOP_METHOD, [], [], true).catch((error: unknown) => {
      this.options.log.warn({ actor: this.name, err: error }, 'actor stop hook failed');
    });
    const outcome = await Promise.race([exited.then(() => 'exited' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.options.log.warn({ actor: this.name, timeoutMs }, 'actor did not stop in time; terminating');
      await endpoint.terminate();
      await exited;
    }
  }

  /** Ends the thread now (busy loop, give-up). Pending calls reject with `reason`. */
  async terminate(reason: ExitReason, error: Error): Promise<void> {
    const endpoint = this.endpoint;
    if (endpoint === null || this.actorState === 'stopped' || this.actorState === 'crashed') return;
    this.exitReasonOverride = { reason, error };
    const exited = this.waitForExit();
    await endpoint.terminate();
    await exited;
  }

  stats(): ActorStats {
    return {
      state: this.actorState,
      incarnation: this.currentIncarnation,
      restarts: this.restarts,
      lastExitReason: this.lastExitReason,
      inFlightCalls: this.pending.size,
      mailboxDepth: this.lastReport.mailboxDepth,
      eventLoopUtilization: this.lastReport.eventLoopUtilization,
      heapUsedBytes: this.lastReport.heapUsedBytes,
      heapAfterGcPeakBytes: this.lastReport.heapAfterGcPeakBytes,
      heapAfterGcRecentMedianBytes: this.lastReport.heapAfterGcRecentMedianBytes,
      droppedStaleMessages: this.droppedStale,
      pausesForgiven: this.pausesSeen,
      threadId: this.endpoint?.threadId ?? null,
      extra: this.lastReport.extra,
    };
  }

  private send(method: string, args: unknown[], transfer: readonly ArrayBuffer[], stopping = false) {
    const endpoint = this.endpoint;
    const acceptable = this.actorState === 'running' || (stopping && this.actorState === 'stopping');
    if (endpoint === null || !acceptable) {
      return Promise.reject(
        new StrataError('STRATA_ERR_ACTOR_STOPPED', `actor ${this.name} is ${this.actorState}`, {
          details: { actor: this.name, method },
        }),
      );
    }
    const id = this.nextCallId++;
    return new Promise<unknown>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      try {
        endpoint.post({ kind: 'call', id, incarnation: this.currentIncarnation, method, args }, transfer);
      } catch (error) {
        // DataCloneError: the arguments cannot cross a thread boundary.
        this.pending.delete(id);
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  }

  private receive(message: FromActorMessage): void {
    switch (message.kind) {
      case 'reply': {
        const call = this.pending.get(message.id);
        if (call === undefined) return;
        this.pending.delete(message.id);
        if (message.ok) call.resolve(message.value);
        else call.reject(deserializeError(message.error));
        return;
      }
      case 'pong':
        this.lastPongAt = performance.now();
        this.lastReport = message.report;
        return;
      case 'event':
        // The actor's definition fixes which events it emits; the thread boundary cannot check it.
        this.options.onEvent?.(message.event as Event, message.incarnation);
        return;
      case 'request':
        this.answer(message);
        return;
      case 'ready':
      case 'start-failed':
        return; // handled in start()
    }
  }

  /** Carries out an actor's request and answers the incarnation that asked, if it still lives. */
  private answer(request: RequestMessage): void {
    const endpoint = this.endpoint;
    const { id, incarnation } = request;
    // The actor's definition fixes its requests' types; the thread boundary cannot check them.
    const handler =
      (this.options.onRequest as ((method: string, args: unknown) => Promise<unknown>) | undefined) ??
      (() =>
        Promise.reject(
          new StrataError(
            'STRATA_ERR_INTERNAL',
            `actor ${this.name} may not make requests (${request.method})`,
          ),
        ));
    const send = (message: AnswerMessage) => {
      if (this.endpoint === endpoint && this.currentIncarnation === incarnation) endpoint?.post(message);
    };
    handler(request.method, request.args).then(
      (value) => send({ kind: 'answer', id, incarnation, ok: true, value }),
      (error: unknown) => send({ kind: 'answer', id, incarnation, ok: false, error: serializeError(error) }),
    );
  }

  private startPinging(endpoint: ActorEndpoint, incarnation: number): void {
    this.stopPinging();
    const interval = this.options.pingIntervalMs;
    this.lastPongAt = performance.now();
    let lastTickAt = performance.now();
    this.pingTimer = setInterval(() => {
      if (this.endpoint !== endpoint || this.currentIncarnation !== incarnation) return;
      const now = performance.now();
      const lateMs = now - lastTickAt - interval;
      lastTickAt = now;
      if (lateMs > interval) {
        // This tick is late by more than an interval: this thread itself was frozen (SIGSTOP, a
        // VM or GC pause, a busy main thread), so pongs could not be received either. The actor
        // is not to blame: its silence is counted again from now.
        this.lastPongAt = now;
        this.pausesSeen += 1;
        this.options.log.warn(
          { actor: this.name, incarnation, pausedMs: Math.round(lateMs + interval) },
          'supervisor thread was paused; not counting the missed pongs against the actor',
        );
      }
      // A pong is due every interval; none for two means the event loop is blocked.
      if (now - this.lastPongAt > 2 * interval) {
        const silentMs = Math.round(performance.now() - this.lastPongAt);
        this.options.log.error(
          { actor: this.name, incarnation, silentMs },
          'actor unresponsive; terminating',
        );
        void this.terminate(
          'unresponsive',
          new StrataError(
            'STRATA_ERR_ACTOR_UNRESPONSIVE',
            `actor ${this.name} answered no ping for ${silentMs} ms (interval ${interval} ms)`,
            { details: { actor: this.name, incarnation, silentMs } },
          ),
        );
        return;
      }
      endpoint.post({ kind: 'ping', seq: ++this.pingSeq, incarnation });
    }, interval);
    this.pingTimer.unref();
  }

  private stopPinging(): void {
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  private handleExit(info: ExitInfo, incarnation: number): ActorExit {
    this.stopPinging();
    const wasStopping = this.actorState === 'stopping';
    let reason: ExitReason;
    let error: Error | undefined;
    if (this.exitReasonOverride !== null) {
      ({ reason, error } = this.exitReasonOverride);
    } else if (this.actorState === 'starting') {
      // Died before `ready`. Its `start-failed` message (if any) may arrive after the exit event.
      reason = 'start-failed';
      error = new StrataError(
        'STRATA_ERR_ACTOR_START_FAILED',
        `actor ${this.name} exited with code ${info.code} during start`,
        {
          cause: info.error,
          details: { actor: this.name, incarnation, exitCode: info.code },
        },
      );
    } else if (info.error !== undefined || (info.code !== 0 && !wasStopping)) {
      reason = 'crash';
      error = new StrataError(
        'STRATA_ERR_ACTOR_EXITED',
        `actor ${this.name} exited with code ${info.code}${info.error instanceof Error ? `: ${info.error.message}` : ''}`,
        { cause: info.error, details: { actor: this.name, incarnation, exitCode: info.code } },
      );
    } else {
      reason = 'normal';
    }
    this.actorState = reason === 'normal' ? 'stopped' : 'crashed';
    this.lastExitReason = error === undefined ? reason : `${reason}: ${error.message}`;
    this.endpoint = null;

    const rejection =
      error ??
      new StrataError('STRATA_ERR_ACTOR_EXITED', `actor ${this.name} stopped before answering`, {
        details: { actor: this.name, incarnation },
      });
    for (const [id, call] of this.pending) {
      this.pending.delete(id);
      call.reject(rejection);
    }
    const exit: ActorExit = { actor: this.name, incarnation, reason, code: info.code };
    if (error !== undefined) exit.error = error;
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const waiter of waiters) waiter();
    this.options.onExit?.(exit);
    return exit;
  }

  private waitForExit(): Promise<void> {
    return new Promise((resolve) => this.exitWaiters.push(resolve));
  }
}

export type { ActorMethod };
