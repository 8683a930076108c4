// `/livez` answers while the process is responsive and never touches Postgres or Redis (a
// database outage must not get the daemon killed); `/readyz` reflects the dependencies and says
// which are not ready.

import type { FastifyInstance } from 'fastify';
import type { ReadinessCheck } from '../../status-types.ts';

export function registerHealthRoutes(
  app: FastifyInstance,
  deps: { readiness: () => Promise<ReadinessCheck[]> },
): void {
  app.get('/livez', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const checks = await deps.readiness();
    const failing = checks.filter((check) => !check.ok);
    if (failing.length === 0) return { status: 'ready', checks };
    return reply.status(503).send({
      status: 'not-ready',
      error: {
        code: 'STRATA_ERR_NOT_READY',
        message: `not ready: ${failing.map((check) => `${check.name}${check.detail ? ` (${check.detail})` : ''}`).join(', ')}`,
      },
      checks,
    });
  });
}
