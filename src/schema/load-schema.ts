// Loads a project's schema module (`export default defineSchema({…})`).

import { pathToFileURL } from 'node:url';
import { StrataError } from '../errors.ts';
import { isSchema, type Schema } from './define-schema.ts';

export async function loadSchema(file: string): Promise<Schema> {
  const module = (await import(pathToFileURL(file).href)) as { default?: unknown };
  if (!isSchema(module.default)) {
    throw new StrataError(
      'STRATA_ERR_CONFIG_INVALID',
      `schema module ${file} must \`export default defineSchema({ … })\``,
    );
  }
  return module.default;
}
