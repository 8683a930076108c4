// The actor side of the actor runtime: runs one actor definition behind a message endpoint (a
// worker's `parentPort`, or one end of a MessageChannel when the actor runs in-thread for tests).
// It owns the mailbox (one message at a time, in arrival order), answers pings outside the
// mailbox, and turns thrown errors into serialized replies that keep `code` and `cause`.

import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { deserializeError, StrataError, serializeError } from '../errors.ts';
import { actorLogger, createLogger, type Logger, type LoggerOptions } from '../logger.ts';
import type {
  ActorEvent,
  CallMessage,
  FromActorMessage,
  NotifyMessage,
  RequestMap,
  ToActorMessage,
} from '../protocol.ts';
import { isToActorMessage } from '../protocol.ts';
import { trackHeapAfterGc } from './heap-after-gc.ts';

/** A method an actor exposes. Arguments and results must be structured-cloneable. */
export type ActorMethod = (...args: never) => unknown;
export type ActorMethods = { [method: string]: ActorMethod };

/** Lifecycle hook names the runtime calls itself; not addressable by `call`. */
export const STOP_METHOD = '__stop';

export interface ActorContext<Data, Event = ActorEvent, Requests extends RequestMap = Record<never, never>> {
  readonly name: string;
  readonly incarnation: number;
  readonly data: Data;
  readonly log: Logger;
  /** Sends a domain event to the supervisor. `transfer` moves buffers instead of copying them. */
  emit(event: Event, transfer?: ArrayBuffer[]): void;
  /**
   * Asks another actor, through the supervisor (which decides who answers): resolves with the
   * answer, rejects with the answering side's error (an actor restarting, a database error, …).
   */
  request<Method extends keyof Requests & string>(
    method: Method,
    args: Requests[Method]['args'],
  ): Promise<Requests[Method]['result']>;
}

export interface ActorDefinition<
  Data,
  Methods extends ActorMethods,
  Event = ActorEvent,
  Requests extends RequestMap = Record<never, never>,
> {
  readonly name: string;
  /** Builds the actor; resolves with its methods once it accepts calls. */
  start(
    context: ActorContext<Data, Event, Requests>,
  ): Promise<ActorInstance<Methods>> | ActorInstance<Methods>;
}

export interface ActorInstance<Methods extends ActorMethods> {
  methods: Methods;
  /** Graceful stop: finish or hand off work. Called once, through the mailbox. */
  stop?(): Promise<void> | void;
  /** Figures sent with every pong (cheap, synchronous), shown on /status. */
  report?(): Record<string, number>;
}

/** What the main thread hands an actor at start (worker `workerData.init`, or in-thread). */
export interface ActorInit<Data> {
  name: string;
  incarnation: number;
  data: Data;
  logger: LoggerOptions;
}

