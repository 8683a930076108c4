// The data path's shared vocabulary for a failed pipeline: what `/status` shows of the error that
// stopped it, built the same way whichever actor (processing or the writer) hit it.

import type { PipelineFailure } from '../protocol.ts';

/** What `/status` shows of the error that stopped a pipeline. */
export function failureOf(error: unknown, actor: string): PipelineFailure {
  const details = (error as { details?: Record<string, unknown> } | null)?.details ?? {};
  const number = (value: unknown) => (typeof value === 'number' ? value : null);
  return {
    code:
      typeof (error as { code?: unknown })?.code === 'string'
        ? (error as { code: string }).code
        : 'STRATA_ERR_INTERNAL',
    message: error instanceof Error ? error.message : String(error),
    block: number(details.block) ?? number(details.fromBlock),
    event: typeof details.event === 'string' ? details.event : null,
    logIndex: number(details.logIndex),
    actor,
    at: new Date().toISOString(),
  };
}
