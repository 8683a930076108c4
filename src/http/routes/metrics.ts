// `/metrics`: Prometheus text exposition of the daemon's registry (see src/metrics.ts).

import type { FastifyInstance } from 'fastify';
import type { AppDependencies } from '../app.ts';

export function registerMetricsRoute(app: FastifyInstance, deps: Pick<AppDependencies, 'metrics'>): void {
  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });
}
