// A pipeline's fingerprint: what of its schema and source decides the data derived from them. The
// writer stores it and refuses to resume over a changed one; processing compares it before a
// `--watch` reload (a schema change needs a restart). Both actors use it, so it lives below them.

import type { PipelineConfig, SourceConfig } from '../config.ts';
import type { PipelineFingerprint } from '../schema/ddl.ts';
import { describeSchema, type Schema } from '../schema/define-schema.ts';

/** What of a source decides the data derived from it (not how much of it there is). */
export function sourceIdentity(source: SourceConfig): Record<string, unknown> {
  switch (source.kind) {
    case 'generator':
      return {
        kind: source.kind,
        workload: source.workload,
        seed: source.seed,
        eventsPerBlock: source.eventsPerBlock,
        addresses: source.addresses,
        distribution: source.distribution,
      };
    case 'ndjson':
      return { kind: source.kind, path: source.path };
    case 'ingest':
      return { kind: source.kind };
  }
}

export function pipelineFingerprint(pipeline: PipelineConfig, schema: Schema): PipelineFingerprint {
  const fingerprint: PipelineFingerprint = {
    schema: describeSchema(schema),
    source: sourceIdentity(pipeline.source),
  };
  // Handler options decide derived data too; absent ones leave earlier pipelines' fingerprints as they were.
  if (Object.keys(pipeline.options ?? {}).length > 0) fingerprint.options = pipeline.options;
  return fingerprint;
}
