// The live progress line on a terminal: one line per pipeline, redrawn in place (cli-progress),
// with what an operator watches during a long backfill — how far (block / head, checkpoint), how
// fast (blocks/s, events/s), how far the writer trails (commit lag) and memory (in-memory
// objects). Off when stderr is not a terminal (logs carry the same figures every 10 s), unless
// STRATA_PROGRESS=always.

import { MultiBar, type SingleBar } from 'cli-progress';
import type { PipelineProgress } from './protocol.ts';

const FORMAT =
  '{pipeline} {bar} {percentage}% | block {block}/{head} | {blocksPerSecond} blk/s {eventsPerSecond} ev/s | ckpt {processed} (lag {lag}) | {objects} objects | {state}';

export class ProgressLine {
  private readonly multibar: MultiBar;
  private readonly bars = new Map<string, SingleBar>();

  constructor(stream: NodeJS.WriteStream) {
    this.multibar = new MultiBar({
      stream,
      format: FORMAT,
      barsize: 20,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      forceRedraw: true,
      noTTYOutput: !stream.isTTY,
      notTTYSchedule: 10_000,
      fps: 4,
    });
  }

  update(progress: readonly PipelineProgress[]): void {
    for (const pipeline of progress) {
      const head = Math.max(
        pipeline.headBlockNumber ?? pipeline.processedBlockNumber,
        pipeline.processedBlockNumber,
        1,
      );
      const payload = {
        pipeline: pipeline.pipeline,
        block: Math.max(pipeline.processedBlockNumber, 0).toLocaleString('en-US'),
        head: pipeline.headBlockNumber === null ? '?' : pipeline.headBlockNumber.toLocaleString('en-US'),
        blocksPerSecond: pipeline.blocksPerSecond.toLocaleString('en-US'),
        eventsPerSecond: pipeline.eventsPerSecond.toLocaleString('en-US'),
        processed: pipeline.processedCheckpoint.toLocaleString('en-US'),
        lag: (pipeline.processedCheckpoint - pipeline.committedCheckpoint).toLocaleString('en-US'),
        objects: pipeline.inMemoryObjects.toLocaleString('en-US'),
        state: pipeline.state,
      };
      const bar = this.bars.get(pipeline.pipeline);
      if (bar === undefined) {
        this.bars.set(
          pipeline.pipeline,
          this.multibar.create(head, Math.max(pipeline.processedBlockNumber, 0), payload),
        );
      } else {
        bar.setTotal(head);
        bar.update(Math.max(pipeline.processedBlockNumber, 0), payload);
      }
    }
  }

  stop(): void {
    this.multibar.stop();
  }
}
