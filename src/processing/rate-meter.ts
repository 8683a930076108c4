// Events per second over a sliding window, for progress lines, /status and /metrics.

export class RateMeter {
  private readonly windowMs: number;
  private readonly samples: Array<{ at: number; count: number }> = [];

  constructor(windowMs: number) {
    this.windowMs = windowMs;
  }

  add(count: number, now = performance.now()): void {
    this.samples.push({ at: now, count });
    this.prune(now);
  }

  perSecond(now = performance.now()): number {
    this.prune(now);
    const first = this.samples[0];
    if (first === undefined) return 0;
    const total = this.samples.reduce((sum, sample) => sum + sample.count, 0);
    const spanMs = Math.max(now - first.at, 1_000);
    return (total / spanMs) * 1_000;
  }

  /** Forgets every sample (the rate changed regime: a backfill ended). */
  reset(): void {
    this.samples.length = 0;
  }

  private prune(now: number): void {
    while (this.samples.length > 0 && now - this.samples[0]!.at > this.windowMs) this.samples.shift();
  }
}
