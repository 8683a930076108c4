// The worker side of one actor thread: each file in `workers/` is one line that hands its actor
// definition here. Start-up data arrives in `workerData.init` (typed by `ActorInit`).

import { parentPort, workerData } from 'node:worker_threads';
import type { FromActorMessage } from '../protocol.ts';
import { type ActorDefinition, type ActorInit, type ActorMethods, serveActor } from './actor-host.ts';

export function runActorInWorker<Data, Methods extends ActorMethods>(
  definition: ActorDefinition<Data, Methods>,
): void {
  const port = parentPort;
  if (port === null) throw new Error(`actor ${definition.name} must run in a worker thread`);
  const init = (workerData as { init: ActorInit<Data> }).init;
  serveActor(
    {
      postMessage: (message: FromActorMessage, transfer) => port.postMessage(message, transfer),
      on: (event, listener) => port.on(event, listener),
    },
    definition,
    init,
    {
      // A failed start ends the thread with a non-zero code; the supervisor counts it as a crash.
      onStartFailed: () => setImmediate(() => process.exit(1)),
      onStopped: () => setImmediate(() => process.exit(0)),
    },
  );
}
