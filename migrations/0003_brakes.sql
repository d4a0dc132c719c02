-- Brakes that outlive a run (issue: never delete what cannot be recreated).
-- 'account': a create was refused for an account-wide reason (reason,
-- message, the refused row's job_id): no delete is sent until a probe's
-- create succeeds. 'retry_after': Novita's Retry-After, a not-before time
-- (until_ms, wall clock) for every call, carried over to the next run.
CREATE TABLE brakes (
  name     TEXT PRIMARY KEY,
  reason   TEXT,
  message  TEXT,
  job_id   TEXT,
  until_ms INTEGER NOT NULL DEFAULT 0,
  set_ms   INTEGER NOT NULL
);
