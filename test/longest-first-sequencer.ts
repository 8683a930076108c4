// The order test files start in: the longest integration files first, so that no long file
// starts late and alone sets the suite's end. vitest orders by the last run's durations when it
// has them (node_modules/.vite), but a fresh clone — CI — has none, and then it starts larger
// files first: reorg-property.test.ts, a short file that runs ~90 s, started 25th of 51 in the
// clean-clone run of 2026-12-07 and was still running well after the rest. The list is those
// runs' longest files, longest first; other files follow in vitest's own order.
import path from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const LONGEST_FIRST = [
  'reorg-property',
  'hardening',
  'fleet',
  'shapes',
  'crash',
  'daemon',
  'model',
  'shapes-durability',
  'shapes-property',
  'ingest-fuzz',
  'credits',
].map((name) => `test/integration/${name}.test.ts`);

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (spec: TestSpecification) => {
      const index = LONGEST_FIRST.indexOf(path.relative(this.ctx.config.root, spec.moduleId));
      return index < 0 ? LONGEST_FIRST.length : index;
    };
    // Array.prototype.sort is stable: unlisted files keep vitest's order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
