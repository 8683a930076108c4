// Supervision semantics with in-thread actors: restart policies, strategies, intensity, order.
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.ts';
import { Supervisor } from '../../src/supervisor/supervisor.ts';
import { silentLog } from '../helpers/actors.ts';
import { supervisedTestActors, until } from '../helpers/supervised.ts';

const crash = () => new StrataError('STRATA_ERR_ACTOR_EXITED', 'test crash');

describe('Supervisor', () => {
  it('starts children in order and stops them in reverse order', async () => {
    const { supervisor, refs, exits, started } = supervisedTestActors({
      mode: 'in-thread',
      names: ['a', 'b', 'c'],
    });
    await supervisor.start();
    expect(started.map((s) => s.id)).toEqual(['a', 'b', 'c']);
    expect(refs.every((ref) => ref.state === 'running')).toBe(true);
    await supervisor.stop();
    expect(exits.map((e) => e.actor)).toEqual(['c', 'b', 'a']);
    expect(exits.every((e) => e.reason === 'normal')).toBe(true);
  });

  it('a dormant child runs only while enabled, and is restarted only then', async () => {
    const { supervisor, refs, exits } = supervisedTestActors({
      mode: 'in-thread',
      names: ['a', 'b'],
      dormant: ['b'],
    });
    await supervisor.start();
    expect(refs.map((ref) => ref.state)).toEqual(['running', 'idle']);
    await supervisor.enable('b');
    expect(refs[1]!.state).toBe('running');
    await refs[1]!.terminate('crash', crash());
    await until(() => refs[1]!.state === 'running' && refs[1]!.incarnation === 2, 5_000, 'b restarted');
    await supervisor.disable('b');
    expect(refs[1]!.state).toBe('stopped');
    expect(exits.at(-1)).toMatchObject({ actor: 'b', reason: 'normal' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(refs[1]!.incarnation).toBe(2); // not restarted while disabled
    expect(supervisor.isEnabled('b')).toBe(false);
    await supervisor.stop();
  });

  it('one_for_one restarts only the child that died', async () => {
    const { supervisor, refs } = supervisedTestActors({ mode: 'in-thread', names: ['a', 'b', 'c'] });
    await supervisor.start();
    await refs[1]!.terminate('crash', crash());
    await until(() => refs[1]!.state === 'running' && refs[1]!.incarnation === 2, 5_000, 'b restarted');
    expect(refs.map((ref) => ref.incarnation)).toEqual([1, 2, 1]);
    expect(refs[1]!.stats()).toMatchObject({ restarts: 1, lastExitReason: 'crash: test crash' });
    await supervisor.stop();
  });

  it('rest_for_one also restarts the children started after it, in order', async () => {
    const { supervisor, refs, started } = supervisedTestActors({
      mode: 'in-thread',
      names: ['a', 'b', 'c'],
      strategy: 'rest_for_one',
    });
    await supervisor.start();
    started.length = 0;
    await refs[1]!.terminate('crash', crash());
    await until(() => refs[2]!.incarnation === 2 && refs[2]!.state === 'running', 5_000, 'c restarted');
    expect(refs.map((ref) => ref.incarnation)).toEqual([1, 2, 2]);
    expect(started.map((s) => s.id)).toEqual(['b', 'c']);
    await supervisor.stop();
  });

  it('transient children are not restarted after a normal exit; temporary never', async () => {
    const transient = supervisedTestActors({ mode: 'in-thread', names: ['t'], restart: 'transient' });
    await transient.supervisor.start();
    // A normal exit that the supervisor did not ask for (the actor ended itself).
    await transient.refs[0]!.stop(1_000);
    expect(transient.exits.at(-1)?.reason).toBe('normal');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(transient.refs[0]!.state).toBe('stopped');

    const temporary = supervisedTestActors({ mode: 'in-thread', names: ['x'], restart: 'temporary' });
    await temporary.supervisor.start();
    await temporary.refs[0]!.terminate('crash', crash());
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(temporary.refs[0]!.state).toBe('crashed');
    await transient.supervisor.stop();
    await temporary.supervisor.stop();
  });

  it('gives up past the restart intensity: stops everything in reverse order', async () => {
    const { supervisor, refs, gaveUp, exits } = supervisedTestActors({
      mode: 'in-thread',
      names: ['a', 'b'],
      intensity: 3,
      failAtStart: (name) => name === 'b',
    });
    await supervisor.start();
    await until(() => gaveUp() !== null, 5_000, 'give up');
    expect(gaveUp()).toMatchObject({ code: 'STRATA_ERR_RESTART_INTENSITY', retryable: true });
    expect(exits.filter((e) => e.actor === 'b' && e.reason === 'start-failed')).toHaveLength(4);
    expect(refs[0]!.state).toBe('stopped');
    expect(supervisor.state).toBe('gave-up');
  });

  it('backs off exponentially with jitter', () => {
    const supervisor = new Supervisor({
      strategy: 'one_for_one',
      intensity: 10,
      periodMs: 1_000,
      backoffBaseMs: 100,
      backoffMaxMs: 1_000,
      log: silentLog,
      onGiveUp: () => {},
      random: () => 1,
    });
    const delay = (n: number) =>
      (supervisor as unknown as { backoffDelay(n: number): number }).backoffDelay(n);
    expect([1, 2, 3, 4, 5, 6].map(delay)).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    const low = new Supervisor({
      ...(supervisor as unknown as { options: ConstructorParameters<typeof Supervisor>[0] }).options,
      random: () => 0,
    });
    expect((low as unknown as { backoffDelay(n: number): number }).backoffDelay(3)).toBe(200);
  });
});
