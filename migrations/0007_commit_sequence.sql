-- Shapes I: a per-pipeline count of committed transactions (writes and reorg rollbacks). Live
-- shapes' log offsets are `<commit sequence>_<op>`: unlike the committed checkpoint, which a
-- rollback lowers and the next writes reuse, it only grows, so an offset never names two states.
ALTER TABLE strata.pipelines ADD COLUMN commit_sequence bigint NOT NULL DEFAULT 0;
