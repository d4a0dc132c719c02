/* Following a replacement until it runs, on PostgreSQL: the rows in created
 * whose create was accepted, their end (running or start_failed) with its
 * event, and the operator's retry of a start_failed row (as
 * src/store/sqlite/follow.c for SQLite; a lease is compared with the database's
 * clock). */

#include "pg_internal.h"

int nrd_pg_ledger_following(struct nrd_pg *pg, int64_t accepted_before_ms,
                            const struct nrd_follow_cursor *after, size_t limit,
                            struct nrd_ledger_row **rows, size_t *n)
{
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_I64(accepted_before_ms),
            PG_I64(limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit),
            PG_I64(after ? after->accepted_ms : 0), PG_TEXT_OPT(after ? after->job_id : NULL));
  return pg_ledger_query_rows(pg,
                              "SELECT " PG_LEDGER_COLS " FROM ledger WHERE state = 'created'"
                              " AND accepted_ms IS NOT NULL AND new_instance_id IS NOT NULL"
                              " AND ($1::bigint = 0 OR accepted_ms < $1::bigint)"
                              " AND ($4::text IS NULL OR (accepted_ms, job_id) > ($3::bigint, $4))"
                              " ORDER BY accepted_ms, job_id LIMIT $2",
                              &p, rows, n, "ledger following");
}

int nrd_pg_ledger_started(struct nrd_pg *pg, const char *job_id, const struct nrd_ledger_started *u,
                          int64_t now_ms)
{
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_BOOL(u->running), PG_TEXT_OPT(u->error_state), PG_TEXT_OPT(u->error_message),
            PG_TEXT_OPT(u->reason), PG_I64(now_ms), PG_TEXT(job_id));
  return pg_tx_write_with_event(
      pg,
      "UPDATE ledger SET"
      " state = CASE WHEN $1::boolean THEN 'running' ELSE 'start_failed' END,"
      " running_ms = CASE WHEN $1::boolean THEN $5::bigint ELSE running_ms END,"
      " status_error_state = $2, status_error_message = $3,"
      " last_error = coalesce($4, last_error), updated_ms = $5"
      " WHERE job_id = $6 AND state = 'created'"
      " AND (owner IS NULL OR lease_until_ms < nrd_now_ms())",
      &p, "ledger started", u->event);
}

int nrd_pg_ledger_retry_start(struct nrd_pg *pg, const char *job_id, const char *new_name,
                              int64_t name_ms, int64_t now_ms)
{
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_TEXT(job_id), PG_TEXT(new_name), PG_I64(name_ms), PG_I64(now_ms));
  return pg_write(pg,
                  "UPDATE ledger SET state = 'deleted', new_name = $2, name_ms = $3,"
                  " new_instance_id = NULL, create_sent = false, adopted = false,"
                  " accepted_ms = NULL, running_ms = NULL, status_error_state = NULL,"
                  " status_error_message = NULL, owner = NULL, lease_until_ms = 0,"
                  " updated_ms = $4 WHERE job_id = $1 AND state = 'start_failed'",
                  &p, "ledger retry start", NULL);
}
