// The one body parser of the HTTP app: JSON only (any other content type is 415), read as bytes so
// that invalid UTF-8 is refused instead of silently becoming U+FFFD, and scanned for its nesting
// depth before `JSON.parse` — a body nested thousands of levels deep parses, but later recursion
// over it (validation, `JSON.stringify`, jsonb) overflows the stack.

import type { FastifyInstance } from 'fastify';
import { StrataError } from '../errors.ts';
import { noteBodySize, registerLargeBodyRelease } from './large-body-release.ts';

/** Deepest nesting of arrays and objects a body may have: a block's payload may nest 64 levels. */
export const MAX_BODY_DEPTH = 70;

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function registerJsonBodyParser(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  registerLargeBodyRelease(app);
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      noteBodySize(request, (body as Buffer).length);
      done(null, parseJsonBody(body as Buffer));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}

export function parseJsonBody(bytes: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new StrataError('STRATA_ERR_BAD_REQUEST', 'the body is not valid UTF-8');
  }
  if (text.trim() === '') throw new StrataError('STRATA_ERR_BAD_REQUEST', 'the JSON body is empty');
  const depth = nestingDepth(text);
  if (depth > MAX_BODY_DEPTH) {
    throw new StrataError(
      'STRATA_ERR_BODY_TOO_DEEP',
      `the body nests ${depth > 10_000 ? 'more than 10000' : depth} levels deep; at most ${MAX_BODY_DEPTH} are accepted`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new StrataError('STRATA_ERR_BAD_REQUEST', `invalid JSON: ${(error as Error).message}`);
  }
}

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The deepest `{`/`[` nesting outside strings (stops counting past 10,000). A string is skipped to
 * its closing quote with `indexOf` — an ingest body is mostly strings (addresses, hashes), and
 * stepping through them a character at a time took ~0.2 s of a 70 MB body.
 */
export function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = closingQuote(text, i);
      if (i < 0) return deepest;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > 10_000) return deepest;
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return deepest;
}

/** The index of the quote closing the string opened at `open` (one not escaped), or -1. */
function closingQuote(text: string, open: number): number {
  let at = text.indexOf('"', open + 1);
  while (at >= 0) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at;
    at = text.indexOf('"', at + 1);
  }
  return -1;
}
