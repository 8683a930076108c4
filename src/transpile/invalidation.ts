// Invalidation of the module cache across a fleet: the process that learns of a change (its file
// watcher, or POST /v1/modules/invalidate) tombstones L2 and drops its own L1, then tells every
// peer over Redis pub/sub to drop theirs. Peers only run the local part: L2 is shared. Without
// Redis (the embedded default) there are no peers. A lost message is survivable: each daemon
// watches its own copy of the project, and L2 and transpile keys are content-addressed (an edited
// file never gets another version's bytes from them); what a lost message can leave behind is a
// peer's L1 entry of an explicit POST /v1/modules/invalidate, until that peer's next change.

import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { type FSWatcher, watch } from 'chokidar';
import type { Redis } from 'ioredis';
import type { Logger } from '../logger.ts';
import type { ModuleService } from './module-service.ts';

export interface ModuleInvalidationOptions {
  modules: ModuleService;
  log: Logger;
  redis?: { client: Redis; subscriber: Redis } | null;
  prefix?: string;
  /** Told about every invalidation, local or from a peer (the `--watch` handler reload). */
  onInvalidate?: (paths: readonly string[] | 'all') => void;
}

const SOURCE_FILE = /\.(c|m)?(t|j)sx?$/;

export class ModuleInvalidation {
  private readonly options: ModuleInvalidationOptions;
  private readonly channel: string;
  private readonly sender = randomUUID();
  private watcher: FSWatcher | null = null;
  private pending = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(options: ModuleInvalidationOptions) {
    this.options = options;
    this.channel = `${options.prefix ?? 'strata:modules'}:invalidate`;
    const subscriber = options.redis?.subscriber;
    if (subscriber !== undefined) {
      subscriber.on('message', (channel: string, message: string) => {
        if (channel !== this.channel) return;
        try {
          const { sender, paths } = JSON.parse(message) as { sender: string; paths: string[] | 'all' };
          if (sender === this.sender) return;
          this.options.modules.invalidateLocal(paths);
          this.options.onInvalidate?.(paths);
        } catch (error) {
          this.options.log.warn({ err: error }, 'module cache: unreadable invalidation message');
        }
      });
      subscriber.subscribe(this.channel).catch((error: unknown) => {
        this.options.log.warn(
          { err: error },
          'module cache: cannot subscribe to invalidations (peers keep their L1)',
        );
      });
    }
  }

  async invalidate(paths: string[] | 'all'): Promise<void> {
    await this.options.modules.invalidate(paths);
    this.options.onInvalidate?.(paths);
    const client = this.options.redis?.client;
    if (client !== undefined && client.status === 'ready') {
      await client
        .publish(this.channel, JSON.stringify({ sender: this.sender, paths }))
        .catch((error: unknown) =>
          this.options.log.warn({ err: error }, 'module cache: invalidation not broadcast'),
        );
    }
  }

  /**
   * Watches the project folder; changed source files are invalidated (debounced). Resolves when
   * the watcher is armed. chokidar, not
   * Node's recursive `fs.watch`: on Linux that watches each file's inode, so after a save that
   * replaces the file (`sed -i`, an editor's write-to-temp-and-rename) it never saw the file again.
   * chokidar watches directories and re-arms on rename (`atomic`).
   */
  watch(root: string): Promise<void> {
    const skipped = (file: string) => {
      const relative = path.relative(root, file).split(path.sep);
      return relative.includes('node_modules') || relative[0] === '.strata' || relative[0] === '.git';
    };
    this.watcher = watch(root, { ignoreInitial: true, atomic: true, ignored: skipped });
    this.watcher.on('all', (event, file) => {
      if (event === 'addDir' || event === 'unlinkDir' || !SOURCE_FILE.test(file)) return;
      this.pending.add(path.relative(root, file).split(path.sep).join('/'));
      this.timer ??= setTimeout(() => {
        const paths = [...this.pending];
        this.pending = new Set();
        this.timer = null;
        void this.invalidate(paths);
      }, 50);
    });
    this.watcher.on('error', (error) =>
      this.options.log.warn({ err: error }, 'module cache: file watcher failed'),
    );
    // Resolves once the initial scan is done: saves before that are not seen.
    const watcher = this.watcher;
    return new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  }

  close(): void {
    void this.watcher?.close();
    if (this.timer !== null) clearTimeout(this.timer);
  }
}
