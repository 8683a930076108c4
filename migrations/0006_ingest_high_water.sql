-- Hardening: the highest block number each ingest pipeline's log has ever held. A replacement
-- branch (a reorg pushed over the ingest API) must attach within maxReorgDepth of it, not only of
-- the current head: after a shorter replacement the head drops, but blocks processed without
-- history below the old head's threshold can still not be rolled back.
CREATE TABLE strata.ingest_high_water (
  pipeline text   PRIMARY KEY,
  number   bigint NOT NULL
);
INSERT INTO strata.ingest_high_water (pipeline, number)
  SELECT pipeline, max(number) FROM strata.ingest_blocks GROUP BY pipeline;
