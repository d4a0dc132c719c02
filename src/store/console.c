/* The operator console's read-only queries: recent runs with their counts,
 * the webhook backlog, finished recoveries per hour. */

#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

/* At most this many rows from one console query, whatever is asked. */
#define CONSOLE_MAX_ROWS 10000

void nrd_run_summaries_free(struct nrd_run_summary *runs, size_t n)
{
  if (!runs)
    return;
  for (size_t i = 0; i < n; i++) {
    free(runs[i].run_id);
    free(runs[i].trigger);
    free(runs[i].state);
  }
  free(runs);
}

void nrd_hourly_buckets_free(struct nrd_hourly_bucket *b, size_t n)
{
  if (!b)
    return;
  for (size_t i = 0; i < n; i++)
    free(b[i].state);
  free(b);
}

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

static void read_run(sqlite3_stmt *s, struct nrd_run_summary *r)
{
  int64_t *const counts[5] = { &r->total_checked, &r->failed_found, &r->recreated, &r->errors,
                               &r->deferred };
  r->run_id = store_col_text(s, 0);
  r->trigger = store_col_text(s, 1);
  r->state = store_col_text(s, 2);
  r->dry_run = sqlite3_column_int(s, 3) != 0;
  r->started_ms = sqlite3_column_int64(s, 4);
  r->finished_ms = sqlite3_column_int64(s, 5);
  read_counts((const char *)sqlite3_column_text(s, 6), counts);
}

int nrd_store_run_list(struct nrd_store *st, size_t limit, struct nrd_run_summary **out, size_t *n)
{
  struct nrd_run_summary *runs = NULL;
  size_t count = 0;
  int rc = NRD_ERR;

  *out = NULL;
  *n = 0;
  if (limit > CONSOLE_MAX_ROWS)
    limit = CONSOLE_MAX_ROWS;
  sqlite3_stmt *s = store_stmt(st, STMT_CONSOLE_RUNS);
  if (!s)
    return NRD_ERR;
  if (!store_bind_i64(s, ":limit", (int64_t)limit))
    goto out;
  runs = nrd_xcalloc(limit ? limit : 1, sizeof *runs);
  for (;;) {
    int src = sqlite3_step(s);
    if (src == SQLITE_DONE)
      break;
    if (src != SQLITE_ROW) {
      rc = store_fail(st, src, "run list");
      goto out;
    }
    if (count < limit)
      read_run(s, &runs[count++]);
  }
  rc = NRD_OK;
  *out = runs;
  *n = count;
  runs = NULL;
out:
  store_done(s);
  nrd_run_summaries_free(runs, count);
  return rc;
}

int nrd_store_event_count_by_state(struct nrd_store *st, int64_t *pending, int64_t *delivered,
                                   int64_t *dead)
{
  int rc = NRD_ERR;

  *pending = *delivered = *dead = 0;
  sqlite3_stmt *s = store_stmt(st, STMT_CONSOLE_EVENT_COUNT);
  if (!s)
    return NRD_ERR;
  for (;;) {
    int src = sqlite3_step(s);
    if (src == SQLITE_DONE) {
      rc = NRD_OK;
      break;
    }
    if (src != SQLITE_ROW) {
      rc = store_fail(st, src, "event count");
      break;
    }
    const char *state = (const char *)sqlite3_column_text(s, 0);
    int64_t v = sqlite3_column_int64(s, 1);
    if (state && !strcmp(state, "pending"))
      *pending = v;
    else if (state && !strcmp(state, "delivered"))
      *delivered = v;
    else if (state && !strcmp(state, "dead"))
      *dead = v;
  }
  store_done(s);
  return rc;
}

int nrd_store_ledger_hourly(struct nrd_store *st, int64_t since_ms, struct nrd_hourly_bucket **out,
                            size_t *n)
{
  struct nrd_hourly_bucket *b = NULL;
  size_t count = 0, cap = 0;
  int rc = NRD_ERR;

  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = store_stmt(st, STMT_CONSOLE_HOURLY);
  if (!s)
    return NRD_ERR;
  if (!store_bind_i64(s, ":since", since_ms))
    goto out;
  for (;;) {
    int src = sqlite3_step(s);
    if (src == SQLITE_DONE)
      break;
    if (src != SQLITE_ROW) {
      rc = store_fail(st, src, "ledger hourly");
      goto out;
    }
    if (count == CONSOLE_MAX_ROWS)
      continue;
    if (count == cap) {
      cap = cap ? cap * 2 : 64;
      b = nrd_xrealloc(b, cap * sizeof *b);
    }
    struct nrd_hourly_bucket *e = &b[count++];
    e->hour_ms = sqlite3_column_int64(s, 0);
    e->state = store_col_text(s, 1);
    e->adopted = sqlite3_column_int(s, 2) != 0;
    e->count = sqlite3_column_int64(s, 3);
    e->ttr_sum_ms = sqlite3_column_int64(s, 4);
    e->ttr_max_ms = sqlite3_column_int64(s, 5);
  }
  rc = NRD_OK;
  *out = b;
  *n = count;
  b = NULL;
out:
  store_done(s);
  nrd_hourly_buckets_free(b, count);
  return rc;
}
