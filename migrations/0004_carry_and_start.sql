-- The replacement is the same instance, and it runs (issue 14).
--
-- Snapshots keep every field Novita lets a create set: entrypoint, the VPC
-- (network.id), minCudaVersion and the image's tools (JSON text, NULL when
-- never seen present). A local volume's mount point is in mounts_json.
ALTER TABLE snapshots ADD COLUMN entrypoint TEXT;
ALTER TABLE snapshots ADD COLUMN network_id TEXT;
ALTER TABLE snapshots ADD COLUMN min_cuda_version TEXT;
ALTER TABLE snapshots ADD COLUMN tools_json TEXT;

-- The ledger follows the replacement until it runs: two more states,
-- 'running' and 'start_failed'. SQLite cannot change a CHECK in place, so the
-- table is rebuilt (this file runs in one transaction: a failure leaves the
-- old table as it was). New columns: when the create was accepted, when the
-- replacement was seen running, and Novita's statusError of a replacement
-- that did not start. Rows created before this migration keep accepted_ms
-- NULL: they are not followed (their replacements may have been stopped by
-- hand since).
CREATE TABLE ledger_new (
  job_id          TEXT PRIMARY KEY,
  job_type        TEXT,
  instance_id     TEXT NOT NULL,
  instance_name   TEXT,
  state           TEXT NOT NULL CHECK (state IN ('pending', 'deleting', 'deleted', 'creating',
                                                 'created', 'failed', 'abandoned',
                                                 'running', 'start_failed')),
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
  updated_ms      INTEGER NOT NULL,
  accepted_ms     INTEGER,
  running_ms      INTEGER,
  status_error_state   TEXT,
  status_error_message TEXT
);
INSERT INTO ledger_new (job_id, job_type, instance_id, instance_name, state, new_name, name_ms,
                        new_instance_id, delete_sent, create_sent, adopted, attempts,
                        last_error, owner, lease_until_ms, run_id, created_ms, updated_ms)
  SELECT job_id, job_type, instance_id, instance_name, state, new_name, name_ms,
         new_instance_id, delete_sent, create_sent, adopted, attempts, last_error, owner,
         lease_until_ms, run_id, created_ms, updated_ms
  FROM ledger;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
CREATE INDEX ledger_state_created ON ledger (state, created_ms);
CREATE INDEX ledger_instance ON ledger (instance_id);
CREATE INDEX ledger_open_order ON ledger (created_ms, job_id)
  WHERE state IN ('pending', 'deleting', 'deleted', 'creating');
