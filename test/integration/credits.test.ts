// The credits ledger (examples/credits) end to end on Postgres: random histories posted over the
// ingest API to a real daemon (killed with SIGKILL halfway and restarted), then
//  - eager == replay: the lots the handlers kept equal an independent fold of the history
//    (test/helpers/credit-ledger-reference.ts), and `strata verify` finds no drift;
//  - the named queries: balance at T and the balance list against the reference, and bad
//    parameters refused with codes;
//  - `strata repair` refused while the daemon holds the pipeline; a lot edited behind the
//    ledger's back: verify exits 3 naming it, repair mends it, verify exits 0.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/sources/generator.ts';
import {
  foldLedger,
  type LedgerBlock,
  type ReferenceLot,
  randomHistory,
  referenceBalance,
  TREASURY,
} from '../helpers/credit-ledger-reference.ts';
import { type DaemonProcess, getJson, startDaemonProcess, waitFor } from '../helpers/daemon-process.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const root = path.resolve(import.meta.dirname, '../..');
const CREDITS = path.join(root, 'examples/credits');

// A database per test: each run builds the pipeline from nothing.
let db: TestDatabase;
beforeEach(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await db?.drop();
});

async function runCli(command: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['bin/strata.mjs', ...command, '--project', CREDITS],
      {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', STRATA_LOG_LEVEL: 'warn', ...env },
        timeout: 120_000,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function postBlocks(daemon: DaemonProcess, blocks: LedgerBlock[]): Promise<void> {
  const response = await fetch(`${await daemon.url}/v1/pipelines/credits/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ blocks }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
}

const committedBlock = async () =>
  Number(
    (
      await db.query<{ b: string | null }>(
        `SELECT committed_block AS b FROM strata.pipelines WHERE name = 'credits'`,
      )
    )[0]?.b ?? -1,
  );

async function storedLots(): Promise<Map<string, ReferenceLot>> {
  const rows = await db.query<Record<string, string | null>>(
    `SELECT id, address, "creditRef", "creditIndex", "amountRemaining", expiration, "messageTimestamp" FROM pipeline_credits."CreditLot"`,
  );
  return new Map(
    rows.map((row) => [
      row.id!,
      {
        address: row.address!,
        creditRef: row.creditRef!,
        creditIndex: Number(row.creditIndex),
        amountRemaining: BigInt(row.amountRemaining!),
        expiration: row.expiration === null ? null : BigInt(row.expiration!),
        messageTimestamp: BigInt(row.messageTimestamp!),
      },
    ]),
  );
}

const printable = (lots: Map<string, ReferenceLot>) =>
  [...lots]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([id, lot]) => `${id} ${lot.amountRemaining} exp ${lot.expiration}`);

describe('credits ledger', () => {
  // Both drain policies, batch sizes from 1 to 500, a SIGKILL at a seeded point of each run.
  for (const [seed, policy] of [
    [1601, 'emission'],
    [1602, 'expiration'],
  ] as const) {
    it(`eager lots equal a plain fold of the history; verify finds no drift (seed ${seed}, ${policy})`, async () => {
      const random = mulberry32(seed);
      const history = randomHistory(seed, 120);
      const batchSize = [1, 3, 20, 500][Math.floor(random() * 4)]!;
      const env = {
        DATABASE_URL: db.url,
        CREDITS_SOURCE: 'ingest',
        CREDITS_DRAIN_POLICY: policy,
        CREDITS_BATCH_SIZE: String(batchSize),
      };
      const killAt = 30 + Math.floor(random() * 60);
      let daemon = startDaemonProcess(env, [], CREDITS);
      for (let next = 0; next < killAt; ) {
        const chunk = 1 + Math.floor(random() * 20);
        await postBlocks(daemon, history.slice(next, Math.min(next + chunk, killAt)));
        next = Math.min(next + chunk, killAt);
      }
      await waitFor(committedBlock, (block) => block > 0, 60_000, 'a first commit');
      daemon.kill('SIGKILL');
      await daemon.exited;
      daemon = startDaemonProcess(env, [], CREDITS);
      for (let next = killAt; next < history.length; next += 25)
        await postBlocks(daemon, history.slice(next, next + 25));
      await waitFor(
        committedBlock,
        (block) => block === history.length,
        90_000,
        `block ${history.length} committed`,
      );

      const reference = foldLedger(history, policy, new Set([TREASURY]));
      expect(
        printable(await storedLots()),
        `seed ${seed}, batch size ${batchSize}, killed at block ${killAt}`,
      ).toEqual(printable(reference));

      // Named queries against the reference: balances at several times, the list with zeros.
      const url = await daemon.url;
      const addresses = [...new Set([...reference.values()].map((lot) => lot.address))].sort();
      const last = BigInt(history.at(-1)!.timestamp);
      for (const at of [last - 200n, last, last + 150n]) {
        for (const address of addresses) {
          const { status, body } = await getJson<{ address: string; balance: string }>(
            `${url}/v1/pipelines/credits/queries/balance?address=${address}&at=${at}`,
          );
          expect(status).toBe(200);
          expect(body, `balance of ${address} at ${at}`).toEqual({
            address,
            balance: referenceBalance(reference, address, at).toString(),
          });
        }
        const list = await getJson<Array<{ address: string; balance: string }>>(
          `${url}/v1/pipelines/credits/queries/balances?minBalance=0&at=${at}`,
        );
        expect(list.body).toEqual(
          addresses.map((address) => ({
            address,
            balance: referenceBalance(reference, address, at).toString(),
          })),
        );
      }
      const bad = async (query: string) =>
        getJson<{ error: { code: string; details?: { errors?: Record<string, string[]> } } }>(
          `${url}/v1/pipelines/credits/queries/${query}`,
        );
      const missing = await bad('balance');
      expect(missing.status).toBe(400);
      expect(missing.body.error.code).toBe('STRATA_ERR_QUERY_PARAMS_INVALID');
      expect(missing.body.error.details?.errors?.address).toEqual(['required']);
      const malformed = await bad('balances?minBalance=-1&at=soon&colour=red');
      expect(malformed.status).toBe(400);
      expect(Object.keys(malformed.body.error.details?.errors ?? {}).sort()).toEqual([
        'at',
        'colour',
        'minBalance',
      ]);
      expect((await bad('richest')).body.error.code).toBe('STRATA_ERR_QUERY_NOT_FOUND');
      expect((await bad('balance?address=a&address=b')).status).toBe(400);

      // The daemon holds the pipeline: repair refuses (before replaying anything).
      const refused = await runCli(['repair', 'credits'], env);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr, refused.stderr + refused.stdout).toContain('STRATA_ERR_PIPELINE_RUNNING');

      daemon.kill('SIGTERM');
      expect((await daemon.exited).code).toBe(0);
      // A tiny in-memory target: the replay writes its rows out and reads them back many times.
      const verified = await runCli(['verify', 'credits'], {
        ...env,
        STRATA_IN_MEMORY_OBJECTS_TARGET: '500',
      });
      expect(verified.stdout, verified.stderr).toContain('no drift');
      expect(verified.code).toBe(0);

      if (policy !== 'emission') return;
      // Drift made behind the ledger's back: verify names it, repair mends it.
      const [edited] = await db.query<{ id: string }>(
        `UPDATE pipeline_credits."CreditLot" SET "amountRemaining" = "amountRemaining" + 5
          WHERE id = (SELECT min(id) FROM pipeline_credits."CreditLot") RETURNING id`,
      );
      const drift = await runCli(['verify', 'credits'], env);
      expect(drift.code, drift.stderr).toBe(3);
      expect(drift.stdout).toContain(`id ${edited!.id}: amountRemaining`);
      const repaired = await runCli(['repair', 'credits'], env);
      expect(repaired.code, repaired.stderr).toBe(0);
      expect(repaired.stdout).toContain('repaired');
      expect(printable(await storedLots())).toEqual(printable(reference));
      expect(await committedBlock()).toBe(history.length);
      const again = await runCli(['verify', 'credits'], env);
      expect(again.code, again.stdout).toBe(0);
    });
  }
});
