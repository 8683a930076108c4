import type { StrataError } from '../../src/errors.ts';
import type { ActorExit } from '../../src/supervisor/actor-ref.ts';
import { type RestartPolicy, type Strategy, Supervisor } from '../../src/supervisor/supervisor.ts';
import { silentLog, testActorRef } from './actors.ts';

/** A supervisor over test actors, wired the way the daemon wires its own. */
export function supervisedTestActors(options: {
  mode: 'worker' | 'in-thread';
  names: string[];
  strategy?: Strategy;
  restart?: RestartPolicy;
  /** Children not started with the others (run only once enabled). */
  dormant?: string[];
  intensity?: number;
  pingIntervalMs?: number;
  failAtStart?: (name: string) => boolean;
}) {
  const exits: ActorExit[] = [];
  const started: Array<{ id: string; incarnation: number }> = [];
  let gaveUp: StrataError | null = null;
  const supervisor: Supervisor = new Supervisor({
    strategy: options.strategy ?? 'one_for_one',
    intensity: options.intensity ?? 5,
    periodMs: 10_000,
    backoffBaseMs: 10,
    backoffMaxMs: 50,
    log: silentLog,
    onGiveUp: (error) => {
      gaveUp = error;
    },
    onChildExit: (exit) => exits.push(exit),
    onChildStarted: (id, incarnation) => started.push({ id, incarnation }),
  });
  const refs = options.names.map((name) =>
    testActorRef(options.mode, {
      name,
      data: { label: name, failAtStart: options.failAtStart?.(name) ?? false },
      pingIntervalMs: options.pingIntervalMs ?? 1_000,
      onExit: (exit) => supervisor.childExited(exit),
    }),
  );
  for (const ref of refs) {
    supervisor.add({
      id: ref.name,
      ref,
      restart: options.restart ?? 'permanent',
      shutdownTimeoutMs: 2_000,
      dormant: options.dormant?.includes(ref.name) === true,
    });
  }
  return { supervisor, refs, exits, started, gaveUp: () => gaveUp };
}

export async function until(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
