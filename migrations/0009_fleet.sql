-- Fleet: many processes on one Postgres. Each live process keeps a row here (a heartbeat with an
-- expiry in database time); each pipeline has one lease row whose epoch increases on every grant.
-- Every write transaction of a pipeline's writer locks its lease row FOR SHARE where the owner and
-- epoch are its own, just before COMMIT: a process paused past its lease finds nothing there and
-- rolls back, and a takeover waits for a write in flight to commit. Times are Postgres' now().
CREATE TABLE strata.fleet_processes (
  id            text PRIMARY KEY,
  host          text NOT NULL,
  pid           integer NOT NULL,
  version       text NOT NULL,
  url           text,
  -- The most pipelines this process takes (STRATA_MAX_PIPELINES), so every process computes the
  -- same spread.
  max_pipelines integer NOT NULL,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  -- Set by a process stopping on SIGTERM: it hands its pipelines over and takes no new ones.
  stopping      boolean NOT NULL DEFAULT false
);

CREATE TABLE strata.pipeline_leases (
  pipeline    text PRIMARY KEY,
  -- NULL: released (by a handover); otherwise the process holding it, until expires_at.
  owner       text,
  epoch       bigint NOT NULL DEFAULT 0,
  expires_at  timestamptz NOT NULL DEFAULT now(),
  acquired_at timestamptz,
  renewed_at  timestamptz
);
