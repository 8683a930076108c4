// The heap a full collection leaves is read inside the collection: what the thread allocates
// after it, before its event loop turns, is not counted (a `gc` PerformanceObserver, told of the
// collection only then, counted it).
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import { trackHeapAfterGc } from '../../src/supervisor/heap-after-gc.ts';

v8.setFlagsFromString('--expose-gc');
const fullGc = runInNewContext('gc') as () => void;
const MIB = 1024 * 1024;

/** ~`mib` MiB on the heap: unboxed doubles, 8 bytes each (a typed array's bytes would be off-heap). */
const allocate = (mib: number) => new Array<number>((mib * MIB) / 8).fill(0.5);

it('reads the heap a full collection leaves, not what the thread allocates right after', async () => {
  const tracker = trackHeapAfterGc();
  const kept = allocate(24);
  fullGc();
  const leftByGc = v8.getHeapStatistics().used_heap_size;
  const more = allocate(12); // before the event loop turns
  await new Promise((resolve) => setImmediate(resolve));
  const peak = tracker.figures().peakBytes;
  tracker.stop();
  expect(kept.length + more.length).toBeGreaterThan(0);
  expect(Math.abs(peak - leftByGc) / MIB).toBeLessThan(4);
});

it('settles at what the thread keeps lately: a brief full moment moves the peak, not the recent median', async () => {
  const tracker = trackHeapAfterGc();
  let held: number[] = [];
  const collectHolding = (mib: number, times: number) => {
    for (let i = 0; i < times; i++) {
      held = allocate(mib);
      fullGc();
    }
  };
  collectHolding(2, 4);
  const base = tracker.figures().recentMedianBytes;
  collectHolding(32, 1); // one full moment
  collectHolding(2, 6);
  const { peakBytes: peak, recentMedianBytes: median } = tracker.figures();
  tracker.stop();
  expect(held.length).toBeGreaterThan(0);
  expect((peak - base) / MIB).toBeGreaterThan(24);
  expect(Math.abs(median - base) / MIB).toBeLessThan(4);
  // And it follows the thread when what it keeps really grows, even before most of the figures it
  // remembers are from after the growth (the newer half is what counts).
  const grown = trackHeapAfterGc();
  collectHolding(2, 6);
  collectHolding(24, 5);
  const settled = grown.figures().recentMedianBytes;
  grown.stop();
  expect((settled - base) / MIB).toBeGreaterThan(16);
});
