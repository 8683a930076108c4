// Worker entry of the persistence actor (the single writer).
import { persistenceActor } from '../src/persistence/persistence-actor.ts';
import { runActorInWorker } from '../src/supervisor/worker-entry.ts';

runActorInWorker(persistenceActor);
