/* The operator console's read-only queries: recent runs with their counts,
 * the webhook backlog, finished recoveries per hour. */

#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

/* At most this many rows from one console query, whatever is asked. */
#define CONSOLE_MAX_ROWS 10000

/* Reads "[8,4,3,1,0]" (json_extract of five paths) into five counts; a
 * missing or non-integer item stays -1. */
static void read_counts(const char *text, int64_t *const counts[5])
{
  const char *p = text;
  for (int i = 0; i < 5; i++)
    *counts[i] = -1;
  if (!p || *p != '[')
    return;
  p++;
  for (int i = 0; i < 5 && *p; i++) {
    char *end = NULL;
    long long v = strtoll(p, &end, 10);
    if (end != p && (*end == ',' || *end == ']') && v >= 0)
      *counts[i] = v;
    p = strchr(p, ',');
    if (!p)
      break;
    p++;
  }
}

static bool read_run(sqlite3_stmt *s, void *rows)
{
  struct nrd_run_summary *r = store_rows_next(rows);
  if (!r)
    return true;
  int64_t *const counts[5] = { &r->total_checked, &r->failed_found, &r->recreated, &r->errors,
                               &r->deferred };
  store_shape_row(s, &store_run_summary_shape, r);
  read_counts((const char *)sqlite3_column_text(s, 6), counts);
  return true;
}

int nrd_sqlite_run_list(struct nrd_sqlite *st, size_t limit, struct nrd_run_summary **out,
                        size_t *n)
{
  *out = NULL;
  *n = 0;
  if (limit > CONSOLE_MAX_ROWS)
    limit = CONSOLE_MAX_ROWS;
  struct store_rows r = { .elem = sizeof **out, .max = limit }; /* LIMIT 0: no row */
  sqlite3_stmt *s = store_stmt(st, STMT_CONSOLE_RUNS);
  bool bound = s && store_bind_i64(s, ":limit", (int64_t)limit);
  int rc = store_each_row(st, s, bound, "run list", read_run, &r);
  if (rc != NRD_OK) {
    nrd_run_summaries_free(r.arr, r.len);
    return rc;
  }
  *out = r.arr;
  *n = r.len;
  return NRD_OK;
}

static bool read_event_count(sqlite3_stmt *s, void *counts)
{
  int64_t **c = counts; /* pending, delivered, dead */
  const char *state = (const char *)sqlite3_column_text(s, 0);
  int64_t v = sqlite3_column_int64(s, 1);
  if (state && !strcmp(state, "pending"))
    *c[0] = v;
  else if (state && !strcmp(state, "delivered"))
    *c[1] = v;
  else if (state && !strcmp(state, "dead"))
    *c[2] = v;
  return true;
}

int nrd_sqlite_event_count_by_state(struct nrd_sqlite *st, int64_t *pending, int64_t *delivered,
                                    int64_t *dead)
{
  int64_t *counts[3] = { pending, delivered, dead };
  *pending = *delivered = *dead = 0;
  sqlite3_stmt *s = store_stmt(st, STMT_CONSOLE_EVENT_COUNT);
  return store_each_row(st, s, s != NULL, "event count", read_event_count, counts);
}

static bool read_bucket(sqlite3_stmt *s, void *rows)
{
  struct nrd_hourly_bucket *e = store_rows_next(rows);
  if (!e)
    return true;
  return store_shape_row(s, &store_bucket_shape, e);
}

int nrd_sqlite_ledger_hourly(struct nrd_sqlite *st, int64_t since_ms,
                             struct nrd_hourly_bucket **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  struct store_rows r = { .elem = sizeof **out, .max = CONSOLE_MAX_ROWS };
  sqlite3_stmt *s = store_stmt(st, STMT_CONSOLE_HOURLY);
  bool bound = s && store_bind_i64(s, ":since", since_ms);
  int rc = store_each_row(st, s, bound, "ledger hourly", read_bucket, &r);
  if (rc != NRD_OK) {
    nrd_hourly_buckets_free(r.arr, r.len);
    return rc;
  }
  *out = r.arr;
  *n = r.len;
  return NRD_OK;
}
