// `strata start --watch` on a real daemon and Postgres: an edited handler module (or a module it
// imports) takes over at the next batch boundary; a syntax error mid-edit keeps the running
// handlers; a changed schema is refused live (it needs a restart); saves that replace the file
// (`sed -i`, write-to-temp-and-rename, truncate-then-write) and a burst of 50 saves in 2 s are all
// seen — the last content is what runs and what GET /v1/modules serves.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let db: TestDatabase;
// Inside the repository, so the project's `import … from 'strata'` resolves to this checkout.
const project = mkdtempSync(path.resolve(import.meta.dirname, '../fixtures/.watch-'));
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  rmSync(project, { recursive: true, force: true });
});

const files = {
  'strata.config.ts': `import { defineProject } from 'strata';
export default defineProject({
  pipelines: [{ name: 'counter', source: { kind: 'ingest' }, schema: './schema.ts', handlers: './handlers.ts', batchSize: 10 }],
});`,
  'schema.ts': `import { defineSchema, t } from 'strata';
export default defineSchema({ Counter: { fields: { id: t.text(), total: t.integer() } } });`,
  'handlers.ts': handlers('1'),
};

function handlers(factor: string, imports = ''): string {
  return `import { createHandlers } from 'strata';
import schema from './schema.ts';
${imports}
const handlers = createHandlers(schema);
handlers.onEvent<{ n: number }>('add', async ({ event, context }) => {
  const counter = await context.Counter.getOrCreate({ id: 'c', total: 0 });
  context.Counter.set({ ...counter, total: counter.total + event.payload.n * ${factor} });
});
export default handlers;`;
}

/** Posts block `number` holding one `add n=1` event. */
async function postAdd(url: string, number: number): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ number, timestamp: number, events: [{ name: 'add', payload: { n: 1 } }] }),
  });
  expect(response.status).toBe(200);
}

