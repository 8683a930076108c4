-- Processing engine II: reorgs and effects.

-- Inside the reorg threshold the writer records every block (not only each batch's last) with
-- its hash, so a rollback can find the common ancestor and stops at blocks written with history.
ALTER TABLE strata.checkpoints
  ADD COLUMN history boolean NOT NULL DEFAULT false;

-- Effect outputs with `cache: true`, shared by every pipeline and process: an effect is a pure
-- function of its input, so its cache does not depend on the chain (a reorg keeps it).
-- `output` is re-validated against the effect's current output schema when loaded.
CREATE TABLE strata.effect_cache (
  effect     text  NOT NULL,
  input_key  text  NOT NULL,
  output     jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (effect, input_key)
);
