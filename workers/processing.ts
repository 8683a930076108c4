// Worker entry of the processing actor (one thread per owned pipeline).
import { processingActor } from '../src/processing/processing-actor.ts';
import { runActorInWorker } from '../src/supervisor/worker-entry.ts';

// A handler that forgot an `await` makes its late context call throw inside a promise nobody
// awaits. The batch already fails with that error (BatchExecutor records it), so the rejection
// must not also kill the thread; every other unhandled rejection still does.
process.on('unhandledRejection', (reason) => {
  if ((reason as { code?: unknown } | null)?.code === 'STRATA_ERR_CONTEXT_EXPIRED') return;
  throw reason;
});

runActorInWorker(processingActor);