describe('--watch', () => {
  it('reloads edited handlers at the next batch boundary; a broken edit keeps the running ones', async () => {
    for (const [file, source] of Object.entries(files)) writeFileSync(path.join(project, file), source);
    const daemon = startDaemonProcess({ DATABASE_URL: db.url }, ['--watch'], project);
    try {
      const url = `${await daemon.url}/v1/pipelines/counter/events`;
      let number = 0;
      const add = async () => {
        number += 1;
        await postAdd(url, number);
      };
      const total = async () =>
        Number((await db.query<{ total: number }>('SELECT total FROM pipeline_counter."Counter"'))[0]?.total);
      const count = (msg: string) => async () => daemon.logs.filter((entry) => entry.msg === msg).length;
      const reloads = count('handlers reloaded; in effect from the next batch');
      const refusals = count('handlers not reloaded; the pipeline keeps its current handlers');

      await add();
      await waitFor(total, (value) => value === 1, 15_000, 'first block with the original handlers');

      writeFileSync(path.join(project, 'handlers.ts'), handlers('10'));
      await waitFor(reloads, (n) => n === 1, 15_000, 'reload');
      await add();
      await waitFor(total, (value) => value === 11, 15_000, 'the edited handler (×10)');

      writeFileSync(path.join(project, 'handlers.ts'), `${handlers('1000')}\nexport const broken = ;`);
      await waitFor(refusals, (n) => n === 1, 15_000, 'refused reload');
      await add();
      await waitFor(total, (value) => value === 21, 15_000, 'still ×10 after a broken edit');

      // A new module imported by the handlers is built and watched too.
      writeFileSync(path.join(project, 'factor.ts'), 'export const FACTOR: number = 100;');
      writeFileSync(
        path.join(project, 'handlers.ts'),
        handlers('FACTOR', "import { FACTOR } from './factor.ts';"),
      );
      await waitFor(reloads, (n) => n === 2, 15_000, 'reload with a new import');
      await add();
      await waitFor(total, (value) => value === 121, 15_000, 'the imported factor (×100)');
      writeFileSync(path.join(project, 'factor.ts'), 'export const FACTOR: number = 1000;');
      await waitFor(reloads, (n) => n === 3, 15_000, 'reload after editing the imported module');
      await add();
      await waitFor(total, (value) => value === 1_121, 15_000, 'the edited import (×1000)');

      // A schema edit cannot be applied live: refused with SCHEMA_CHANGED, the old handlers keep going.
      writeFileSync(
        path.join(project, 'schema.ts'),
        `${files['schema.ts'].replace('total: t.integer()', 'total: t.integer(), extra: t.text().nullable()')}`,
      );
      await waitFor(refusals, (n) => n === 2, 15_000, 'schema change refused');
      const refusal = daemon.logs.findLast((entry) =>
        entry.msg?.toString().startsWith('handlers not reloaded'),
      );
      expect(JSON.stringify(refusal)).toContain('STRATA_ERR_SCHEMA_CHANGED');
      expect(JSON.stringify(refusal)).toContain('Counter.extra added'); // names what changed
      await add();
      await waitFor(total, (value) => value === 2_121, 15_000, 'old handlers keep running');
    } finally {
      daemon.kill();
      await daemon.exited;
    }
  });

  it('sees every save that replaces the file, and the last of a burst of 50', async () => {
    await db.query('DROP SCHEMA IF EXISTS strata CASCADE');
    await db.query('DROP SCHEMA IF EXISTS pipeline_counter CASCADE');
    for (const [file, source] of Object.entries(files)) writeFileSync(path.join(project, file), source);
    const daemon = startDaemonProcess({ DATABASE_URL: db.url }, ['--watch'], project);
    try {
      const base = await daemon.url;
      const url = `${base}/v1/pipelines/counter/events`;
      const file = path.join(project, 'handlers.ts');
      let number = 0;
      let total = 0;
      let inEffect = 1;
      // Posts one `add n=1`, waits for its block to be committed and returns how much it added:
      // the factor of the handlers that processed it.
      const addOne = async () => {
        number += 1;
        await postAdd(url, number);
        await waitFor(
          () => db.query<{ committed_block: string }>(`SELECT committed_block FROM strata.pipelines`),
          (rows) => rows[0]?.committed_block === String(number),
          15_000,
          `block ${number} committed`,
        );
        const [row] = await db.query<{ total: number }>('SELECT total FROM pipeline_counter."Counter"');
        const added = row!.total - total;
        total = row!.total;
        return added;
      };
      const served = async () => (await fetch(`${base}/v1/modules/handlers.ts`)).text();
      // The module endpoint serves the new factor, and a reload soon puts it in effect (blocks
      // processed meanwhile run the previous handlers — or, in a burst, an intermediate save).
      const seen = async (factor: number, what: string) => {
        const pattern = new RegExp(`\\.n \\* ${factor}\\b`);
        await waitFor(served, (code) => pattern.test(code), 15_000, `${what}: served`);
        const deadline = Date.now() + 20_000;
        for (;;) {
          const added = await addOne();
          expect(added >= inEffect && added <= factor, `${what}: added ${added}`).toBe(true);
          if (added === factor) break;
          expect(Date.now() < deadline, `${what}: still ×${added} after 20 s`).toBe(true);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        inEffect = factor;
      };
      expect(await addOne()).toBe(1);

      execFileSync('sed', ['-i', 's/n \\* 1 /n * 2 /', file]);
      await seen(2, 'sed -i');
      execFileSync('sed', ['-i', 's/n \\* 2 /n * 3 /', file]);
      await seen(3, 'a second sed -i');
      writeFileSync(`${file}.tmp`, handlers('4'));
      renameSync(`${file}.tmp`, file);
      await seen(4, 'written to a temp file and renamed over');
      truncateSync(file, 0);
      appendFileSync(file, handlers('5'));
      await seen(5, 'truncated, then written');
      for (let save = 6; save < 56; save++) {
        writeFileSync(file, handlers(String(save)));
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
      await seen(55, 'the last of 50 saves in 2 s');
    } finally {
      daemon.kill();
      await daemon.exited;
    }
  });
});
