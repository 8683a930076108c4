// `/metrics`: Prometheus text exposition of the daemon's registry (see src/metrics.ts).

import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';

export function registerMetricsRoute(app: FastifyInstance, deps: { metrics: Registry }): void {
  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', deps.metrics.contentType);
    return deps.metrics.metrics();
  });
}
