-- PostgreSQL schema, equivalent to migrations/0001..0003 for SQLite.
-- schema_migrations is created by the migration runner itself. Times are
-- Unix epoch milliseconds (bigint) as in SQLite, except that leases are
-- compared with the database's clock: nrd_now_ms().

-- The database's clock in epoch milliseconds (the transaction's start).
CREATE FUNCTION nrd_now_ms() RETURNS bigint
  LANGUAGE sql STABLE AS $$ SELECT (extract(epoch FROM now()) * 1000)::bigint $$;

-- The text as jsonb, or NULL when it is not JSON (a stored run report).
CREATE FUNCTION nrd_try_jsonb(t text) RETURNS jsonb
  LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN t::jsonb;
EXCEPTION WHEN others THEN
  RETURN NULL;
END $$;

-- Last known configuration of every Novita instance we have listed.
-- Lists are JSON text; NULL means the list was never seen present.
CREATE TABLE snapshots (
  instance_id       text COLLATE "C" PRIMARY KEY,
  name              text,
  status            text,
  cluster_id        text,
  cluster_name      text,
  product_id        text,
  product_name      text,
  image_url         text,
  image_auth_id     text,
  command           text,
  gpu_num           text,
  rootfs_size       text,
  kind              text,
  billing_mode      text,
  ports_json        text,
  envs_json         text,
  mounts_json       text,
  raw_json          text,
  novita_created_at bigint,
  first_seen_ms     bigint NOT NULL,
  last_seen_ms      bigint NOT NULL,
  seen_run          text,
  config_updated_ms bigint
);

-- One recovery per failed Novita migration job. job_id sorts bytewise
-- (COLLATE "C"), as in SQLite, so the open rows' order does not depend on
-- the database's locale.
CREATE TABLE ledger (
  job_id          text COLLATE "C" PRIMARY KEY,
  job_type        text,
  instance_id     text NOT NULL,
  instance_name   text,
  state           text NOT NULL CHECK (state IN ('pending', 'deleting', 'deleted', 'creating',
                                                 'created', 'failed', 'abandoned')),
  new_name        text NOT NULL,
  name_ms         bigint NOT NULL,
  new_instance_id text,
  delete_sent     boolean NOT NULL DEFAULT false,
  create_sent     boolean NOT NULL DEFAULT false,
  adopted         boolean NOT NULL DEFAULT false,
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text,
  owner           text,
  lease_until_ms  bigint NOT NULL DEFAULT 0,  -- on the database's clock
  run_id          text,
  created_ms      bigint NOT NULL,
  updated_ms      bigint NOT NULL
);
CREATE INDEX ledger_state_created ON ledger (state, created_ms);
CREATE INDEX ledger_instance ON ledger (instance_id);
CREATE INDEX ledger_open_order ON ledger (created_ms, job_id)
  WHERE state IN ('pending', 'deleting', 'deleted', 'creating');

-- One record per run of check-failed. holder is the application_name of
-- the process that started it: a run whose holder has no session left was
-- left running by a dead process.
CREATE TABLE runs (
  run_id      text COLLATE "C" PRIMARY KEY,
  trigger     text NOT NULL,
  dry_run     boolean NOT NULL DEFAULT false,
  state       text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
  started_ms  bigint NOT NULL,
  finished_ms bigint,
  report_json text,
  holder      text
);
CREATE INDEX runs_state ON runs (state);

-- Webhook outbox, delivered in seq order, by one sender at a time: the
-- sender that claimed the oldest pending event (claimed_by, until
-- claim_until_ms on the database's clock).
CREATE TABLE events (
  seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id              text COLLATE "C" UNIQUE NOT NULL,
  type            text NOT NULL,
  body_json       text NOT NULL,
  created_ms      bigint NOT NULL,
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_ms bigint NOT NULL DEFAULT 0,
  last_error      text,
  claimed_by      text,
  claim_until_ms  bigint NOT NULL DEFAULT 0
);
CREATE INDEX events_state_seq ON events (state, seq);

-- Brakes that outlive a run ('account', 'retry_after'): see migrations/0003.
CREATE TABLE brakes (
  name     text PRIMARY KEY,
  reason   text,
  message  text,
  job_id   text,
  until_ms bigint NOT NULL DEFAULT 0,
  set_ms   bigint NOT NULL
);
