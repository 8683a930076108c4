// The highest V8 heap in use right after a full (mark-compact) collection, in this thread: what
// the thread actually keeps alive, unlike RSS or the heap at a random moment, which also count
// garbage not yet collected and so vary run to run with GC timing. bench/processing compares it
// between a 1M- and a 5M-event run to tell a leak from noise.
//
// V8's GC profiler records the heap's figures inside each collection. (A `gc` PerformanceObserver
// is told of a collection later, on the event loop, by when a busy thread may have allocated a
// batch more: the same 1M-event run read 58 to 74 MiB that way.) Its records pile up until it is
// stopped, so it is restarted every few seconds and only the peak is kept.

import v8 from 'node:v8';

export interface HeapAfterGc {
  /** Peak bytes in use after a full collection so far (0 before the first). */
  peak(): number;
  stop(): void;
}

/** How often the profiler's records are read and dropped. */
const READ_EVERY_MS = 5_000;

interface GcRecords {
  statistics: Array<{ gcType: string; afterGC: { heapStatistics: { usedHeapSize: number } } }>;
}

export function trackHeapAfterGc(): HeapAfterGc {
  let peak = 0;
  let profiler: v8.GCProfiler | null = null;
  /** Takes the records so far into the peak; `again`: go on recording. */
  const read = (again: boolean) => {
    const records = profiler?.stop() as GcRecords | undefined;
    for (const record of records?.statistics ?? []) {
      if (record.gcType === 'MarkSweepCompact')
        peak = Math.max(peak, record.afterGC.heapStatistics.usedHeapSize);
    }
    profiler = again ? new v8.GCProfiler() : null;
    profiler?.start();
  };
  read(true);
  const timer = setInterval(() => read(true), READ_EVERY_MS);
  timer.unref();
  return {
    peak: () => {
      read(true);
      return peak;
    },
    stop: () => {
      clearInterval(timer);
      read(false);
    },
  };
}
