// The HTTP app factory through inject(): error shapes and codes for bad requests; and, on a real
// listener, a close that does not wait for a shape request forwarded to another process.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.ts';
import type { StatusSnapshot } from '../../src/status-types.ts';
import { silentLog } from '../helpers/actors.ts';

const snapshot: StatusSnapshot = {
  process: {
    id: 'p',
    pid: 1,
    version: 't',
    node: process.version,
    state: 'running',
    startedAt: '',
    uptimeSeconds: 0,
  },
  actors: [],
  pipelines: [],
  database: { kind: 'postgres', storage: null, pools: {} },
  redis: { configured: false, state: 'not configured' },
};

function app(ready = true) {
  return buildApp({
    log: silentLog,
    bodyLimitBytes: 1_024,
    status: () => snapshot,
    readiness: async () => [
      { name: 'database', ok: ready, ...(ready ? {} : { detail: 'connection refused' }) },
    ],
    metrics: new Registry(),
  });
}

describe('HTTP app', () => {
  it('answers unknown routes with 404 JSON and a code', async () => {
    const response = await app().inject({ method: 'DELETE', url: '/v1/whatever?x=1' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({
      error: { code: 'STRATA_ERR_NOT_FOUND', message: 'no route for DELETE /v1/whatever' },
    });
  });

  it('refuses a declared oversized body with 413 before reading it', async () => {
    const response = await app().inject({
      method: 'POST',
      url: '/status',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ pad: 'x'.repeat(4_000) }),
    });
    expect(response.statusCode).toBe(413);
    expect(response.json().error.code).toBe('STRATA_ERR_BODY_TOO_LARGE');
  });

  it('answers malformed paths with 4xx JSON and a code', async () => {
    const response = await app().inject({ method: 'GET', url: '/st%E0%A4%Aatus' });
    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe('STRATA_ERR_NOT_FOUND');
  });

  it('maps malformed JSON and wrong content types on body routes to 400 / 415 with codes', async () => {
    // Body routes (ingest) arrive with later issues; the app's error handling is what is tested.
    const instance = app();
    instance.post('/echo', async (request) => request.body);
    const malformed = await instance.inject({
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': 'application/json' },
      payload: '{"unterminated": ',
    });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.code).toBe('STRATA_ERR_BAD_REQUEST');
    const wrongType = await instance.inject({
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': 'application/x-unknown' },
      payload: 'x',
    });
    expect(wrongType.statusCode).toBe(415);
    expect(wrongType.json().error.code).toBe('STRATA_ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it('/readyz lists what is not ready with 503; /livez stays 200', async () => {
    const notReady = app(false);
    const ready = await notReady.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({
      status: 'not-ready',
      error: { code: 'STRATA_ERR_NOT_READY', message: 'not ready: database (connection refused)' },
    });
    expect((await notReady.inject({ url: '/livez' })).statusCode).toBe(200);
  });

  it('/status is JSON and never cached', async () => {
    const response = await app().inject({ url: '/status' });
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.json()).toEqual(snapshot);
  });
});

describe('closing with a shape request forwarded', () => {
  it('does not wait for the owner to answer a forwarded request', async () => {
    // An owner that takes the request and never answers (a long-poll held there).
    let held = false;
    const owner = createServer(() => {
      held = true;
    });
    await new Promise<void>((resolve) => owner.listen(0, '127.0.0.1', resolve));
    const { port } = owner.address() as AddressInfo;
    const instance = buildApp({
      log: silentLog,
      bodyLimitBytes: 1_024,
      status: () => snapshot,
      readiness: async () => [],
      metrics: new Registry(),
      shapes: {
        backend: {} as never, // never reached: every table is served by the owner
        locate: async () => ({ kind: 'owner', url: `http://127.0.0.1:${port}` }),
      },
    });
    try {
      const url = await instance.listen({ port: 0, host: '127.0.0.1' });
      const answer = fetch(`${url}/v1/shape?table=Account&offset=now&handle=h&live=true`);
      const deadline = Date.now() + 5_000;
      while (!held && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
      expect(held).toBe(true);
      const started = performance.now();
      await instance.close();
      expect(performance.now() - started).toBeLessThan(5_000);
      expect((await answer).status).toBe(503); // retry: the lease moves with this process's stop
    } finally {
      owner.closeAllConnections();
      await new Promise((resolve) => owner.close(resolve));
    }
  });
});
