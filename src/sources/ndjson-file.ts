// The NDJSON file source: one block per line (`{"number":1,"timestamp":…,"events":[…]}`), blocks
// in increasing number order. The file is streamed, never read whole, so a file larger than
// memory works; a line that is not a valid block stops the pipeline with its file and line.

import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { StrataError } from '../errors.ts';
import { problemText, readBlock } from './block-schema.ts';
import { type BlockSource, Waker } from './block-source.ts';
import type { Block } from './types.ts';

export class NdjsonFileSource implements BlockSource {
  readonly finite = true;
  private readonly path: string;
  private readonly lines: AsyncIterator<string>;
  private readonly waker = new Waker();
  private lineNumber = 0;
  private lastNumber = -1;
  private ended = false;

  constructor(path: string) {
    this.path = path;
    const input = createReadStream(path, { encoding: 'utf8' });
    input.on('error', () => undefined); // surfaced by the line iterator below
    this.lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })[Symbol.asyncIterator]();
  }

  async read(after: number, max: number): Promise<Block[]> {
    const blocks: Block[] = [];
    while (blocks.length < max) {
      const block = await this.nextBlock();
      if (block === null) break;
      if (block.number <= after) continue; // before the resume point
      blocks.push(block);
    }
    return blocks;
  }

  head(): number | null {
    return this.ended ? this.lastNumber : null;
  }

  waitForMore(ms: number): Promise<void> {
    return this.waker.wait(ms);
  }

  wake(): void {
    this.waker.wake();
  }

  async close(): Promise<void> {
    await this.lines.return?.();
  }

  private async nextBlock(): Promise<Block | null> {
    for (;;) {
      let next: IteratorResult<string>;
      try {
        next = await this.lines.next();
      } catch (error) {
        throw new StrataError(
          'STRATA_ERR_SOURCE_INVALID',
          `cannot read ${this.path}: ${(error as Error).message}`,
          {
            cause: error,
            details: { path: this.path },
          },
        );
      }
      if (next.done === true) {
        this.ended = true;
        return null;
      }
      this.lineNumber += 1;
      const text = next.value.trim();
      if (text === '') continue;
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (error) {
        throw this.lineError(`not JSON (${(error as Error).message})`);
      }
      const reading = readBlock(json);
      if (reading.problems !== undefined) throw this.lineError(reading.problems.map(problemText).join('; '));
      const { block } = reading;
      if (block.number <= this.lastNumber) {
        throw this.lineError(`block ${block.number} does not follow block ${this.lastNumber}`);
      }
      this.lastNumber = block.number;
      return block;
    }
  }

  private lineError(message: string): StrataError {
    return new StrataError('STRATA_ERR_SOURCE_INVALID', `${this.path}:${this.lineNumber}: ${message}`, {
      details: { path: this.path, line: this.lineNumber },
    });
  }
}
