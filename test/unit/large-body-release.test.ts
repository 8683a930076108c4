// After the response to a large JSON body the main thread runs one full collection, so the body's
// buffers, text and objects do not stay resident while the thread is quiet; small bodies do not.
// Observed through the process's own GC performance entries (a major collection that starts after
// the response was sent).

import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { runInNewContext } from 'node:vm';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { registerJsonBodyParser } from '../../src/http/json-body.ts';
import { LARGE_BODY_BYTES } from '../../src/http/large-body-release.ts';

/** Posts a JSON body of about `bytes` and returns when the response was complete. */
async function postBody(bytes: number): Promise<number> {
  const app = Fastify({ bodyLimit: 64 * 1024 * 1024 });
  registerJsonBodyParser(app);
  app.post('/echo', async (request) => ({ length: (request.body as { text: string }).text.length }));
  const response = await app.inject({
    method: 'POST',
    url: '/echo',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ text: 'x'.repeat(bytes) }),
  });
  expect(response.statusCode).toBe(200);
  const answeredAt = performance.now();
  await app.close();
  return answeredAt;
}

/**
 * Major collections that started after `work`'s response: polled until one shows up or
 * `windowMs` passes (the entries arrive asynchronously).
 */
async function majorCollectionsAfter(work: () => Promise<number>, windowMs: number): Promise<number[]> {
  const starts: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
      if (entry.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) starts.push(entry.startTime);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    const answeredAt = await work();
    const after = () => starts.filter((start) => start >= answeredAt);
    const deadline = performance.now() + windowMs;
    while (after().length === 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return after();
  } finally {
    observer.disconnect();
  }
}

describe('large JSON bodies', () => {
  it('are followed by a full collection once answered; small ones are not', async () => {
    // The small body first: V8 may run more collections of its own after a large one.
    expect(await majorCollectionsAfter(() => postBody(1_024 * 1_024), 500)).toEqual([]);
    expect(await majorCollectionsAfter(() => postBody(LARGE_BODY_BYTES + 1_024), 5_000)).not.toEqual([]);
    // The flag that makes `gc` is process-wide; contexts made later (and actor threads) get none.
    expect(runInNewContext('typeof gc')).toBe('undefined');
  });
});