/** The minimal port surface both `parentPort` and `MessagePort` provide. */
export interface HostPort {
  postMessage(message: FromActorMessage, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

export interface ServeOptions {
  /** Called when `start` throws, after the failure was reported (a worker exits here). */
  onStartFailed?: (error: unknown) => void;
  /** Called after a graceful stop completed and was acknowledged. */
  onStopped?: () => void;
}

export function serveActor<Data, Methods extends ActorMethods, Event, Requests extends RequestMap>(
  port: HostPort,
  definition: ActorDefinition<Data, Methods, Event, Requests>,
  init: ActorInit<Data>,
  options: ServeOptions = {},
): void {
  const log = actorLogger(createLogger(init.logger), init.name, init.incarnation);
  const incarnation = init.incarnation;
  const mailbox: Array<CallMessage | NotifyMessage> = [];
  let instance: ActorInstance<Methods> | undefined;
  let draining = false;
  let lastElu = performance.eventLoopUtilization();
  const heapAfterGc = trackHeapAfterGc();
  /** This actor's requests awaiting their answer, by id. */
  const requests = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let nextRequestId = 1;

  const post = (message: FromActorMessage, transfer?: readonly ArrayBuffer[]) =>
    port.postMessage(message, transfer);

  const context: ActorContext<Data, Event, Requests> = {
    name: init.name,
    incarnation,
    data: init.data,
    log,
    emit(event, transfer) {
      post({ kind: 'event', incarnation, event: event as ActorEvent }, transfer);
    },
    request(method, args) {
      return new Promise((resolve, reject) => {
        const id = nextRequestId++;
        requests.set(id, { resolve: resolve as (value: unknown) => void, reject });
        post({ kind: 'request', id, incarnation, method, args });
      });
    },
  };

  port.on('message', (raw) => {
    if (!isToActorMessage(raw)) {
      log.warn({ received: typeof raw }, 'dropped a message that is not part of the actor protocol');
      return;
    }
    const message: ToActorMessage = raw;
    if (message.incarnation !== incarnation) return; // addressed to an earlier life of this actor
    if (message.kind === 'answer') {
      const waiting = requests.get(message.id);
      requests.delete(message.id);
      if (message.ok) waiting?.resolve(message.value);
      else waiting?.reject(deserializeError(message.error));
      return;
    }
    if (message.kind === 'ping') {
      const now = performance.eventLoopUtilization();
      const delta = performance.eventLoopUtilization(now, lastElu);
      lastElu = now;
      const heap = heapAfterGc.figures();
      post({
        kind: 'pong',
        seq: message.seq,
        incarnation,
        report: {
          eventLoopUtilization: delta.utilization,
          heapUsedBytes: v8.getHeapStatistics().used_heap_size,
          heapAfterGcPeakBytes: heap.peakBytes,
          heapAfterGcRecentMedianBytes: heap.recentMedianBytes,
          mailboxDepth: mailbox.length,
          extra: instance?.report?.() ?? {},
        },
      });
      return;
    }
    mailbox.push(message);
    void drain();
  });

  // The mailbox: one message at a time, so an actor's state needs no locks. Long-running work
  // (a processing loop) runs outside the mailbox and is started by `start`.
  async function drain(): Promise<void> {
    if (draining || instance === undefined) return;
    draining = true;
    try {
      for (let message = mailbox.shift(); message !== undefined; message = mailbox.shift()) {
        await handle(message, instance);
      }
    } finally {
      draining = false;
    }
  }

  async function handle(message: CallMessage | NotifyMessage, actor: ActorInstance<Methods>): Promise<void> {
    const reply = (ok: boolean, payload: unknown) => {
      if (message.kind !== 'call') {
        if (!ok) log.error({ err: payload, method: message.method }, 'notification handler failed');
        return;
      }
      post(
        ok
          ? { kind: 'reply', id: message.id, incarnation, ok: true, value: payload }
          : { kind: 'reply', id: message.id, incarnation, ok: false, error: serializeError(payload) },
      );
    };
    if (message.method === STOP_METHOD) {
      try {
        await actor.stop?.();
        reply(true, undefined);
        options.onStopped?.();
      } catch (error) {
        reply(false, error);
      }
      return;
    }
    const method = Object.hasOwn(actor.methods, message.method) ? actor.methods[message.method] : undefined;
    if (method === undefined) {
      reply(
        false,
        new StrataError(
          'STRATA_ERR_ACTOR_UNKNOWN_METHOD',
          `actor ${init.name} has no method ${message.method}`,
        ),
      );
      return;
    }
    try {
      const value = await (method as (...args: unknown[]) => unknown).apply(actor.methods, message.args);
      reply(true, value);
    } catch (error) {
      reply(false, error);
    }
  }

  void (async () => {
    try {
      instance = await definition.start(context);
    } catch (error) {
      log.error({ err: error }, 'actor failed to start');
      post({ kind: 'start-failed', incarnation, error: serializeError(error) });
      options.onStartFailed?.(error);
      return;
    }
    post({ kind: 'ready', incarnation });
    void drain();
  })();
}
