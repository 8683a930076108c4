// The actor runtime's contract, with the actor served in-thread (same host code as a worker).
import { afterEach, describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.ts';
import type { ActorEvent } from '../../src/protocol.ts';
import { testActorRef } from '../helpers/actors.ts';

const refs: Array<ReturnType<typeof testActorRef>> = [];
afterEach(async () => {
  for (const ref of refs.splice(0)) await ref.stop(1_000);
});
function make(...args: Parameters<typeof testActorRef>) {
  const ref = testActorRef(...args);
  refs.push(ref);
  return ref;
}

describe('ActorRef (in-thread)', () => {
  it('calls methods and returns structured-cloned results', async () => {
    const ref = make('in-thread', { data: { label: 'a' } });
    await ref.start();
    expect(ref.state).toBe('running');
    expect(await ref.call('echo', { n: 1, list: [1, 2] })).toEqual({ n: 1, list: [1, 2] });
    expect(await ref.call('whoAmI')).toEqual({ label: 'a', incarnation: 1 });
  });

  it('rejects with the actor error, code and details intact', async () => {
    const ref = make('in-thread');
    await ref.start();
    const error = await ref.call('throwCoded').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StrataError);
    expect(error).toMatchObject({
      code: 'STRATA_ERR_WRITE_FAILED',
      details: { row: 7 },
      message: 'thrown on purpose',
    });
  });

  it('rejects unknown methods with a registry code', async () => {
    const ref = make('in-thread');
    await ref.start();
    // biome-ignore lint/suspicious/noExplicitAny: calling a method the type does not allow, on purpose.
    const error = await (ref as any).call('nope').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'STRATA_ERR_ACTOR_UNKNOWN_METHOD' });
  });

  it('runs its mailbox one message at a time, in order', async () => {
    const ref = make('in-thread');
    await ref.start();
    const finished: number[] = [];
    await Promise.all(
      [30, 1, 10].map((ms, i) => ref.call('slow', ms, i).then((value) => finished.push(value))),
    );
    expect(finished).toEqual([0, 1, 2]);
  });

  it('delivers events with the incarnation', async () => {
    const events: Array<{ event: ActorEvent; incarnation: number }> = [];
    const ref = make('in-thread', { onEvent: (event, incarnation) => events.push({ event, incarnation }) });
    await ref.start();
    await ref.call('emitProgress', 3);
    expect(events).toHaveLength(3);
    expect(events.every((e) => e.incarnation === 1 && e.event.type === 'progress')).toBe(true);
  });

  it('rejects start when the actor fails to start, and reports the exit', async () => {
    const exits: string[] = [];
    const ref = make('in-thread', { data: { failAtStart: true }, onExit: (exit) => exits.push(exit.reason) });
    const error = await ref.start().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'STRATA_ERR_ACTOR_START_FAILED' });
    expect((error as Error).cause).toMatchObject({ message: 'configured to fail at start' });
    expect(exits).toEqual(['start-failed']);
    expect(ref.state).toBe('crashed');
  });

  it('refuses calls when not running', async () => {
    const ref = make('in-thread');
    await expect(ref.call('echo', 1)).rejects.toMatchObject({ code: 'STRATA_ERR_ACTOR_STOPPED' });
    await ref.start();
    await ref.stop(1_000);
    expect(ref.state).toBe('stopped');
    await expect(ref.call('echo', 1)).rejects.toMatchObject({ code: 'STRATA_ERR_ACTOR_STOPPED' });
  });

  it('rejects every pending call when the actor is terminated, and restarts as a new incarnation', async () => {
    const ref = make('in-thread');
    await ref.start();
    const pending = [ref.call('slow', 5_000, 1), ref.call('slow', 5_000, 2)];
    expect(ref.stats().inFlightCalls).toBe(2);
    await ref.terminate('crash', new StrataError('STRATA_ERR_ACTOR_EXITED', 'killed by test'));
    for (const call of pending) await expect(call).rejects.toMatchObject({ code: 'STRATA_ERR_ACTOR_EXITED' });
    expect(ref.stats().inFlightCalls).toBe(0);
    await ref.start();
    expect(await ref.call('whoAmI')).toMatchObject({ incarnation: 2 });
  });
});

describe('ActorRef requests (ActorContext.request)', () => {
  it('carries an actor request to onRequest and the answer back, errors with their code', async () => {
    const asked: number[] = [];
    const ref = make('in-thread', {
      onRequest: async (method, value) => {
        asked.push(value);
        if (value < 0) throw new StrataError('STRATA_ERR_WRITE_FAILED', `no ${method} of a negative`);
        return value * 2;
      },
    });
    await ref.start();
    expect(await ref.call('ask', 21)).toBe(42);
    const refused = await ref.call('ask', -1).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 'STRATA_ERR_WRITE_FAILED', message: 'no double of a negative' });
    expect(asked).toEqual([21, -1]);
  });

  it('refuses every request of an actor given no onRequest', async () => {
    const ref = make('in-thread');
    await ref.start();
    await expect(ref.call('ask', 1)).rejects.toMatchObject({ code: 'STRATA_ERR_INTERNAL' });
  });
});

describe('ActorRef incarnation guard', () => {
  it('drops replies and events stamped with an earlier incarnation', async () => {
    const { ActorRef } = await import('../../src/supervisor/actor-ref.ts');
    const { silentLog, silentLoggerOptions } = await import('../helpers/actors.ts');
    // A hand-driven endpoint: the test plays the actor, so it can send a stale message on purpose.
    let deliver: (message: unknown) => void = () => {};
    const posted: Array<{ kind: string; id?: number; incarnation: number }> = [];
    const events: unknown[] = [];
    const ref = new ActorRef<{ echo(value: number): number }>({
      name: 'scripted',
      spawn: () => ({
        threadId: null,
        post: (message) => posted.push(message as never),
        onMessage: (listener) => {
          deliver = listener;
        },
        onExit: () => {},
        terminate: async () => {},
      }),
      data: {},
      logger: silentLoggerOptions,
      log: silentLog,
      pingIntervalMs: 60_000,
      onEvent: (event) => events.push(event),
    });
    // Pretend incarnation 1 already lived and died: start twice through the private counter.
    (ref as unknown as { currentIncarnation: number }).currentIncarnation = 1;
    const starting = ref.start();
    deliver({ kind: 'ready', incarnation: 2 });
    await starting;
    const call = ref.call('echo', 5);
    const sent = posted.find((m) => m.kind === 'call')!;
    expect(sent.incarnation).toBe(2);
    deliver({ kind: 'reply', id: sent.id, incarnation: 1, ok: true, value: 666 }); // stale
    deliver({
      kind: 'event',
      incarnation: 1,
      event: { type: 'fatal', error: { name: 'E', message: 'old' }, context: {} },
    });
    deliver({ kind: 'reply', id: sent.id, incarnation: 2, ok: true, value: 5 });
    expect(await call).toBe(5);
    expect(events).toEqual([]);
    expect(ref.stats().droppedStaleMessages).toBe(2);
  });
});
