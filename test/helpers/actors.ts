import pino from 'pino';
import type { LoggerOptions } from '../../src/logger.ts';
import type { ActorEvent } from '../../src/protocol.ts';
import { ActorRef, type ActorRefOptions } from '../../src/supervisor/actor-ref.ts';
import { inThreadSpawner, workerSpawner } from '../../src/supervisor/endpoints.ts';
import {
  type TestActorData,
  type TestActorMethods,
  type TestActorRequests,
  testActor,
} from '../fixtures/test-actor.ts';

export const silentLog = pino({ level: 'silent' });
export const silentLoggerOptions: LoggerOptions = { level: 'silent', format: 'json' };
const workerEntry = new URL('../fixtures/test-actor-worker.ts', import.meta.url);

export function testActorRef(
  mode: 'worker' | 'in-thread',
  overrides: Partial<ActorRefOptions<TestActorData, ActorEvent, TestActorRequests>> = {},
): ActorRef<TestActorMethods, TestActorData, ActorEvent, TestActorRequests> {
  return new ActorRef<TestActorMethods, TestActorData, ActorEvent, TestActorRequests>({
    name: overrides.name ?? 'test-actor',
    spawn: mode === 'worker' ? workerSpawner(workerEntry) : inThreadSpawner(testActor),
    data: {},
    logger: silentLoggerOptions,
    log: silentLog,
    pingIntervalMs: 1_000,
    ...overrides,
  });
}
