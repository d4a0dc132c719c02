-- The recovery reads the open rows in batches, oldest first, each batch
-- after the last row read. In that order, this index makes each batch a
-- range read; without it every batch scanned and sorted all open rows (5000
-- rows read in 157 batches: 785 000 rows visited).
CREATE INDEX ledger_open_order ON ledger (created_ms, job_id)
  WHERE state IN ('pending', 'deleting', 'deleted', 'creating');
