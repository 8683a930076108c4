// Logging: pino, object first (`log.info({ pipeline, checkpoint }, 'batch committed')`). The main
// thread decides the format once (pretty on a TTY, JSON otherwise) and hands `LoggerOptions` to
// every worker, which rebuilds an equivalent logger: a worker's stdout is never a TTY, so it
// could not decide for itself.

import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

export type LogFormat = 'pretty' | 'json';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Fixed bindings on every line (process id, actor, incarnation). Never untrusted keys. */
  bindings?: Record<string, string | number>;
}

export type { Logger };

export function resolveLogFormat(requested: LogFormat | 'auto', isTTY: boolean): LogFormat {
  if (requested !== 'auto') return requested;
  return isTTY ? 'pretty' : 'json';
}

export function createLogger(options: LoggerOptions): Logger {
  const base = { level: options.level, base: options.bindings ?? {} };
  if (options.format === 'pretty') {
    // A synchronous pretty stream, not a transport: transports start their own worker thread,
    // and we do not want one per actor.
    // Loaded only here: every actor thread creates a logger, and with JSON output (services, tests)
    // none of them needs the pretty printer's ~20 ms of module loading.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    return pino(base, pretty({ sync: true, colorize: true, ignore: 'pid,hostname' }));
  }
  return pino(base, pino.destination({ sync: true }));
}

/** The child logger an actor uses: every line says which actor and which incarnation. */
export function actorLogger(parent: Logger, actor: string, incarnation: number): Logger {
  return parent.child({ actor, incarnation });
}
