// The schema language's entry point: a project's `schema.ts` does
//
//   export default defineSchema({
//     Account: { fields: { id: t.text(), balance: t.bigint() }, indexes: [['balance']] },
//   });
//
// `defineSchema` validates the declaration (every problem at once) and returns it with a parsed,
// ordered description the runtime uses (columns, table names). Entity row types are inferred from
// the declaration (`RowOf<typeof schema, 'Account'>`).
//
// Naming: table and column names are the entity and field names exactly (quoted), as in Envio,
// so the SQL a user writes against the tables uses the names of the schema. Every entity's
// primary key is its `id` field, which must be `t.text()`.

import { StrataError } from '../errors.ts';
import { type DerivedField, describeField, type Field, type FieldSpec } from './fields.ts';

export interface EntityDeclaration {
  readonly fields: Readonly<Record<string, Field<unknown> | DerivedField>>;
  /** Secondary indexes, each a list of field names (composite in that order). */
  readonly indexes?: ReadonlyArray<ReadonlyArray<string>>;
}

export type SchemaDeclaration = Readonly<Record<string, EntityDeclaration>>;

export interface ColumnDescription {
  readonly name: string;
  readonly spec: FieldSpec;
}

export interface EntityDescription {
  readonly name: string;
  /** Stored columns in declaration order; `id` is always first. */
  readonly columns: readonly ColumnDescription[];
  readonly derived: readonly ColumnDescription[];
  readonly indexes: ReadonlyArray<ReadonlyArray<string>>;
}

export interface Schema<D extends SchemaDeclaration = SchemaDeclaration> {
  readonly declaration: D;
  readonly entities: readonly EntityDescription[];
  readonly byName: ReadonlyMap<string, EntityDescription>;
}

/** The row type of one entity: its stored fields (derived fields are not part of rows). */
export type RowOf<S extends Schema, E extends keyof S['declaration']> = {
  -readonly [K in keyof S['declaration'][E]['fields'] as S['declaration'][E]['fields'][K] extends DerivedField
    ? never
    : K]: S['declaration'][E]['fields'][K] extends Field<infer T> ? T : never;
};

const ENTITY_NAME = /^[A-Za-z][A-Za-z0-9_]{0,49}$/;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,59}$/;

export function defineSchema<const D extends SchemaDeclaration>(declaration: D): Schema<D> {
  const problems: string[] = [];
  const entities: EntityDescription[] = [];
  for (const [name, entity] of Object.entries(declaration)) {
    if (!ENTITY_NAME.test(name)) problems.push(`entity ${name}: name must match ${ENTITY_NAME}`);
    const columns: ColumnDescription[] = [];
    const derived: ColumnDescription[] = [];
    const fields = (entity as EntityDeclaration | undefined)?.fields;
    if (typeof fields !== 'object' || fields === null) {
      problems.push(`entity ${name}: needs a fields object`);
      continue;
    }
    for (const [fieldName, fieldValue] of Object.entries(fields)) {
      const spec = (fieldValue as { spec?: FieldSpec } | undefined)?.spec;
      if (spec === undefined) {
        problems.push(`entity ${name}: field ${fieldName} is not a t.<type>() declaration`);
        continue;
      }
      if (!FIELD_NAME.test(fieldName) || fieldName.startsWith('_strata_'))
        problems.push(`entity ${name}: field name ${fieldName} is not allowed (_strata_ names are reserved)`);
      (spec.derivedFrom === null ? columns : derived).push({ name: fieldName, spec });
    }
    const id = columns.find((column) => column.name === 'id');
    if (id === undefined) problems.push(`entity ${name}: needs an id field (t.text())`);
    else if (id.spec.kind !== 'text' || id.spec.array || id.spec.nullable)
      problems.push(`entity ${name}: id must be t.text() (not null, not an array)`);
    const indexes = entity.indexes ?? [];
    for (const index of indexes) {
      if (index.length === 0) problems.push(`entity ${name}: an index needs at least one field`);
      for (const fieldName of index) {
        if (!columns.some((column) => column.name === fieldName))
          problems.push(`entity ${name}: index field ${fieldName} is not a stored field`);
      }
    }
    entities.push({
      name,
      columns: id === undefined ? columns : [id, ...columns.filter((column) => column !== id)],
      derived,
      indexes,
    });
  }
  if (entities.length === 0 && problems.length === 0) problems.push('the schema declares no entity');
  const byName = new Map(entities.map((entity) => [entity.name, entity]));
  for (const entity of entities) {
    for (const { name, spec } of entity.derived) {
      const target = byName.get(spec.derivedFrom!.entity);
      if (target === undefined)
        problems.push(
          `entity ${entity.name}: field ${name} derives from unknown entity ${spec.derivedFrom!.entity}`,
        );
      else if (!target.columns.some((column) => column.name === spec.derivedFrom!.field))
        problems.push(
          `entity ${entity.name}: field ${name} derives from unknown field ${spec.derivedFrom!.entity}.${spec.derivedFrom!.field}`,
        );
    }
  }
  if (problems.length > 0) {
    throw new StrataError(
      'STRATA_ERR_SCHEMA_INVALID',
      `invalid schema (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      { details: { problems } },
    );
  }
  return { declaration, entities, byName };
}

export function isSchema(value: unknown): value is Schema {
  return (
    typeof value === 'object' &&
    value !== null &&
    'entities' in value &&
    'byName' in value &&
    (value as { byName: unknown }).byName instanceof Map
  );
}

/**
 * The schema as plain, ordered JSON: what is hashed and stored so that a resume with a changed
 * schema is caught, and what the "what changed" message is computed from.
 */
export function describeSchema(
  schema: Schema,
): Record<string, { fields: Record<string, string>; indexes: string[] }> {
  const out: Record<string, { fields: Record<string, string>; indexes: string[] }> = {};
  for (const entity of [...schema.entities].sort((a, b) => a.name.localeCompare(b.name))) {
    const fields: Record<string, string> = {};
    for (const column of [...entity.columns, ...entity.derived])
      fields[column.name] = describeField(column.spec);
    out[entity.name] = { fields, indexes: entity.indexes.map((index) => index.join(',')) };
  }
  return out;
}
