// `/status`: the daemon's figures as JSON, from in-memory snapshots only (it must answer fast even
// when an actor hangs or the database is slow). `strata status` renders it as a table.

import type { FastifyInstance } from 'fastify';
import type { StatusSnapshot } from '../../status-types.ts';

export function registerStatusRoute(app: FastifyInstance, deps: { status: () => StatusSnapshot }): void {
  app.get('/status', async (_request, reply) => {
    void reply.header('cache-control', 'no-store');
    return deps.status();
  });
}
