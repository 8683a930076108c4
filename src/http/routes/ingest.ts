// `POST /v1/pipelines/:name/events`: appends blocks to a pipeline's durable ingest log and answers
// only once they are committed. Body: `{ "blocks": [block, …] }` or a single block object, where a
// block is `{ number, timestamp, hash?, parentHash?, events: [{ name, payload, logIndex? }] }`.
// Everything is validated before anything is stored: malformed JSON, a block breaking the schema
// or non-increasing numbers → 400 with a code, and nothing of the request is kept.

import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { StrataError } from '../../errors.ts';
import { type BlockProblem, problemText, readBlock } from '../../sources/block-schema.ts';
import type { AppendResult } from '../../sources/ingest-log.ts';
import type { Block } from '../../sources/types.ts';

export interface IngestDependencies {
  /** Pipeline name → its source kind (only 'ingest' pipelines accept blocks). */
  sourceKinds: ReadonlyMap<string, string>;
  append(pipeline: string, blocks: Block[]): Promise<AppendResult>;
  /** Told how every request to an ingest pipeline ended (metrics). */
  observe?(request: IngestObservation): void;
}

export interface IngestObservation {
  pipeline: string;
  /** `stored`, `already_stored`, `replaced`, or the error code the request was refused with. */
  outcome: string;
  /** Blocks and events stored (0 unless stored or replaced). */
  blocks: number;
  events: number;
  seconds: number;
}

// `{ blocks: [...] }` is strict: a body that mixes `blocks` with a block's own fields is refused
// rather than half read. Each block is then read by `readBlock`.
const batchBody = z.object({ blocks: z.array(z.unknown()).min(1).max(10_000) }).strict();

export function registerIngestRoute(app: FastifyInstance, deps: IngestDependencies): void {
  app.post<{ Params: { name: string } }>('/v1/pipelines/:name/events', async (request, reply) => {
    const { name } = request.params;
    const kind = deps.sourceKinds.get(name);
    if (kind === undefined) throw new StrataError('STRATA_ERR_UNKNOWN_PIPELINE', `no pipeline named ${name}`);
    if (kind !== 'ingest') {
      throw new StrataError(
        'STRATA_ERR_NOT_AN_INGEST_PIPELINE',
        `pipeline ${name} reads from a ${kind} source; only pipelines with source { kind: 'ingest' } accept blocks`,
      );
    }
    const started = performance.now();
    const observe = (outcome: string, blocks: number, events: number) =>
      deps.observe?.({
        pipeline: name,
        outcome,
        blocks,
        events,
        seconds: (performance.now() - started) / 1_000,
      });
    try {
      const body = request.body;
      const isBatch = typeof body === 'object' && body !== null && !Array.isArray(body) && 'blocks' in body;
      const blocks = readRequestBlocks(body, isBatch);
      const result = await deps.append(name, blocks);
      if (result.alreadyStored === true) observe('already_stored', 0, 0);
      else {
        const events = blocks.reduce((sum, block) => sum + block.events.length, 0);
        observe(result.replacedFrom === undefined ? 'stored' : 'replaced', result.stored, events);
      }
      void reply.status(200);
      return { pipeline: name, ...result };
    } catch (error) {
      observe(error instanceof StrataError ? error.code : 'error', 0, 0);
      throw error;
    }
  });
}

/** The request's blocks, each checked, or a 400 naming the first problems (nothing is stored). */
function readRequestBlocks(body: unknown, isBatch: boolean): Block[] {
  let values: unknown[] = [body];
  let problems: BlockProblem[] = [];
  if (isBatch) {
    const batch = batchBody.safeParse(body);
    if (batch.success) values = batch.data.blocks;
    else
      problems = batch.error.issues.map((issue) => ({
        path: issue.path as Array<string | number>,
        message: issue.message,
      }));
  }
  const blocks: Block[] = [];
  for (let i = 0; i < values.length && problems.length === 0; i++) {
    const reading = readBlock(values[i], isBatch ? ['blocks', i] : []);
    if (reading.problems !== undefined) problems = reading.problems;
    else blocks.push(reading.block);
  }
  if (problems.length > 0) {
    const lines = problems.slice(0, 20).map(problemText);
    throw new StrataError('STRATA_ERR_BLOCK_INVALID', `invalid blocks: ${lines.join('; ')}`, {
      details: { problems: lines },
    });
  }
  return blocks;
}
