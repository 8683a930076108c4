// A shape as a request defines it: what its identity is made of, kept in `strata.shapes`.

export interface ShapeDefinition {
  /** `<pipeline>.<Entity>`, or `<Entity>` when one pipeline alone has it. */
  table: string;
  where: string | null;
  /** `params[n]`, 1-based. */
  params: Record<string, string>;
  columns: string[] | null;
  replica: 'default' | 'full';
}
