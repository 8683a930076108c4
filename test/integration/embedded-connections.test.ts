// Embedded PGlite has one session; every actor reaches it through its own connection to the
// socket server. Statements of different connections must never mix: an extended-protocol query
// (Parse … Sync) runs whole, and a transaction runs alone until it ends. Here connections run
// explicit transactions and parameterized queries side by side; every transaction must see only
// its own statements, every query answer its own parameters, and nothing may stall.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedDatabase, startEmbeddedDatabase } from '../../src/db/embedded.ts';
import { createLogger } from '../../src/logger.ts';

let embedded: EmbeddedDatabase;
beforeAll(async () => {
  embedded = await startEmbeddedDatabase({
    storage: 'memory',
    dataDir: '',
    log: createLogger({ level: 'silent', format: 'json' }),
  });
});
afterAll(async () => {
  await embedded?.close();
});

describe('embedded PGlite connections', () => {
  it('keep their transactions and extended-protocol queries apart', async () => {
    const clients = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const client = new pg.Client({ connectionString: embedded.url });
        await client.connect();
        return client;
      }),
    );
    try {
      await clients[0]!.query('CREATE TABLE counted (n integer)');
      const transactions = async (client: pg.Client, id: number) => {
        for (let i = 0; i < 150; i++) {
          await client.query('BEGIN');
          // Fails if another connection's statement ran in this transaction before it.
          await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
          await client.query('INSERT INTO counted VALUES ($1)', [id]);
          await client.query(i % 3 === 0 ? 'ROLLBACK' : 'COMMIT');
        }
      };
      const queries = async (client: pg.Client, id: number) => {
        for (let i = 0; i < 400; i++) {
          const value = id * 1_000 + i;
          const { rows } = await client.query<{ v: number }>('SELECT $1::int AS v', [value]);
          expect(rows).toEqual([{ v: value }]);
        }
      };
      await Promise.all([
        transactions(clients[0]!, 1),
        transactions(clients[1]!, 2),
        queries(clients[2]!, 3),
        queries(clients[3]!, 4),
      ]);
      // 100 of each transactor's 150 committed; the rolled-back third left nothing.
      const { rows } = await clients[2]!.query<{ n: number; count: string }>(
        'SELECT n, count(*) FROM counted GROUP BY n ORDER BY n',
      );
      expect(rows).toEqual([
        { n: 1, count: '100' },
        { n: 2, count: '100' },
      ]);
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  }, 60_000);
});
