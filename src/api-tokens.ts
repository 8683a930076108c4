// Access control: bearer tokens mapped to scopes. `STRATA_API_TOKENS` (or the file named by
// `STRATA_API_TOKENS_FILE`) lists entries `<token>:<scope>[+<scope>…]`, separated by commas,
// spaces or newlines (`#` starts a comment in the file). Scopes:
//   ingest — POST /v1/pipelines/:name/events
//   read   — /status, GET /v1/modules/*
//   admin  — POST /v1/modules/invalidate, and implies the other two.
// A presented token is hashed and compared against every configured hash with timingSafeEqual,
// so neither the comparison nor which entry matched leaks through timing. Tokens are never
// logged: only the entry's position (`token #2`) names one.

import { createHash, timingSafeEqual } from 'node:crypto';

export const API_SCOPES = ['ingest', 'read', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export interface ApiToken {
  /** sha256 of the token; the token itself is not kept. */
  readonly digest: Buffer;
  readonly scopes: readonly ApiScope[];
  /** 1-based position in the list, for logs. */
  readonly position: number;
}

/** Shortest accepted token: a guessable token is no access control. */
export const MIN_TOKEN_LENGTH = 16;

export function parseApiTokens(text: string, problems: string[], where: string): ApiToken[] {
  const tokens: ApiToken[] = [];
  const entries = text
    .split('\n')
    .map((line) => line.replace(/#.*$/, ''))
    .join(' ')
    .split(/[\s,]+/)
    .filter((entry) => entry !== '');
  for (const [index, entry] of entries.entries()) {
    const position = index + 1;
    const colon = entry.lastIndexOf(':');
    if (colon <= 0) {
      problems.push(`${where}: entry #${position} must be <token>:<scope>[+<scope>…]`);
      continue;
    }
    const token = entry.slice(0, colon);
    const scopes = entry.slice(colon + 1).split('+');
    const unknown = scopes.filter((scope) => !(API_SCOPES as readonly string[]).includes(scope));
    if (unknown.length > 0) {
      problems.push(
        `${where}: entry #${position} has unknown scope(s) ${unknown.map((s) => JSON.stringify(s)).join(', ')} (known: ${API_SCOPES.join(', ')})`,
      );
      continue;
    }
    if (token.length < MIN_TOKEN_LENGTH) {
      problems.push(
        `${where}: the token of entry #${position} is shorter than ${MIN_TOKEN_LENGTH} characters`,
      );
      continue;
    }
    tokens.push({ digest: digest(token), scopes: scopes as ApiScope[], position });
  }
  return tokens;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** The entry a presented token matches, or null; every entry is compared, in constant time each. */
export function findToken(tokens: readonly ApiToken[], presented: string): ApiToken | null {
  const candidate = digest(presented);
  let found: ApiToken | null = null;
  for (const token of tokens) {
    if (timingSafeEqual(token.digest, candidate) && found === null) found = token;
  }
  return found;
}

export function allows(token: ApiToken, scope: ApiScope): boolean {
  return token.scopes.includes('admin') || token.scopes.includes(scope);
}

/** Loopback hosts need no tokens; anything else serves the network. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}
