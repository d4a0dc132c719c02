-- PostgreSQL's equivalent of migrations/0004 and 0006 for SQLite.
--
-- Snapshots keep every field Novita lets a create set (issue 14):
-- entrypoint, the VPC (network.id), minCudaVersion and the image's tools
-- (JSON text, NULL when never seen present).
ALTER TABLE snapshots
  ADD COLUMN entrypoint       text,
  ADD COLUMN network_id       text,
  ADD COLUMN min_cuda_version text,
  ADD COLUMN tools_json       text;

-- The ledger follows the replacement until it runs: two more states,
-- 'running' and 'start_failed'. PostgreSQL changes the CHECK in place. New
-- columns: when the create was accepted, when the replacement was seen
-- running, and Novita's statusError of a replacement that did not start.
-- Rows created before this migration keep accepted_ms NULL: they are not
-- followed.
ALTER TABLE ledger DROP CONSTRAINT ledger_state_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_state_check
  CHECK (state IN ('pending', 'deleting', 'deleted', 'creating', 'created', 'failed',
                   'abandoned', 'running', 'start_failed'));
ALTER TABLE ledger
  ADD COLUMN accepted_ms          bigint,
  ADD COLUMN running_ms           bigint,
  ADD COLUMN status_error_state   text,
  ADD COLUMN status_error_message text;

-- /ready's write probe (issue 16): one row rewritten at most once a second,
-- so readiness says whether the database can be written, not only read.
CREATE TABLE ready_probe (
  id    integer PRIMARY KEY CHECK (id = 1),
  at_ms bigint NOT NULL
);
