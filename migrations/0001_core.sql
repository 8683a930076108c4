-- Core tables of Strata. Append-only: never edit or reorder a migration once released; add a new
-- file instead (the migrator refuses to start when an applied file's checksum changed).

-- One row per pipeline: how far the single writer has durably committed.
CREATE TABLE strata.pipelines (
  name                 text PRIMARY KEY,
  committed_checkpoint bigint NOT NULL DEFAULT 0,
  committed_block      bigint,
  committed_block_hash text,
  events_processed     bigint NOT NULL DEFAULT 0,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Checkpoint boundaries the writer committed: a row for the last checkpoint of each written
-- batch (the checkpoint id stamps every change made while processing that block).
CREATE TABLE strata.checkpoints (
  pipeline      text   NOT NULL REFERENCES strata.pipelines (name) ON DELETE CASCADE,
  checkpoint_id bigint NOT NULL,
  block_number  bigint NOT NULL,
  block_hash    text,
  event_count   integer NOT NULL,
  PRIMARY KEY (pipeline, checkpoint_id)
);
