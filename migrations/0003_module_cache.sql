-- The module cache's L2: transpiled modules shared by every process of a fleet. UNLOGGED: it is a
-- cache (lost on a Postgres crash, never replicated), rebuilt by transpiling again.
-- `generation` is the fencing token: a writer upserts only over a row whose generation is not
-- newer than the one it captured before transpiling; invalidation never deletes, it tombstones
-- (body NULL) and bumps the generation, so a slow writer cannot resurrect stale bytes.
CREATE UNLOGGED TABLE strata.module_transpile_cache (
  realm_url          text   NOT NULL,
  canonical_path     text   NOT NULL,
  source_hash        text,
  transpiler_version text,
  body               text,
  source_map         text,
  generation         bigint NOT NULL DEFAULT 0,
  created_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (realm_url, canonical_path)
);

-- A bulk wipe of a realm fences every path, including paths that have no row yet: writers
-- compare against max(row generation, the realm's wipe generation).
CREATE UNLOGGED TABLE strata.module_cache_realms (
  realm_url  text PRIMARY KEY,
  generation bigint NOT NULL DEFAULT 0
);
