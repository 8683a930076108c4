// The daemon process: starts the daemon, owns signals and the exit code.
//  - SIGTERM / SIGINT: graceful shutdown (stop intake, flush the writer, stop actors in reverse
//    order), exit 0. A second signal exits at once.
//  - The supervisor gave up (restart intensity): exit 75 (EX_TEMPFAIL), so systemd or Kubernetes
//    restarts the process. A fatal, non-retryable pipeline error: exit 1.

import type { StrataConfig } from './config.ts';
import { startDaemon } from './daemon/daemon.ts';
import { exitCodeFor } from './errors.ts';
import { createLogger, resolveLogFormat } from './logger.ts';

export async function runDaemon(config: StrataConfig): Promise<number> {
  const log = createLogger({
    level: config.log.level,
    format: resolveLogFormat(config.log.format, process.stdout.isTTY === true),
  });
  log.info(
    {
      version: config.version,
      pid: process.pid,
      project: config.project.dir,
      database: config.database.kind,
    },
    'starting strata',
  );

  let signals = 0;
  let daemonShutdown: ((reason: string) => Promise<void>) | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    // During start-up the shutdown runs as soon as the daemon is up (below).
    if (daemonShutdown === null) log.info({ signal }, 'signal during start-up: stopping once started');
    else void daemonShutdown(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    const daemon = await startDaemon(config, log);
    daemonShutdown = daemon.shutdown;
    if (signals > 0) void daemon.shutdown('signal during start-up');
    return await daemon.exited;
  } catch (error) {
    log.fatal({ err: error }, 'strata failed to start');
    return exitCodeFor(error);
  }
}
