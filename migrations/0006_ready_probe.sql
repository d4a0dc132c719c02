-- /ready's write probe (issue 16): one row rewritten at most once a second,
-- so readiness says whether the database can be written, not only read.
CREATE TABLE ready_probe (
  id    INTEGER PRIMARY KEY CHECK (id = 1),
  at_ms INTEGER NOT NULL
);
