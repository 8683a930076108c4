// The CLI side of `strata verify` / `strata repair`: a progress bar on a terminal (a line every
// 10 s otherwise), the report (text, or JSON with --json), and the exit code — 0 when every table
// equals its replay (after repair: when it does now), 3 when drift was found and stays.

import { SingleBar } from 'cli-progress';
import type { PipelineConfig, StrataConfig } from '../config.ts';
import { createDb } from '../db/pool.ts';
import { exitCodeFor, StrataError } from '../errors.ts';
import { createLogger } from '../logger.ts';
import { verifyPipeline } from './verify-pipeline.ts';
import { renderVerifyReport } from './verify-report.ts';

export const EXIT_DRIFT = 3;

export async function runVerify(
  config: StrataConfig,
  pipeline: PipelineConfig,
  url: string,
  command: 'verify' | 'repair',
  json: boolean,
): Promise<number> {
  const db = createDb({
    url,
    max: 4,
    connectTimeoutMs: config.db.connectTimeoutMs,
    applicationName: `strata ${command}`,
    log: silent,
  });
  const bar = process.stderr.isTTY
    ? new SingleBar({
        stream: process.stderr,
        format: `${command} ${pipeline.name} {bar} {percentage}% | block {value}/{total} | {events} events | {eta_formatted} left`,
        hideCursor: true,
        clearOnComplete: true,
      })
    : null;
  let lastLine = Date.now();
  try {
    const report = await verifyPipeline({
      db,
      pipeline,
      repair: command === 'repair',
      embedded: config.database.kind === 'embedded',
      flushAtObjects: config.processing.inMemoryObjectsTarget,
      log: silent,
      onStart: (block) => bar?.start(Math.max(block, 0), 0, { events: 0 }),
      onProgress: (block, events) => {
        bar?.update(block, { events: events.toLocaleString('en-US') });
        if (bar === null && Date.now() - lastLine > 10_000) {
          lastLine = Date.now();
          process.stderr.write(
            `${command} ${pipeline.name}: replayed up to block ${block} (${events} events)\n`,
          );
        }
      },
    });
    bar?.stop();
    console.log(json ? JSON.stringify(report, null, 2) : renderVerifyReport(report, command));
    return report.drift && report.repaired.length === 0 ? EXIT_DRIFT : 0;
  } catch (error) {
    bar?.stop();
    if (!(error instanceof StrataError)) throw error;
    console.error(`${error.code}: ${error.message}`);
    return exitCodeFor(error);
  } finally {
    await db.close();
  }
}

const silent = createLogger({ level: 'silent', format: 'json' });
