import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  deserializeError,
  errorRegistry,
  exitCodeFor,
  isActorRestarting,
  projectError,
  StrataError,
  serializeError,
} from '../../src/errors.ts';

describe('error registry', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Map(
    [...doc.matchAll(/^\| `(STRATA_ERR_[A-Z_]+)` \| (\d{3}) \| (yes|no) \|/gm)].map((m) => [
      m[1]!,
      { status: Number(m[2]), retryable: m[3] === 'yes' },
    ]),
  );

  it('documents every code in docs/errors.md with its status and retryability', () => {
    for (const [code, spec] of Object.entries(errorRegistry)) {
      expect(documented.get(code), `${code} missing from docs/errors.md`).toEqual({
        status: spec.status,
        retryable: spec.retryable,
      });
    }
  });

  it('lists no code in docs/errors.md that the registry lacks', () => {
    for (const code of documented.keys()) expect(Object.keys(errorRegistry)).toContain(code);
  });

  it('registers every code the sources use (a body may carry a code no StrataError is made with)', () => {
    const sources = readdirSync(new URL('../../src', import.meta.url), {
      recursive: true,
      withFileTypes: true,
    })
      .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
      .map((entry) => readFileSync(path.join(entry.parentPath, entry.name), 'utf8'));
    const used = new Set(sources.flatMap((text) => text.match(/STRATA_ERR_[A-Z0-9_]+/g) ?? []));
    expect(used.size).toBeGreaterThan(20);
    for (const code of used) expect(Object.keys(errorRegistry), `${code} used in src/`).toContain(code);
  });
});

describe('errors across thread boundaries', () => {
  it('keep name, code, retryable, details, stack and a chain of causes', () => {
    const root = Object.assign(new Error('connection reset'), { code: 'ECONNRESET' });
    const error = new StrataError('STRATA_ERR_WRITE_FAILED', 'batch 3..7 failed', {
      cause: root,
      details: { pipeline: 'credits', fromCheckpoint: 3 },
    });
    // structuredClone is what postMessage does to the serialized form.
    const back = deserializeError(structuredClone(serializeError(error)));
    expect(back).toBeInstanceOf(StrataError);
    expect(back).toMatchObject({
      name: 'StrataError',
      code: 'STRATA_ERR_WRITE_FAILED',
      message: 'batch 3..7 failed',
      retryable: false,
      status: 500,
      details: { pipeline: 'credits', fromCheckpoint: 3 },
    });
    expect(back.stack).toBe(error.stack);
    expect(back.cause).toMatchObject({ message: 'connection reset', code: 'ECONNRESET' });
  });

  it('turn non-errors into a readable NonError', () => {
    expect(deserializeError(serializeError({ weird: true }))).toMatchObject({
      name: 'NonError',
      message: '{"weird":true}',
    });
  });

  it('map to exit codes: 75 for retryable, 1 otherwise', () => {
    expect(exitCodeFor(new StrataError('STRATA_ERR_RESTART_INTENSITY'))).toBe(75);
    expect(exitCodeFor(new StrataError('STRATA_ERR_CONFIG_INVALID'))).toBe(1);
    expect(exitCodeFor(new Error('plain'))).toBe(1);
  });

  it('carry their category from the registry: a restarting actor, a project to fix', () => {
    expect(isActorRestarting(new StrataError('STRATA_ERR_ACTOR_EXITED'))).toBe(true);
    expect(isActorRestarting(new StrataError('STRATA_ERR_ACTOR_UNKNOWN_METHOD'))).toBe(false);
    expect(isActorRestarting(new StrataError('STRATA_ERR_DB_UNAVAILABLE'))).toBe(false);
    const schema = new StrataError('STRATA_ERR_SCHEMA_CHANGED');
    const wrapped = new StrataError('STRATA_ERR_ACTOR_START_FAILED', 'start failed', { cause: schema });
    expect(projectError(wrapped)).toBe(schema);
    expect(projectError(new StrataError('STRATA_ERR_ACTOR_START_FAILED'))).toBeUndefined();
  });
});
