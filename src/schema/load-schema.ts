// Loads a project's schema module (`export default defineSchema({…})`).

import { pathToFileURL } from 'node:url';
import { StrataError } from '../errors.ts';
import { isSchema, type Schema } from './define-schema.ts';

export async function loadSchema(file: string): Promise<Schema> {
  const module = await importUserModule(file, 'schema');
  if (!isSchema(module.default)) {
    throw new StrataError(
      'STRATA_ERR_CONFIG_INVALID',
      `schema module ${file} must \`export default defineSchema({ … })\``,
    );
  }
  return module.default;
}

/**
 * Imports one of the project's modules. A module that does not load (a syntax error, a failing
 * import, a throw at top level) is a project error no restart can fix: it is reported as
 * STRATA_ERR_CONFIG_INVALID with the loader's message (for a syntax error: file, line, column).
 */
export async function importUserModule(file: string, role: string): Promise<{ default?: unknown }> {
  try {
    return (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (error) {
    if (error instanceof StrataError) throw error; // e.g. defineSchema's own validation
    throw new StrataError(
      'STRATA_ERR_CONFIG_INVALID',
      `${role} module ${file} cannot be loaded: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}
