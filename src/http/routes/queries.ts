// Named read queries (docs/projects.md, "Named queries"):
//   GET /v1/pipelines/:name/queries          → what the pipeline declares (names, parameters)
//   GET /v1/pipelines/:name/queries/:query?… → the query's answer as JSON
// Parameters come from the query string and are validated against the declaration before anything
// runs (400 STRATA_ERR_QUERY_PARAMS_INVALID with every problem by name).

import type { FastifyInstance } from 'fastify';
import { StrataError } from '../../errors.ts';
import { bindParams, type NamedQuery } from '../../queries/named-query.ts';

export interface QueryRouteDependencies {
  /** Pipeline name → its declared queries (every pipeline of the project, even with none). */
  queries: ReadonlyMap<string, Readonly<Record<string, NamedQuery>>>;
  run(
    pipeline: string,
    name: string,
    query: NamedQuery,
    values: unknown[],
  ): Promise<Array<Record<string, unknown>>>;
  now?: () => number;
}

export function registerQueryRoutes(app: FastifyInstance, deps: QueryRouteDependencies): void {
  const now = deps.now ?? Date.now;
  const declared = (pipeline: string) => {
    const queries = deps.queries.get(pipeline);
    if (queries === undefined)
      throw new StrataError('STRATA_ERR_UNKNOWN_PIPELINE', `no pipeline named ${pipeline}`);
    return queries;
  };

  app.get<{ Params: { name: string } }>('/v1/pipelines/:name/queries', async (request) => {
    const queries = declared(request.params.name);
    return {
      pipeline: request.params.name,
      queries: Object.entries(queries).map(([name, query]) => ({
        name,
        description: query.description ?? null,
        returns: query.returns,
        params: Object.fromEntries(
          Object.entries(query.params).map(([param, spec]) => [
            param,
            {
              type: spec.type,
              required: spec.default === undefined && !spec.optional,
              ...(spec.default === undefined ? {} : { default: spec.default }),
              ...(spec.description === undefined ? {} : { description: spec.description }),
            },
          ]),
        ),
      })),
    };
  });

  app.get<{ Params: { name: string; query: string }; Querystring: Record<string, unknown> }>(
    '/v1/pipelines/:name/queries/:query',
    async (request, reply) => {
      const { name: pipeline, query: queryName } = request.params;
      const queries = declared(pipeline);
      const query = Object.hasOwn(queries, queryName) ? queries[queryName] : undefined;
      if (query === undefined) {
        throw new StrataError(
          'STRATA_ERR_QUERY_NOT_FOUND',
          `pipeline ${pipeline} has no query named ${queryName} (it has: ${Object.keys(queries).join(', ') || 'none'})`,
          { details: { pipeline, query: queryName } },
        );
      }
      const bound = bindParams(query, request.query ?? {}, now);
      if ('problems' in bound) {
        const summary = Object.entries(bound.problems)
          .map(([param, problems]) => `${param}: ${problems.join(', ')}`)
          .join('; ');
        throw new StrataError('STRATA_ERR_QUERY_PARAMS_INVALID', `query ${queryName}: ${summary}`, {
          details: { pipeline, query: queryName, errors: bound.problems },
        });
      }
      const rows = await deps.run(pipeline, queryName, query, bound.values);
      void reply.header('cache-control', 'no-store');
      return query.returns === 'row' ? (rows[0] ?? null) : rows;
    },
  );
}
