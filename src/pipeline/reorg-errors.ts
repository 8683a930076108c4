// The ways a reorg can reach below what can be rolled back. Each stops the pipeline before
// anything is changed; the processing actor raises them for what it holds in memory, the writer
// for what is stored.

import { StrataError } from '../errors.ts';

/** No block within maxReorgDepth of the processed block is on the new branch. */
export function noCommonAncestorError(
  pipeline: string,
  what: string,
  details: Record<string, unknown> & { processedBlock: number; maxReorgDepth: number },
): StrataError {
  return new StrataError(
    'STRATA_ERR_REORG_TOO_DEEP',
    `pipeline ${pipeline}: ${what} processed block ${details.processedBlock}, and no common ancestor was found within maxReorgDepth (${details.maxReorgDepth}) blocks; nothing was changed. Raise maxReorgDepth and restart, or \`strata reset ${pipeline}\``,
    { details: { pipeline, ...details } },
  );
}

/**
 * The history down to the common ancestor was pruned: the ancestor is more than maxReorgDepth
 * below the highest block committed so far (a reorg soon after another, reaching further down).
 */
export function prunedHistoryError(pipeline: string, toCheckpoint: number): StrataError {
  return new StrataError(
    'STRATA_ERR_REORG_TOO_DEEP',
    `pipeline ${pipeline}: cannot roll back to checkpoint ${toCheckpoint}: its history was already pruned (it lies more than maxReorgDepth below the highest block committed, which an earlier reorg rolled back); nothing was changed. Raise maxReorgDepth and \`strata reset ${pipeline}\``,
    { details: { pipeline, toCheckpoint } },
  );
}

/** Blocks above the common ancestor were processed outside the reorg threshold: no history. */
export function noHistoryError(pipeline: string, toCheckpoint: number): StrataError {
  return new StrataError(
    'STRATA_ERR_REORG_TOO_DEEP',
    `pipeline ${pipeline}: cannot roll back to checkpoint ${toCheckpoint}: blocks above it were processed outside the reorg threshold (no history); nothing was changed. Set fullHistory or a larger maxReorgDepth and \`strata reset ${pipeline}\``,
    { details: { pipeline, toCheckpoint } },
  );
}
