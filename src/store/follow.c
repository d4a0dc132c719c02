/* Following a replacement until it runs: the rows in created whose create
 * was accepted, their end (running or start_failed) with its event, and the
 * operator's retry of a start_failed row. */

#include "store_internal.h"

int nrd_store_ledger_following(struct nrd_store *st, int64_t accepted_before_ms, size_t limit,
                               struct nrd_ledger_row **rows, size_t *n)
{
  *rows = NULL;
  *n = 0;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_FOLLOWING);
  if (!s)
    return NRD_ERR;
  if (!store_bind_i64(s, ":limit", (int64_t)limit) ||
      !store_bind_i64(s, ":before", accepted_before_ms)) {
    store_done(s);
    return NRD_ERR;
  }
  int rc = store_ledger_read_rows(st, s, rows, n);
  store_done(s);
  return rc;
}

struct started_ctx {
  const char *job_id;
  const struct nrd_ledger_started *u;
  int64_t now_ms;
};

static int started_fn(struct nrd_store *st, void *arg)
{
  const struct started_ctx *ctx = arg;
  const struct nrd_ledger_started *u = ctx->u;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_STARTED);
  if (!s)
    return NRD_ERR;
  int changes = 0, rc = NRD_ERR;
  if (store_bind_i64(s, ":running", u->running) &&
      store_bind_text_opt(s, ":se_state", u->error_state) &&
      store_bind_text_opt(s, ":se_message", u->error_message) &&
      store_bind_text_opt(s, ":reason", u->reason) && store_bind_i64(s, ":now", ctx->now_ms) &&
      store_bind_text(s, ":job", ctx->job_id))
    rc = store_step_write(st, s, "ledger started", &changes);
  store_done(s);
  if (rc != NRD_OK)
    return rc;
  if (changes == 0)
    return NRD_NONE;
  if (!u->event)
    return NRD_OK;
  rc = store_event_insert_in_tx(st, u->event);
  return rc == NRD_NONE ? NRD_OK : rc;
}

int nrd_store_ledger_started(struct nrd_store *st, const char *job_id,
                             const struct nrd_ledger_started *u, int64_t now_ms)
{
  struct started_ctx ctx = { .job_id = job_id, .u = u, .now_ms = now_ms };
  return store_tx(st, started_fn, &ctx);
}

int nrd_store_ledger_retry_start(struct nrd_store *st, const char *job_id, const char *new_name,
                                 int64_t name_ms, int64_t now_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_RETRY_START);
  if (!s)
    return NRD_ERR;
  if (!(store_bind_text(s, ":job", job_id) && store_bind_text(s, ":new_name", new_name) &&
        store_bind_i64(s, ":name_ms", name_ms) && store_bind_i64(s, ":now", now_ms))) {
    store_done(s);
    return NRD_ERR;
  }
  return store_write_one(st, s, "ledger retry start", NULL);
}
