// Fault tests with real worker threads: a throw that kills the thread mid-call, a busy loop, a
// crash loop at start. The supervisor must reject, detect, restart or give up as specified.
import { afterEach, describe, expect, it } from 'vitest';
import type { Supervisor } from '../../src/supervisor/supervisor.ts';
import { supervisedTestActors, until } from '../helpers/supervised.ts';

const supervisors: Supervisor[] = [];
afterEach(async () => {
  for (const supervisor of supervisors.splice(0)) await supervisor.stop();
});

describe('actors in real worker threads', () => {
  it('an uncaught throw mid-call rejects the pending call and the actor is restarted', async () => {
    const setup = supervisedTestActors({ mode: 'worker', names: ['victim'] });
    supervisors.push(setup.supervisor);
    await setup.supervisor.start();
    const [ref] = setup.refs;
    const before = await ref!.call('whoAmI');
    expect(before.incarnation).toBe(1);
    const threadBefore = ref!.stats().threadId;

    const crashing = ref!.call('crashThread').catch((e: unknown) => e);
    const pendingSlow = ref!.call('slow', 10, 1); // queued in the mailbox behind the crash
    const error = await crashing;
    expect(error).toMatchObject({ code: 'STRATA_ERR_ACTOR_EXITED', retryable: true });
    expect((error as Error).message).toMatch(/uncaught on purpose/);
    await expect(pendingSlow).rejects.toMatchObject({ code: 'STRATA_ERR_ACTOR_EXITED' });

    await until(() => ref!.state === 'running' && ref!.incarnation === 2, 10_000, 'restart');
    expect(ref!.stats().threadId).not.toBe(threadBefore);
    expect(await ref!.call('echo', 'alive')).toBe('alive');
    expect(setup.exits[0]).toMatchObject({ actor: 'victim', reason: 'crash', incarnation: 1 });
  });

  it('a busy loop is detected within two ping intervals, terminated and restarted', async () => {
    const pingIntervalMs = 200;
    const setup = supervisedTestActors({ mode: 'worker', names: ['spinner'], pingIntervalMs });
    supervisors.push(setup.supervisor);
    await setup.supervisor.start();
    const [ref] = setup.refs;
    await new Promise((resolve) => setTimeout(resolve, pingIntervalMs * 2)); // a few healthy pongs

    const started = performance.now();
    const error = await ref!.call('busyLoop', Number.POSITIVE_INFINITY).catch((e: unknown) => e);
    const detectedAfter = performance.now() - started;
    expect(error).toMatchObject({ code: 'STRATA_ERR_ACTOR_UNRESPONSIVE' });
    // Silence is noticed on the first tick past 2 intervals: at most 3 intervals after the loop began.
    expect(detectedAfter).toBeLessThan(pingIntervalMs * 3 + 150);
    expect(setup.exits[0]).toMatchObject({ reason: 'unresponsive' });

    await until(() => ref!.state === 'running' && ref!.incarnation === 2, 10_000, 'restart');
    expect(await ref!.call('echo', 'back')).toBe('back');
  });

  it('a crash loop at start escalates: the supervisor gives up after the intensity', async () => {
    const setup = supervisedTestActors({
      mode: 'worker',
      names: ['steady', 'crashy'],
      intensity: 2,
      failAtStart: (name) => name === 'crashy',
    });
    supervisors.push(setup.supervisor);
    await setup.supervisor.start();
    await until(() => setup.gaveUp() !== null, 20_000, 'give up');
    expect(setup.gaveUp()).toMatchObject({ code: 'STRATA_ERR_RESTART_INTENSITY' });
    expect(setup.exits.filter((e) => e.actor === 'crashy')).toHaveLength(3);
    expect(setup.refs[0]!.state).toBe('stopped');
  });
});
