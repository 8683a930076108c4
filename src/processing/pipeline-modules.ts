// Loading a pipeline's user modules: its schema and its handler modules, checked to belong
// together (a handler module is created for one schema; its entities must be the pipeline's).

import type { PipelineConfig } from '../config.ts';
import { StrataError } from '../errors.ts';
import type { Schema } from '../schema/define-schema.ts';
import { importUserModule, loadSchema } from '../schema/load-schema.ts';
import { importablePaths } from '../transpile/project-file-import.ts';
import { type EventHandler, isHandlerRegistry } from './handler-api.ts';

type PipelineModules = Awaited<ReturnType<typeof loadPipelineModules>>;

/**
 * `loadPipelineModules` from the project's own files rather than the module cache's builds
 * (`strata verify`, the benchmarks' limits): a thread of the compiled runtime has no TypeScript
 * loader, so they are built first — together, so the handlers share the schema's module.
 */
export async function loadPipelineModulesFromSources(pipeline: PipelineConfig): Promise<PipelineModules> {
  const [schema, ...handlers] = await importablePaths([pipeline.schema, ...pipeline.handlers]);
  return loadPipelineModules({ ...pipeline, schema: schema!, handlers });
}

/** Loads a pipeline's schema and handler modules and checks that they belong together. */
export async function loadPipelineModules(
  pipeline: PipelineConfig,
): Promise<{ schema: Schema; handlers: Map<string, Array<EventHandler<Schema, never>>> }> {
  const schema = await loadSchema(pipeline.schema);
  const handlers = new Map<string, Array<EventHandler<Schema, never>>>();
  for (const file of pipeline.handlers) {
    const module = await importUserModule(file, 'handler');
    if (!isHandlerRegistry(module.default)) {
      throw new StrataError(
        'STRATA_ERR_CONFIG_INVALID',
        `handler module ${file} must \`export default createHandlers(schema)\` with its onEvent(…) handlers`,
      );
    }
    const names = (s: Schema) => s.entities.map((entity) => entity.name).join(',');
    if (names(module.default.schema) !== names(schema)) {
      throw new StrataError(
        'STRATA_ERR_CONFIG_INVALID',
        `handler module ${file} was created for entities [${names(module.default.schema)}], but pipeline ${pipeline.name}'s schema declares [${names(schema)}]`,
      );
    }
    for (const [event, list] of module.default.handlers)
      handlers.set(event, [...(handlers.get(event) ?? []), ...list]);
  }
  return { schema, handlers };
}
