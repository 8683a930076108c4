// The Redis connection. Redis is an efficiency layer (cross-process coalescing, wake-ups): when it
// is down the daemon keeps processing, commands fail fast instead of queueing forever, and the
// client reconnects in the background. `/readyz` reports its state.

import { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';

export interface RedisConnection {
  client: Redis;
  state(): string;
  close(): Promise<void>;
}

export function connectRedis(url: string, log: Logger): RedisConnection {
  const client = new Redis(url, {
    lazyConnect: false,
    // Fail commands while disconnected instead of buffering them without bound.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 5_000),
  });
  let lastLogged = '';
  client.on('error', (error: Error) => {
    // ioredis emits on every failed reconnect; log each distinct message once per outage.
    if (error.message !== lastLogged) log.warn({ err: error }, 'redis connection error');
    lastLogged = error.message;
  });
  client.on('ready', () => {
    if (lastLogged !== '') log.info('redis connection restored');
    lastLogged = '';
  });
  return {
    client,
    state: () => client.status,
    close: async () => {
      client.disconnect();
    },
  };
}
