// Access control and the HTTP edges through inject() and a real listening socket: bearer tokens
// with scopes (401 with WWW-Authenticate, 403 on a wrong scope, open health and metrics), JSON
// only (415), invalid UTF-8 and deep nesting refused, Node's own parser errors and timeouts in our
// error format, and the config refusing an open non-loopback host.
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { parseApiTokens } from '../../src/api-tokens.ts';
import { buildConfig } from '../../src/config.ts';
import { StrataError } from '../../src/errors.ts';
import { buildApp } from '../../src/http/app.ts';
import { nestingDepth } from '../../src/http/json-body.ts';
import { mulberry32 } from '../../src/sources/generator.ts';
import type { StatusSnapshot } from '../../src/status-types.ts';
import { silentLog } from '../helpers/actors.ts';

const INGEST = 'ingest-token-0123456789';
const READ = 'read-token-0123456789ab';
const ADMIN = 'admin-token-0123456789a';

function app(options: { tokens?: string; requestTimeoutMs?: number; headersTimeoutMs?: number } = {}) {
  const problems: string[] = [];
  const apiTokens = options.tokens === undefined ? [] : parseApiTokens(options.tokens, problems, 'test');
  expect(problems).toEqual([]);
  const appended: unknown[] = [];
  const instance = buildApp({
    log: silentLog,
    bodyLimitBytes: 64 * 1024,
    apiTokens,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    ...(options.headersTimeoutMs === undefined ? {} : { headersTimeoutMs: options.headersTimeoutMs }),
    status: () => ({ process: { id: 'p' } }) as unknown as StatusSnapshot,
    readiness: async () => [],
    metrics: new Registry(),
    ingest: {
      sourceKinds: new Map([['feed', 'ingest']]),
      append: async (_pipeline, blocks) => {
        appended.push(...blocks);
        return { stored: blocks.length, head: blocks[blocks.length - 1]!.number };
      },
    },
  });
  return { instance, appended };
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` });
/** POSTs a body to the ingest route with a content type. */
const postEvents = (
  instance: ReturnType<typeof app>['instance'],
  payload: string | Buffer,
  contentType = 'application/json',
) =>
  instance.inject({
    method: 'POST',
    url: '/v1/pipelines/feed/events',
    headers: { 'content-type': contentType },
    payload,
  });
const oneBlock = JSON.stringify({ number: 1, timestamp: 1, events: [] });

describe('access control', () => {
  const tokens = `${INGEST}:ingest, ${READ}:read\n${ADMIN}:admin`;

  it('401 with WWW-Authenticate without a token or with a wrong one; health and metrics stay open', async () => {
    const { instance } = app({ tokens });
    const missing = await instance.inject({ method: 'GET', url: '/status' });
    expect(missing.statusCode).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="strata"');
    expect(missing.json().error.code).toBe('STRATA_ERR_UNAUTHORIZED');
    const wrong = await instance.inject({ method: 'GET', url: '/status', headers: auth(`${READ}x`) });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toContain('error="invalid_token"');
    expect(JSON.stringify(wrong.json())).not.toContain(READ);
    for (const url of ['/livez', '/readyz', '/metrics']) {
      expect((await instance.inject({ method: 'GET', url })).statusCode, url).toBe(200);
    }
    // An unknown route needs a token too (nothing about the daemon leaks to strangers).
    expect((await instance.inject({ method: 'GET', url: '/nope' })).statusCode).toBe(401);
  });

  it('403 on a wrong scope; each scope reaches its routes; admin reaches all', async () => {
    const { instance, appended } = app({ tokens });
    const post = (token: string) =>
      instance.inject({
        method: 'POST',
        url: '/v1/pipelines/feed/events',
        headers: { ...auth(token), 'content-type': 'application/json' },
        payload: oneBlock,
      });
    const forbidden = await post(READ);
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.code).toBe('STRATA_ERR_FORBIDDEN');
    expect(forbidden.headers['www-authenticate']).toContain('insufficient_scope');
    expect(appended).toEqual([]);
    expect((await post(INGEST)).statusCode).toBe(200);
    expect((await post(ADMIN)).statusCode).toBe(200);
    expect((await instance.inject({ method: 'GET', url: '/status', headers: auth(INGEST) })).statusCode).toBe(
      403,
    );
    expect((await instance.inject({ method: 'GET', url: '/status', headers: auth(READ) })).statusCode).toBe(
      200,
    );
    const invalidate = (token: string) =>
      instance.inject({
        method: 'POST',
        url: '/v1/modules/invalidate',
        headers: { ...auth(token), 'content-type': 'application/json' },
        payload: '{"all":true}',
      });
    // No module service in this app: admin passes the gate and reaches a 404 route.
    expect((await invalidate(READ)).statusCode).toBe(403);
    expect((await invalidate(ADMIN)).statusCode).toBe(404);
  });

  it('parses token lists and lists every problem: short tokens, unknown scopes, missing scopes', () => {
    const problems: string[] = [];
    const parsed = parseApiTokens(
      `short:read ${READ}:write ${INGEST} ${ADMIN}:ingest+read # comment`,
      problems,
      'T',
    );
    expect(parsed.map((token) => token.scopes)).toEqual([['ingest', 'read']]);
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).not.toContain(READ);
  });
});

