// `POST /v1/pipelines/:name/events`: appends blocks to a pipeline's durable ingest log and answers
// only once they are committed. Body: `{ "blocks": [block, …] }` or a single block object, where a
// block is `{ number, timestamp, hash?, parentHash?, events: [{ name, payload, logIndex? }] }`.
// Everything is validated before anything is stored: malformed JSON, a block breaking the schema
// or non-increasing numbers → 400 with a code, and nothing of the request is kept.

import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { StrataError } from '../../errors.ts';
import { blockSchema, toBlock } from '../../sources/block-schema.ts';
import type { AppendResult } from '../../sources/ingest-log.ts';
import type { Block } from '../../sources/types.ts';

export interface IngestDependencies {
  /** Pipeline name → its source kind (only 'ingest' pipelines accept blocks). */
  sourceKinds: ReadonlyMap<string, string>;
  append(pipeline: string, blocks: Block[]): Promise<AppendResult>;
}

// `{ blocks: [...] }` is strict: a body that mixes `blocks` with a block's own fields is refused
// rather than half read.
const batchBody = z.object({ blocks: z.array(blockSchema).min(1).max(10_000) }).strict();

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
    const body = request.body;
    const isBatch = typeof body === 'object' && body !== null && !Array.isArray(body) && 'blocks' in body;
    const parsed = (isBatch ? batchBody : blockSchema).safeParse(body);
    if (!parsed.success) {
      const problems = parsed.error.issues
        .slice(0, 20)
        .map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`);
      throw new StrataError('STRATA_ERR_BLOCK_INVALID', `invalid blocks: ${problems.join('; ')}`, {
        details: { problems },
      });
    }
    const blocks = ('blocks' in parsed.data ? parsed.data.blocks : [parsed.data]).map((block) =>
      toBlock(block as z.output<typeof blockSchema>),
    );
    const result = await deps.append(name, blocks);
    void reply.status(200);
    return { pipeline: name, ...result };
  });
}
