-- Processing engine II: chain metadata per pipeline, staged by the processing side and written by
-- the single writer — folded into the next batch transaction, or flushed on a throttled idle path
-- when no batch flows — so it never races a batch write on this row.
ALTER TABLE strata.pipelines
  ADD COLUMN source_head_block bigint,
  ADD COLUMN processed_block   bigint,
  -- When the pipeline processed its first event, and when it first caught up with its source.
  ADD COLUMN first_event_at    timestamptz,
  ADD COLUMN ready_at          timestamptz,
  -- When the processing side staged the metadata last written.
  ADD COLUMN metadata_at       timestamptz;
