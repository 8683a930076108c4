// The `strata` command: `start`, `status`, `migrate`, `reset`, `verify`, `repair`. `npm start` is
// `strata start`.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildConfig, type StrataConfig } from './config.ts';
import { startEmbeddedDatabase } from './db/embedded.ts';
import { migrate } from './db/migrator.ts';
import { EXIT_NON_RETRYABLE, exitCodeFor, StrataError } from './errors.ts';
import { createLogger, resolveLogFormat } from './logger.ts';
import { PACKAGE_ROOT } from './package-root.ts';
import { resetPipeline } from './persistence/pipeline-setup.ts';
import { FLAGS } from './settings.ts';
import { fetchStatus, renderStatus } from './status-table.ts';
import { runVerify } from './verify/verify-command.ts';

const USAGE = `strata — turns ordered event streams into live, queryable state

Usage:
  strata start   [--project DIR] [--port N] [--host H] [--memory] [--data-dir DIR]
                 [--database-url URL] [--redis-url URL] [--log-level L] [--log-format pretty|json]
  strata status  [--url http://127.0.0.1:4000] [--json]
  strata migrate [--project DIR] [--database-url URL] [--data-dir DIR]
  strata reset PIPELINE [--project DIR] [--database-url URL] [--data-dir DIR]
                 drops the pipeline's tables and progress so the next start rebuilds it from
                 its source (ingested blocks are kept). Stop the daemon first.
  strata verify PIPELINE [--json] [--project DIR] [--database-url URL] [--data-dir DIR]
                 replays the pipeline's source with its handlers into scratch tables and
                 compares every entity table with the live one; exit 0 equal, 3 drift found.
  strata repair PIPELINE [--json] [...]
                 verify, then replace the differing tables with the replay in one transaction
                 (checkpoint kept); refused while a live process writes the pipeline.

Flags of start: --exit-when-caught-up (exit 0 once every pipeline has committed its whole
finite source), --progress auto|always|never (the live progress line on stderr), --watch
(reload a pipeline's handlers at the next batch boundary when their files change).

Without DATABASE_URL the daemon runs on embedded PGlite stored in .strata/ (--memory: in memory).
Environment variables and defaults: docs/operations.md. Error codes: docs/errors.md.`;

const VERSION = (
  JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: false,
    allowPositionals: true,
    options: {
      // Every setting's flag (src/settings.ts), then the flags of `strata status` and help.
      ...Object.fromEntries(
        [...FLAGS].map(
          ([name, { flag }]) => [name, { type: flag.kind === 'value' ? 'string' : 'boolean' }] as const,
        ),
      ),
      url: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command = 'help'] = positionals;
  if (values.help === true || command === 'help') {
    console.log(USAGE);
    return 0;
  }
  const { url, json, help: _help, ...flags } = values;

  switch (command) {
    case 'start': {
      const config = await loadConfig(flags);
      if (config === null) return EXIT_NON_RETRYABLE;
      const { runDaemon } = await import('./main.ts');
      return runDaemon(config);
    }
    case 'status': {
      const target = typeof url === 'string' ? url : `http://127.0.0.1:${process.env.STRATA_PORT ?? 4000}`;
      try {
        const status = await fetchStatus(target);
        console.log(json === true ? JSON.stringify(status, null, 2) : renderStatus(status));
        return 0;
      } catch (error) {
        console.error(error instanceof Error ? error.message : String(error));
        return exitCodeFor(error);
      }
    }
    case 'migrate': {
      const config = await loadConfig(flags);
      if (config === null) return EXIT_NON_RETRYABLE;
      return withDatabase(config, async () => 0);
    }
    case 'reset': {
      const pipeline = positionals[1];
      const config = await loadConfig(flags);
      if (config === null) return EXIT_NON_RETRYABLE;
      if (pipeline === undefined || !config.pipelines.some((p) => p.name === pipeline)) {
        console.error(
          `STRATA_ERR_UNKNOWN_PIPELINE: strata reset needs one of this project's pipelines: ${config.pipelines.map((p) => p.name).join(', ')}`,
        );
        return EXIT_NON_RETRYABLE;
      }
      return withDatabase(config, async (url) => {
        await resetPipeline(url, pipeline);
        console.log(
          `pipeline ${pipeline} reset: its tables and progress are gone; the next start rebuilds it`,
        );
        return 0;
      });
    }
    case 'verify':
    case 'repair': {
      const pipeline = positionals[1];
      const config = await loadConfig(flags);
      if (config === null) return EXIT_NON_RETRYABLE;
      const declared = config.pipelines.find((p) => p.name === pipeline);
      if (declared === undefined) {
        console.error(
          `STRATA_ERR_UNKNOWN_PIPELINE: strata ${command} needs one of this project's pipelines: ${config.pipelines.map((p) => p.name).join(', ')}`,
        );
        return EXIT_NON_RETRYABLE;
      }
      return withDatabase(config, (url) => runVerify(config, declared, url, command, json === true));
    }
    default:
      console.error(`unknown command: ${command}\n\n${USAGE}`);
      return EXIT_NON_RETRYABLE;
  }
}

async function loadConfig(flags: Record<string, string | boolean | undefined>): Promise<StrataConfig | null> {
  const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined)) as Record<
    string,
    string | boolean
  >;
  try {
    return await buildConfig({ flags: defined, version: VERSION });
  } catch (error) {
    if (error instanceof StrataError) {
      console.error(`${error.code}: ${error.message}`);
      return null;
    }
    throw error;
  }
}

/** Opens the project's database (embedded or DATABASE_URL), migrates it, runs `work`. */
async function withDatabase(config: StrataConfig, work: (url: string) => Promise<number>): Promise<number> {
  const log = createLogger({
    level: config.log.level,
    format: resolveLogFormat(config.log.format, process.stdout.isTTY === true),
  });
  const embedded =
    config.database.kind === 'embedded'
      ? await startEmbeddedDatabase({
          storage: config.database.storage,
          dataDir: config.database.dataDir,
          log,
        })
      : null;
  try {
    const url = embedded?.url ?? (config.database.kind === 'postgres' ? config.database.url : '');
    const result = await migrate({ url, log, connectTimeoutMs: config.db.connectTimeoutMs });
    // On stderr: stdout is the command's own output (a report, JSON).
    console.error(
      result.applied.length === 0
        ? `migrations up to date (${result.alreadyApplied} applied earlier)`
        : `applied ${result.applied.length} migrations: ${result.applied.join(', ')}`,
    );
    return await work(url);
  } catch (error) {
    log.error({ err: error }, 'command failed');
    return exitCodeFor(error);
  } finally {
    await embedded?.close();
  }
}

process.exitCode = await main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error);
  return exitCodeFor(error);
});
// Everything is closed by now; a lingering handle must not keep a finished command alive.
setTimeout(() => process.exit(process.exitCode), 100).unref();
