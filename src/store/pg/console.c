/* The operator console's read-only queries on PostgreSQL. */

#include "pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

/* At most this many rows from one console query, whatever is asked. */
#define CONSOLE_MAX_ROWS 10000

/* A report's count: a non-negative integer, else -1 (absent, or a report
 * that is not JSON). */
static int64_t count_col(const PGresult *r, int row, int col)
{
  if (PQgetisnull(r, row, col))
    return -1;
  const char *s = PQgetvalue(r, row, col);
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  return end != s && *end == '\0' && v >= 0 ? v : -1;
}

static bool read_run(const PGresult *r, int i, void *run)
{
  struct nrd_run_summary *s = run;
  pg_shape_row(r, i, &store_run_summary_shape, s);
  s->total_checked = count_col(r, i, 6);
  s->failed_found = count_col(r, i, 7);
  s->recreated = count_col(r, i, 8);
  s->errors = count_col(r, i, 9);
  s->deferred = count_col(r, i, 10);
  return true;
}

int nrd_pg_run_list(struct nrd_pg *pg, size_t limit, struct nrd_run_summary **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  if (limit > CONSOLE_MAX_ROWS)
    limit = CONSOLE_MAX_ROWS;
  struct pg_params p = { 0 };
  pgp_i64(&p, (int64_t)limit);
  struct pg_rows rows = { .elem = sizeof **out };
  int rc = pg_read_rows(pg,
                        "SELECT run_id, trigger, state, dry_run, started_ms,"
                        " coalesce(finished_ms, 0), j->>'totalChecked', j->>'failedJobsFound',"
                        " j->>'instancesRecreated', j->>'errors', j->>'deferred'"
                        " FROM runs LEFT JOIN LATERAL (SELECT nrd_try_jsonb(report_json) AS j) x"
                        " ON true ORDER BY started_ms DESC, run_id DESC LIMIT $1",
                        &p, "run list", read_run, &rows);
  *out = rows.arr; /* read_run refuses no row */
  *n = rows.n;
  return rc;
}

static bool read_bucket(const PGresult *r, int i, void *bucket)
{
  pg_shape_row(r, i, &store_bucket_shape, bucket);
  return true;
}

int nrd_pg_ledger_hourly(struct nrd_pg *pg, int64_t since_ms, struct nrd_hourly_bucket **out,
                         size_t *n)
{
  *out = NULL;
  *n = 0;
  struct pg_params p = { 0 };
  pgp_i64(&p, since_ms);
  pgp_i64(&p, CONSOLE_MAX_ROWS);
  struct pg_rows rows = { .elem = sizeof **out };
  int rc =
      pg_read_rows(pg,
                   "SELECT updated_ms / 3600000 * 3600000 AS hour,"
                   " (CASE state WHEN 'running' THEN 'created' ELSE state END) COLLATE \"C\" AS st,"
                   " adopted, count(*),"
                   " sum(updated_ms - created_ms), max(updated_ms - created_ms)"
                   " FROM ledger WHERE updated_ms >= $1"
                   " AND state NOT IN (" PG_OPEN_STATES ")"
                   " GROUP BY hour, st, adopted ORDER BY hour, st, adopted LIMIT $2",
                   &p, "ledger hourly", read_bucket, &rows);
  *out = rows.arr; /* read_bucket refuses no row */
  *n = rows.n;
  return rc;
}
