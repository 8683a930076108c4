// The materializer's figures travel with its pongs as flat numbers (an actor's report is a
// Record<string, number>): per-table ones under these key prefixes, then `<pipeline>.<Entity>`.
// The status board reads them back into `/status`'s `shapes.tables`.

export const TABLE_SHAPES = 'tableShapes:';
export const TABLE_LOG_MESSAGES = 'tableLogMessages:';
