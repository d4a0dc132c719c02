/* Following a replacement until it runs: the rows in created whose create
 * was accepted, their end (running or start_failed) with its event, and the
 * operator's retry of a start_failed row. */

#include "store_internal.h"

int nrd_sqlite_ledger_following(struct nrd_sqlite *st, int64_t accepted_before_ms,
                                const struct nrd_follow_cursor *after, size_t limit,
                                struct nrd_ledger_row **rows, size_t *n)
{
  *rows = NULL;
  *n = 0;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_FOLLOWING);
  bool bound = s && store_bind_i64(s, ":limit", (int64_t)limit) &&
               store_bind_i64(s, ":before", accepted_before_ms) &&
               store_bind_i64(s, ":after_ms", after ? after->accepted_ms : 0) &&
               store_bind_text_opt(s, ":after_job", after ? after->job_id : NULL);
  return store_ledger_read_rows(st, s, bound, rows, n);
}

struct started_ctx {
  const char *job_id;
  const struct nrd_ledger_started *u;
  int64_t now_ms;
};

static int started_fn(struct nrd_sqlite *st, void *arg)
{
  const struct started_ctx *ctx = arg;
  const struct nrd_ledger_started *u = ctx->u;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_STARTED);
  bool bound = s && store_bind_i64(s, ":running", u->running) &&
               store_bind_text_opt(s, ":se_state", u->error_state) &&
               store_bind_text_opt(s, ":se_message", u->error_message) &&
               store_bind_text_opt(s, ":reason", u->reason) &&
               store_bind_i64(s, ":now", ctx->now_ms) && store_bind_text(s, ":job", ctx->job_id);
  return store_step_with_event(st, s, bound, "ledger started", u->event);
}

int nrd_sqlite_ledger_started(struct nrd_sqlite *st, const char *job_id,
                              const struct nrd_ledger_started *u, int64_t now_ms)
{
  struct started_ctx ctx = { .job_id = job_id, .u = u, .now_ms = now_ms };
  return store_tx(st, started_fn, &ctx);
}

int nrd_sqlite_ledger_retry_start(struct nrd_sqlite *st, const char *job_id, const char *new_name,
                                  int64_t name_ms, int64_t now_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_RETRY_START);
  bool bound = s && store_bind_text(s, ":job", job_id) &&
               store_bind_text(s, ":new_name", new_name) &&
               store_bind_i64(s, ":name_ms", name_ms) && store_bind_i64(s, ":now", now_ms);
  return store_write_bound(st, s, bound, "ledger retry start", NULL);
}
