// Worker entry of the materializer actor (live shapes).
import { materializerActor } from '../src/materializer/materializer-actor.ts';
import { runActorInWorker } from '../src/supervisor/worker-entry.ts';

runActorInWorker(materializerActor);
