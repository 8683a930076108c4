// The public API of Strata for project files: `import { … } from 'strata'`.
//  - strata.config.ts: `defineProject`
//  - schema.ts:        `defineSchema`, `t`
//  - handlers:         `createHandlers` (and the types of what handlers receive), `createEffect`, `z`

/** zod, for effect input and output schemas. */
export { z } from 'zod';
export type { ProjectFile } from './config.ts';
export { defineProject } from './config.ts';
export type { Effect, EffectArgs, EffectOptions } from './processing/effects.ts';
export { createEffect } from './processing/effects.ts';
export type {
  EntityOperations,
  EventHandler,
  HandlerArgs,
  HandlerContext,
} from './processing/handler-api.ts';
export { createHandlers } from './processing/handler-api.ts';
export type { WhereFilter } from './processing/where-filter.ts';
export type { NamedQueryDeclaration } from './queries/named-query.ts';
export type { RowOf, Schema } from './schema/define-schema.ts';
export { defineSchema } from './schema/define-schema.ts';
export { t } from './schema/fields.ts';
export type { Block, SourceEvent } from './sources/types.ts';