describe('HTTP edges', () => {
  it('415 for non-JSON bodies, 400 for invalid UTF-8 and for a body mixing blocks with block fields', async () => {
    const { instance, appended } = app();
    const plain = await postEvents(instance, oneBlock, 'text/plain');
    expect(plain.statusCode).toBe(415);
    expect(plain.json().error.code).toBe('STRATA_ERR_UNSUPPORTED_MEDIA_TYPE');
    const bytes = Buffer.concat([
      Buffer.from('{"number":1,"timestamp":1,"events":[{"name":"a'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('","payload":{}}]}'),
    ]);
    const invalid = await postEvents(instance, bytes);
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json().error).toMatchObject({
      code: 'STRATA_ERR_BAD_REQUEST',
      message: 'the body is not valid UTF-8',
    });
    const mixed = await postEvents(
      instance,
      JSON.stringify({ blocks: [JSON.parse(oneBlock)], number: 2, timestamp: 2, events: [] }),
    );
    expect(mixed.statusCode).toBe(400);
    expect(mixed.json().error.code).toBe('STRATA_ERR_BLOCK_INVALID');
    expect(appended).toEqual([]);
  });

  it('refuses deep nesting with 400 before parsing (6,000 levels once gave a 500)', async () => {
    const { instance } = app();
    for (const depth of [70, 6_000, 30_000]) {
      const payload = `{"number":1,"timestamp":1,"events":[{"name":"a","payload":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}]}`;
      const response = await postEvents(instance, payload);
      expect(response.statusCode, String(depth)).toBe(400);
      expect(response.json().error.code).toBe('STRATA_ERR_BODY_TOO_DEEP');
    }
    expect(nestingDepth('{"a":"[[[[{{{{","b":[{"c":"\\"["}]}')).toBe(3);
  });

  it('measures the nesting of random JSON, whatever its strings hold (quotes, backslashes, brackets)', () => {
    const random = mulberry32(7);
    const pieces = ['"', '\\', '[', ']', '{', '}', 'a', '\\"', '\\\\', ','];
    const randomString = () =>
      Array.from(
        { length: Math.floor(random() * 8) },
        () => pieces[Math.floor(random() * pieces.length)],
      ).join('');
    /** A random JSON value and its true nesting depth. */
    const randomValue = (budget: number): [unknown, number] => {
      const kind = budget <= 0 ? 0 : Math.floor(random() * 4);
      if (kind === 0) return [randomString(), 0];
      if (kind === 1) return [Math.floor(random() * 100), 0];
      const children = Array.from({ length: Math.floor(random() * 4) }, () => randomValue(budget - 1));
      const depth = 1 + Math.max(0, ...children.map(([, childDepth]) => childDepth));
      if (kind === 2) return [children.map(([child]) => child), depth];
      return [Object.fromEntries(children.map(([child], i) => [randomString() + i, child])), depth];
    };
    for (let round = 0; round < 2_000; round++) {
      const [value, depth] = randomValue(6);
      const text = JSON.stringify(value);
      expect(nestingDepth(text), `round ${round}: ${text}`).toBe(depth);
      nestingDepth(text.slice(0, Math.floor(random() * text.length))); // cut short: no throw
    }
  });

  it("answers Node's own parser errors and request timeouts in the {error:{code,message}} form", async () => {
    const { instance } = app({ requestTimeoutMs: 1_500, headersTimeoutMs: 1_000 });
    await instance.listen({ host: '127.0.0.1', port: 0 });
    closers.push(() => instance.close());
    const port = (instance.server.address() as { port: number }).port;
    const malformed = await rawRequest(port, 'GARBAGE / HTTP/1.1\r\n\r\n');
    expect(malformed).toMatch(/^HTTP\/1\.1 400/);
    expect(bodyOf(malformed).error.code).toBe('STRATA_ERR_BAD_REQUEST');
    const huge = await rawRequest(
      port,
      `GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(huge).toMatch(/^HTTP\/1\.1 431/);
    expect(bodyOf(huge).error.code).toBe('STRATA_ERR_HEADERS_TOO_LARGE');
    // A body trickled slower than the request timeout: 408 within a second or two of the limit.
    const started = Date.now();
    const trickled = await rawRequest(
      port,
      'POST /v1/pipelines/feed/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
      { trickle: '"' },
    );
    const elapsed = Date.now() - started;
    expect(trickled).toMatch(/^HTTP\/1\.1 408/);
    expect(bodyOf(trickled).error.code).toBe('STRATA_ERR_REQUEST_TIMEOUT');
    expect(elapsed).toBeGreaterThanOrEqual(1_400);
    expect(elapsed).toBeLessThan(6_000);
  });
});

describe('config', () => {
  it('refuses a non-loopback host without tokens unless STRATA_INSECURE, and a build dir outside the project', async () => {
    const open = await buildConfig({ env: { STRATA_HOST: '0.0.0.0' }, cwd: tmpdir() }).catch(
      (e: unknown) => e,
    );
    expect(open).toBeInstanceOf(StrataError);
    expect((open as StrataError).message).toContain('no STRATA_API_TOKENS');
    const insecure = await buildConfig({
      env: { STRATA_HOST: '0.0.0.0', STRATA_INSECURE: 'true' },
      cwd: tmpdir(),
    });
    expect(insecure.http.insecure).toBe(true);
    const tokens = await buildConfig({
      env: { STRATA_HOST: '0.0.0.0', STRATA_API_TOKENS: `${READ}:read` },
      cwd: tmpdir(),
    });
    expect(tokens.http.apiTokens).toHaveLength(1);
    expect(JSON.stringify(tokens)).not.toContain(READ);
    const outside = await buildConfig({ env: { STRATA_BUILD_DIR: tmpdir() }, cwd: tmpdir() }).catch(
      (e: unknown) => e,
    );
    expect((outside as StrataError).message).toContain('outside the project');
  });
});

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

function bodyOf(response: string): { error: { code: string; message: string } } {
  return JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4));
}

/** Writes raw bytes (then a byte every 300 ms with `trickle`) and reads until the server closes. */
function rawRequest(port: number, text: string, options: { trickle?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(text);
      if (options.trickle !== undefined) {
        timer = setInterval(() => socket.writable && socket.write(options.trickle!), 300);
      }
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('utf8');
    });
    socket.on('error', (error) => (received === '' ? reject(error) : resolve(received)));
    socket.on('close', () => {
      clearInterval(timer);
      resolve(received);
    });
    socket.setTimeout(15_000, () => socket.destroy());
  });
}
