// How the main thread reaches an actor: a real worker thread, or the same actor code served
// in-thread over a MessageChannel (unit tests, and the benchmark's in-thread reference). Both
// give the actor reference one surface: post, receive, learn of the exit, terminate.

import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import { PACKAGE_ROOT } from '../package-root.ts';
import type { FromActorMessage, ToActorMessage } from '../protocol.ts';
import { type ActorDefinition, type ActorInit, type ActorMethods, serveActor } from './actor-host.ts';

export interface ExitInfo {
  /** Thread exit code (0 = the actor ended by itself or was stopped). In-thread: always 0 or 1. */
  code: number;
  /** The uncaught error that killed the thread, when there was one. */
  error?: unknown;
}

export interface ActorEndpoint {
  post(message: ToActorMessage, transfer?: readonly ArrayBuffer[]): void;
  onMessage(listener: (message: unknown) => void): void;
  /** Called once, when the actor is gone for whatever reason. */
  onExit(listener: (info: ExitInfo) => void): void;
  /** Ends the actor without its cooperation (the only cure for a busy loop). */
  terminate(): Promise<void>;
  readonly threadId: number | null;
}

export type SpawnEndpoint<Data> = (init: ActorInit<Data>) => ActorEndpoint;

const bootstrapUrl = pathToFileURL(path.join(PACKAGE_ROOT, 'workers/bootstrap.mjs'));

export interface WorkerSpawnOptions {
  /** V8 heap cap for the actor's thread; exceeding it ends the thread (best effort, see docs). */
  maxOldGenerationSizeMb?: number;
  /** V8's young generation for the thread (see PROCESSING_YOUNG_GENERATION_MB). */
  maxYoungGenerationSizeMb?: number;
}

/** Spawns `entry` (a module that calls `runActorInWorker`) in a fresh worker per incarnation. */
export function workerSpawner<Data>(entry: URL, options: WorkerSpawnOptions = {}): SpawnEndpoint<Data> {
  return (init) => {
    const worker = new Worker(bootstrapUrl, {
      workerData: { entry: entry.href, init },
      // The actor's stdout/stderr go straight to the process's, so its logs are not buffered
      // in the main thread and survive a main thread that is busy.
      stdout: false,
      stderr: false,
      resourceLimits: {
        ...(options.maxOldGenerationSizeMb === undefined
          ? {}
          : { maxOldGenerationSizeMb: options.maxOldGenerationSizeMb }),
        ...(options.maxYoungGenerationSizeMb === undefined
          ? {}
          : { maxYoungGenerationSizeMb: options.maxYoungGenerationSizeMb }),
      },
    });
    let lastError: unknown;
    const exitListeners: Array<(info: ExitInfo) => void> = [];
    worker.on('error', (error) => {
      lastError = error;
    });
    worker.on('exit', (code) => {
      const info: ExitInfo = lastError === undefined ? { code } : { code, error: lastError };
      for (const listener of exitListeners) listener(info);
    });
    return {
      threadId: worker.threadId,
      post: (message, transfer) => worker.postMessage(message, transfer),
      onMessage: (listener) => worker.on('message', listener),
      onExit: (listener) => exitListeners.push(listener),
      terminate: async () => {
        await worker.terminate();
      },
    };
  };
}

/**
 * Serves the actor in this thread over a MessageChannel: same host, same envelope, same
 * structured clone as a worker. It cannot survive a busy loop (there is no second thread to
 * notice), so liveness tests use real workers.
 */
export function inThreadSpawner<Data, Methods extends ActorMethods>(
  definition: ActorDefinition<Data, Methods>,
): SpawnEndpoint<Data> {
  return (init) => {
    const channel = new MessageChannel();
    const exitListeners: Array<(info: ExitInfo) => void> = [];
    let exited = false;
    const exit = (info: ExitInfo) => {
      if (exited) return;
      exited = true;
      channel.port1.close();
      channel.port2.close();
      for (const listener of exitListeners) listener(info);
    };
    serveActor(
      {
        postMessage: (message: FromActorMessage, transfer) => channel.port2.postMessage(message, transfer),
        on: (event, listener) => channel.port2.on(event, listener),
      },
      definition,
      init,
      {
        onStartFailed: (error) => setImmediate(() => exit({ code: 1, error })),
        onStopped: () => setImmediate(() => exit({ code: 0 })),
      },
    );
    return {
      threadId: null,
      post: (message, transfer) => channel.port1.postMessage(message, transfer),
      onMessage: (listener) => channel.port1.on('message', listener),
      onExit: (listener) => exitListeners.push(listener),
      terminate: async () => exit({ code: 1 }),
    };
  };
}
