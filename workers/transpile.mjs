// Worker side of the transpile pool (piscina): TypeScript/TSX → ESM JavaScript with a source map,
// by oxc-transform. Plain JavaScript on purpose: a pool worker loads no TypeScript loader, so it
// starts fast and a failing loader can never stop the pool from replacing workers.
// Messages: src/transpile/transpile-pool.ts (main side) sends a chunk [{ file, source }, …] and
// gets back, in order, { ok: true, code, map } or { ok: false, diagnostic } for each.
import { transformSync } from 'oxc-transform';

export default function transpileChunk(tasks) {
  return tasks.map(transpile);
}

function transpile({ file, source }) {
  const started = performance.now();
  const lang = file.endsWith('.tsx') ? 'tsx' : file.endsWith('.js') || file.endsWith('.mjs') ? 'js' : 'ts';
  const result = transformSync(file, source, { lang, sourcemap: true });
  if (result.errors.length > 0) {
    const first = result.errors[0];
    const offset = first.labels?.[0]?.start ?? 0;
    const before = source.slice(0, offset);
    const line = before.split('\n').length;
    const column = offset - before.lastIndexOf('\n');
    return {
      ok: false,
      diagnostic: {
        file,
        line,
        column,
        message: first.message,
        code: 'STRATA_ERR_MODULE_SYNTAX',
        frame: first.codeframe ?? null,
        more: result.errors.length - 1,
      },
      durationMs: performance.now() - started,
    };
  }
  return {
    ok: true,
    code: result.code,
    map: JSON.stringify(result.map),
    durationMs: performance.now() - started,
  };
}
