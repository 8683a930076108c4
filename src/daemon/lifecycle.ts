// The daemon's lifecycle: one state, one way to stop. Each start-up phase registers how to undo
// what it started; `stop(code, reason)` runs, once, whatever the cause (a signal, the supervisor
// giving up, a fatal error, --exit-when-caught-up, a phase failing during start-up):
//   1. state `stopping` (/readyz turns 503; /status keeps answering),
//   2. with code 0, an orderly stop: the fleet hands its pipelines over, the actors drain (intake
//      paused, the writer commits what was processed) within the shutdown budget,
//   3. every registered teardown step, the last registered first (actors, HTTP, module cache,
//      Redis, the database),
//   4. state `stopped`, and `exited` resolves with the code.

import type { Logger } from '../logger.ts';
import type { DaemonState } from '../status-types.ts';

type Step = { name: string; run: () => Promise<void> | void };

export class DaemonLifecycle {
  private current: DaemonState = 'starting';
  private readonly teardown: Step[] = [];
  private readonly drainSteps: Array<() => Promise<void>> = [];
  private stopping: Promise<void> | null = null;
  private resolveExited: (code: number) => void = () => {};
  /** Resolves with the process's exit code once the daemon has stopped. */
  readonly exited: Promise<number>;

  constructor(private readonly log: Logger) {
    this.exited = new Promise<number>((resolve) => {
      this.resolveExited = resolve;
    });
  }

  get state(): DaemonState {
    return this.current;
  }

  /** Registers how to undo what a phase started (run in reverse order of registration). */
  onStop(name: string, run: () => Promise<void> | void): void {
    this.teardown.push({ name, run });
  }

  /**
   * The orderly part of a stop with code 0, run before the teardown, the last registered first
   * (the fleet hands its pipelines over, then the actors drain what is left).
   */
  onDrain(drain: () => Promise<void>): void {
    this.drainSteps.push(drain);
  }

  /** Start-up finished: the daemon serves. A stop requested meanwhile wins. */
  running(): void {
    if (this.current === 'starting') this.current = 'running';
  }

  /** Stops the daemon (once; later calls return the same promise). */
  stop(code: number, reason: string): Promise<void> {
    this.stopping ??= this.run(code, reason);
    return this.stopping;
  }

  private async run(code: number, reason: string): Promise<void> {
    this.current = 'stopping';
    this.log.info({ reason, exitCode: code }, 'shutting down');
    if (code === 0) {
      for (const drain of this.drainSteps.splice(0).reverse()) {
        try {
          await drain();
        } catch (error) {
          this.log.warn({ err: error }, 'a drain step failed');
        }
      }
    }
    for (const step of this.teardown.splice(0).reverse()) {
      try {
        await step.run();
      } catch (error) {
        this.log.warn({ err: error, step: step.name }, 'a shutdown step failed');
      }
    }
    this.current = 'stopped';
    // Peak resident memory of the whole process (main thread and every actor thread).
    this.log.info({ maxRssBytes: process.resourceUsage().maxRSS * 1024 }, 'stopped');
    this.resolveExited(code);
  }
}
