// Test-only fault injection: `STRATA_TEST_FAULT`, parsed once with the config into a typed plan that
// the actors receive with their start-up data. Never set in production. The kinds:
//   processing:crash-at-start / persistence:crash-at-start — the actor throws while starting;
//   persistence:crash-before-commit:N — the writer's N-th transaction is abandoned before COMMIT
//     and its thread exits (first incarnation only, so a test sees one crash and the recovery);
//   persistence:crash-after-commit:N — the thread exits after the N-th COMMIT, before reporting it;
//   persistence:write-delay:MS — every write waits MS first, so batches queue up;
//   materializer:crash-at-commit:N — the materializer's thread exits at the N-th commit marker it
//     gets, before applying it (first incarnation only): shapes must come back from the store;
//   shapes:snapshot-page-delay:MS — a paged snapshot (embedded PGlite) waits MS between pages, so
//     commits land between them and the pages are brought to one point by the shape's log;
//   fleet:take-delay:MS — a process that acquired a pipeline's lease waits MS before taking the
//     pipeline over (the moment it holds the lease and does not serve the pipeline yet).

export type TestFault =
  | { kind: 'processing:crash-at-start' }
  | { kind: 'persistence:crash-at-start' }
  | { kind: 'persistence:crash-before-commit'; transaction: number }
  | { kind: 'persistence:crash-after-commit'; transaction: number }
  | { kind: 'persistence:write-delay'; ms: number }
  | { kind: 'materializer:crash-at-commit'; commit: number }
  | { kind: 'shapes:snapshot-page-delay'; ms: number }
  | { kind: 'fleet:take-delay'; ms: number };

const WITH_NUMBER =
  /^(persistence:crash-before-commit|persistence:crash-after-commit|persistence:write-delay|materializer:crash-at-commit|shapes:snapshot-page-delay|fleet:take-delay):(\d+)$/;

/** The plan a setting names, or a problem for the config's list. */
export function parseTestFault(text: string): TestFault | { problem: string } {
  if (text === 'processing:crash-at-start' || text === 'persistence:crash-at-start') return { kind: text };
  const match = WITH_NUMBER.exec(text);
  if (match !== null) {
    const value = Number(match[2]);
    switch (match[1]) {
      case 'persistence:crash-before-commit':
        return { kind: 'persistence:crash-before-commit', transaction: value };
      case 'persistence:crash-after-commit':
        return { kind: 'persistence:crash-after-commit', transaction: value };
      case 'materializer:crash-at-commit':
        return { kind: 'materializer:crash-at-commit', commit: value };
      case 'shapes:snapshot-page-delay':
        return { kind: 'shapes:snapshot-page-delay', ms: value };
      case 'fleet:take-delay':
        return { kind: 'fleet:take-delay', ms: value };
      default:
        return { kind: 'persistence:write-delay', ms: value };
    }
  }
  return {
    problem: `STRATA_TEST_FAULT: unknown fault ${JSON.stringify(text)} (known: processing:crash-at-start, persistence:crash-at-start, persistence:crash-before-commit:N, persistence:crash-after-commit:N, persistence:write-delay:MS, materializer:crash-at-commit:N, shapes:snapshot-page-delay:MS, fleet:take-delay:MS)`,
  };
}

/** Thrown inside a transaction to abandon it; the actor then ends its thread outside the SQL code. */
export class InjectedCrash extends Error {
  override readonly name = 'InjectedCrash';
}
