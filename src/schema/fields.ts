// Field builders of the schema language: `t.text()`, `t.bigint().nullable()`, `t.array(t.integer())`,
// `t.derivedFrom('Transfer', 'from')`. Each builder carries its JavaScript type as a phantom type
// parameter, so entity types are inferred from the schema value and editors autocomplete
// `context.Account.set({ … })` without code generation.
//
// Type mapping (JavaScript ↔ Postgres), following Ponder where the two indexers differ:
//   text        string   text
//   integer     number   integer            (32-bit; use bigint for anything larger)
//   bigint      bigint   numeric(78,0)      (fits uint256, the common case for on-chain amounts)
//   numeric     string   numeric            (exact decimal kept as a string: no float rounding)
//   boolean     boolean  boolean
//   timestamptz Date     timestamptz
//   json        unknown  jsonb
//   array(f)    T[]      <f>[]              (one dimension)

export type ScalarKind = 'text' | 'integer' | 'bigint' | 'numeric' | 'boolean' | 'timestamptz' | 'json';

export interface FieldSpec {
  readonly kind: ScalarKind;
  readonly array: boolean;
  readonly nullable: boolean;
  /** Virtual reverse relation: not a column, never set; read it with `getWhere`. */
  readonly derivedFrom: { readonly entity: string; readonly field: string } | null;
}

/** A field declaration; `T` is the JavaScript type of its value (phantom). */
export interface Field<T> {
  readonly spec: FieldSpec;
  /** Allows NULL (JavaScript `null`). */
  nullable(): Field<T | null>;
  /** Phantom marker; never present at run time. */
  readonly __type?: T;
}

/** A derived (virtual) field: documented in the schema, absent from rows. */
export interface DerivedField {
  readonly spec: FieldSpec;
  readonly __derived: true;
}

type ScalarType = {
  text: string;
  integer: number;
  bigint: bigint;
  numeric: string;
  boolean: boolean;
  timestamptz: Date;
  json: unknown;
};

function field<T>(spec: FieldSpec): Field<T> {
  return {
    spec,
    nullable: () => field<T | null>({ ...spec, nullable: true }),
  };
}

function scalar<K extends ScalarKind>(kind: K): Field<ScalarType[K]> {
  return field<ScalarType[K]>({ kind, array: false, nullable: false, derivedFrom: null });
}

export const t = {
  text: () => scalar('text'),
  integer: () => scalar('integer'),
  bigint: () => scalar('bigint'),
  numeric: () => scalar('numeric'),
  boolean: () => scalar('boolean'),
  timestamptz: () => scalar('timestamptz'),
  json: () => scalar('json'),
  /** A one-dimensional array of a scalar field (nullability applies to the array itself). */
  array<T>(element: Field<T>): Field<T[]> {
    if (element.spec.array) throw new TypeError('t.array(): nested arrays are not supported');
    return field<T[]>({ ...element.spec, array: true, nullable: false });
  },
  /** A reverse relation: the rows of `entity` whose `field` equals this entity's id. */
  derivedFrom(entity: string, fieldName: string): DerivedField {
    return {
      spec: { kind: 'text', array: false, nullable: true, derivedFrom: { entity, field: fieldName } },
      __derived: true,
    };
  },
};

/** Postgres type of a field's column. */
export function columnType(spec: FieldSpec): string {
  const base = {
    text: 'text',
    integer: 'integer',
    bigint: 'numeric(78,0)',
    numeric: 'numeric',
    boolean: 'boolean',
    timestamptz: 'timestamptz',
    json: 'jsonb',
  }[spec.kind];
  return spec.array ? `${base}[]` : base;
}

/** How a field's type reads in messages ("bigint[] null"). */
export function describeField(spec: FieldSpec): string {
  if (spec.derivedFrom !== null) return `derivedFrom(${spec.derivedFrom.entity}.${spec.derivedFrom.field})`;
  return `${spec.kind}${spec.array ? '[]' : ''}${spec.nullable ? ' null' : ''}`;
}
