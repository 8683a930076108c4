// The highest V8 heap in use right after a full (mark-compact) collection, in this thread: what
// the thread actually keeps alive, unlike RSS or the heap at a random moment, which also count
// garbage not yet collected and so vary run to run with GC timing. bench/processing compares it
// between a 1M- and a 5M-event run to tell a leak from noise.

import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';

export interface HeapAfterGc {
  /** Peak bytes in use after a full collection so far (0 before the first). */
  peak(): number;
  stop(): void;
}

export function trackHeapAfterGc(): HeapAfterGc {
  let peak = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
      if (kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue;
      peak = Math.max(peak, v8.getHeapStatistics().used_heap_size);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return { peak: () => peak, stop: () => observer.disconnect() };
}
