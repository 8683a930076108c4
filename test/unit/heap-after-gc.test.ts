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

/** ~`mib` MiB on the heap: unboxed doubles, 8 bytes each. */
const allocate = (mib: number) => Array.from({ length: (mib * MIB) / 8 }, (_, i) => i + 0.5);

it('reads the heap a full collection leaves, not what the thread allocates right after', async () => {
  const tracker = trackHeapAfterGc();
  const kept = allocate(24);
  fullGc();
  const leftByGc = v8.getHeapStatistics().used_heap_size;
  const more = allocate(12); // before the event loop turns
  await new Promise((resolve) => setImmediate(resolve));
  const peak = tracker.peak();
  tracker.stop();
  expect(kept.length + more.length).toBeGreaterThan(0);
  expect(Math.abs(peak - leftByGc) / MIB).toBeLessThan(4);
});
