// The block source a pipeline's config names.

import type { PipelineConfig } from '../config.ts';
import type { Db } from '../db/pool.ts';
import type { BlockSource } from './block-source.ts';
import { GeneratorSource } from './generator.ts';
import { IngestLogSource } from './ingest-log.ts';
import { NdjsonFileSource } from './ndjson-file.ts';

export function createSource(pipeline: PipelineConfig, db: Db): BlockSource {
  switch (pipeline.source.kind) {
    case 'generator':
      return new GeneratorSource(pipeline.source);
    case 'ndjson':
      return new NdjsonFileSource(pipeline.source.path);
    case 'ingest':
      return new IngestLogSource(db, pipeline.name);
  }
}
