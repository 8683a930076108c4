-- Shapes I: live shapes survive a restart. A shape's definition and handle are kept here, and
-- every committed transaction's captured changes (the fragments the materializer gets live) are
-- appended to strata.shape_log inside the writer's own transaction: a restarted materializer — or
-- any process of a fleet — rebuilds each shape's log from its start, with the same offsets.
-- Deleting a pipeline's row (`strata reset`) drops its shapes and log with it.
CREATE TABLE strata.shapes (
  handle         text PRIMARY KEY,
  pipeline       text NOT NULL REFERENCES strata.pipelines (name) ON DELETE CASCADE,
  entity         text NOT NULL,
  -- The request's definition: table, where, params, columns, replica.
  definition     jsonb NOT NULL,
  -- The log holds every transaction after this commit sequence (its snapshot, everything up to it).
  start_sequence bigint NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shapes_pipeline ON strata.shapes (pipeline);

CREATE TABLE strata.shape_log (
  pipeline  text NOT NULL REFERENCES strata.pipelines (name) ON DELETE CASCADE,
  sequence  bigint NOT NULL,
  entity    text NOT NULL,
  fragment  integer NOT NULL,
  -- JSON array of {before, after}: rows as Postgres text, null for an insert's before or a delete's after.
  changes   text NOT NULL,
  PRIMARY KEY (pipeline, sequence, entity, fragment)
);

-- Transactions up to this commit sequence were compacted out of strata.shape_log: a shape whose
-- log started before it is rotated (its clients refetch).
ALTER TABLE strata.pipelines ADD COLUMN shape_log_floor bigint NOT NULL DEFAULT 0;
