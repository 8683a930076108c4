// The highest V8 heap in use right after a full (mark-compact) collection, in this thread: what
// the thread actually keeps alive, unlike RSS or the heap at a random moment, which also count
// garbage not yet collected and so vary run to run with GC timing. bench/processing compares it
// between a 1M- and a 5M-event run to tell a leak from noise.
//
// V8's GC profiler records the heap's figures inside each collection. (A `gc` PerformanceObserver
// is told of a collection later, on the event loop, by when a busy thread may have allocated a
// batch more: the same 1M-event run read 58 to 74 MiB that way.) Its records pile up until it is
// stopped, so it is restarted every few seconds and only the peak and the latest figures are kept.
//
// The peak is an extreme: a run five times longer has five times the collections to catch the
// thread at its fullest (a batch in flight, a store about to evict), so it grows with the run even
// when nothing leaks. The recent median — the middle of the newer half of the last
// RECENT_FIGURES full collections — is what the thread settles at, and does not.

import v8 from 'node:v8';

export interface HeapAfterGcFigures {
  /** Peak bytes in use after a full collection so far (0 before the first). */
  peakBytes: number;
  /** Median bytes in use after the newer half of the recent full collections (0 before the first). */
  recentMedianBytes: number;
}

export interface HeapAfterGc {
  /** The figures up to now (the profiler's records are read once for both). */
  figures(): HeapAfterGcFigures;
  stop(): void;
}

/** How often the profiler's records are read and dropped. */
const READ_EVERY_MS = 5_000;
/** Full collections remembered for the recent median (a fixed 4 KiB, however long the thread runs). */
const RECENT_FIGURES = 512;

interface GcRecords {
  statistics: Array<{ gcType: string; afterGC: { heapStatistics: { usedHeapSize: number } } }>;
}

export function trackHeapAfterGc(): HeapAfterGc {
  let peak = 0;
  /** The last RECENT_FIGURES figures, a ring: `recent[taken % RECENT_FIGURES]` is written next. */
  const recent = new Float64Array(RECENT_FIGURES);
  let taken = 0;
  let profiler: v8.GCProfiler | null = null;
  /** Takes the records so far into the peak; `again`: go on recording. */
  const read = (again: boolean) => {
    const records = profiler?.stop() as GcRecords | undefined;
    for (const record of records?.statistics ?? []) {
      if (record.gcType !== 'MarkSweepCompact') continue;
      const used = record.afterGC.heapStatistics.usedHeapSize;
      peak = Math.max(peak, used);
      recent[taken % RECENT_FIGURES] = used;
      taken += 1;
    }
    profiler = again ? new v8.GCProfiler() : null;
    profiler?.start();
  };
  read(true);
  const timer = setInterval(() => read(true), READ_EVERY_MS);
  timer.unref();
  /** The median of the newer half of the figures the ring holds. */
  const recentMedian = () => {
    const newerHalf = Math.ceil(Math.min(taken, RECENT_FIGURES) / 2);
    const newest = Array.from({ length: newerHalf }, (_, i) => recent[(taken - 1 - i) % RECENT_FIGURES]!);
    newest.sort((a, b) => a - b);
    return newest.length === 0 ? 0 : newest[Math.floor(newest.length / 2)]!;
  };
  return {
    figures: () => {
      read(true);
      return { peakBytes: peak, recentMedianBytes: recentMedian() };
    },
    stop: () => {
      clearInterval(timer);
      read(false);
    },
  };
}
