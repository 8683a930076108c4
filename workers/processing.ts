// Worker entry of the processing actor (one thread per owned pipeline).
import { processingActor } from '../src/processing/processing-actor.ts';
import { runActorInWorker } from '../src/supervisor/worker-entry.ts';

runActorInWorker(processingActor);
