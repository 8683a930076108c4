// Ingest works on every process of a fleet (the log is in Postgres), but only the pipeline's owner
// processes it: a process that stored blocks tells the others over Redis pub/sub, and the owner's
// processing actor reads them at once. Redis is an efficiency layer here too: when it is down the
// publish fails quietly and the owner finds the blocks at its next idle poll (at most a second).

import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';

const CHANNEL = 'strata:ingest:stored';
/** A publish that takes longer than this is dropped (the owner's poll finds the blocks). */
const PUBLISH_DEADLINE_MS = 500;

export class IngestWakeUps {
  private subscribed = false;

  constructor(
    private readonly pubsub: { client: Redis; subscriber: Redis } | null,
    private readonly log: Logger,
    /** Wakes this process's processing actor of the pipeline, if it runs here. */
    private readonly wakeLocal: (pipeline: string) => void,
  ) {
    pubsub?.subscriber.on('message', (channel: string, pipeline: string) => {
      if (channel === CHANNEL) this.wakeLocal(pipeline);
    });
    // Down at start: subscribe once it is back.
    pubsub?.subscriber.on('ready', () => void this.start());
  }

  /** Subscribes (ioredis re-subscribes by itself after a reconnect). */
  async start(): Promise<void> {
    if (this.pubsub === null || this.subscribed) return;
    try {
      await this.pubsub.subscriber.subscribe(CHANNEL);
      this.subscribed = true;
    } catch (error) {
      this.log.warn({ err: error }, 'ingest wake-ups not subscribed (Redis down); owners poll instead');
    }
  }

  /** Blocks of `pipeline` were stored: wake its owner, here or on another process. */
  stored(pipeline: string): void {
    this.wakeLocal(pipeline);
    if (this.pubsub === null) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('publish timed out')), PUBLISH_DEADLINE_MS);
    });
    Promise.race([this.pubsub.client.publish(CHANNEL, pipeline), deadline])
      .catch((error: unknown) => this.log.debug({ err: error, pipeline }, 'ingest wake-up not published'))
      .finally(() => clearTimeout(timer));
  }
}
