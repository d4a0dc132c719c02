-- Initial schema. schema_migrations is created by the migration runner itself.

-- Last known configuration of every Novita instance we have listed.
-- Lists are JSON text; NULL means the list was never seen present.
CREATE TABLE snapshots (
  instance_id       TEXT PRIMARY KEY,
  name              TEXT,
  status            TEXT,
  cluster_id        TEXT,
  cluster_name      TEXT,
  product_id        TEXT,
  product_name      TEXT,
  image_url         TEXT,
  image_auth_id     TEXT,
  command           TEXT,
  gpu_num           TEXT,
  rootfs_size       TEXT,
  kind              TEXT,
  billing_mode      TEXT,
  ports_json        TEXT,
  envs_json         TEXT,
  mounts_json       TEXT,
  raw_json          TEXT,
  novita_created_at INTEGER,
  first_seen_ms     INTEGER NOT NULL,
  last_seen_ms      INTEGER NOT NULL,
  seen_run          TEXT,
  config_updated_ms INTEGER
);

-- One recovery per failed Novita migration job.
CREATE TABLE ledger (
  job_id          TEXT PRIMARY KEY,
  job_type        TEXT,
  instance_id     TEXT NOT NULL,
  instance_name   TEXT,
  state           TEXT NOT NULL CHECK (state IN ('pending', 'deleting', 'deleted', 'creating',
                                                 'created', 'failed', 'abandoned')),
  new_name        TEXT NOT NULL,
  name_ms         INTEGER NOT NULL,
  new_instance_id TEXT,
  delete_sent     INTEGER NOT NULL DEFAULT 0,
  create_sent     INTEGER NOT NULL DEFAULT 0,
  adopted         INTEGER NOT NULL DEFAULT 0,
  attempts        INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT,
  owner           TEXT,
  lease_until_ms  INTEGER NOT NULL DEFAULT 0,
  run_id          TEXT,
  created_ms      INTEGER NOT NULL,
  updated_ms      INTEGER NOT NULL
);
CREATE INDEX ledger_state_created ON ledger (state, created_ms);
CREATE INDEX ledger_instance ON ledger (instance_id);

-- One record per run of check-failed.
CREATE TABLE runs (
  run_id      TEXT PRIMARY KEY,
  trigger     TEXT NOT NULL,
  dry_run     INTEGER NOT NULL DEFAULT 0,
  state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
  started_ms  INTEGER NOT NULL,
  finished_ms INTEGER,
  report_json TEXT
);
CREATE INDEX runs_state ON runs (state);

-- Webhook outbox, delivered in seq order.
CREATE TABLE events (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  id              TEXT UNIQUE NOT NULL,
  type            TEXT NOT NULL,
  body_json       TEXT NOT NULL,
  created_ms      INTEGER NOT NULL,
  state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT
);
CREATE INDEX events_state_seq ON events (state, seq);
