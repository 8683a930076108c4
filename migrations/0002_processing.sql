-- Processing engine I: the pipeline fingerprint (schema + source identity) checked on resume, and
-- the durable ingest log that `POST /v1/pipelines/:name/events` appends to.

ALTER TABLE strata.pipelines
  ADD COLUMN fingerprint_hash text,
  ADD COLUMN fingerprint      jsonb,
  -- Secondary indexes are built once the pipeline first catches up (deferred during backfill).
  ADD COLUMN indexes_ready    boolean NOT NULL DEFAULT false;

-- Blocks pushed through the ingest API, per pipeline, in strictly increasing number order. Kept
-- after processing: they are the pipeline's source of truth (a reset re-processes them).
CREATE TABLE strata.ingest_blocks (
  pipeline    text   NOT NULL,
  number      bigint NOT NULL,
  hash        text,
  parent_hash text,
  timestamp   bigint NOT NULL,
  events      jsonb  NOT NULL,
  stored_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pipeline, number)
);
