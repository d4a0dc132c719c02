/* Run records and retention. */

#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

int nrd_sqlite_run_insert(struct nrd_sqlite *st, const char *run_id, const char *trigger,
                          bool dry_run, int64_t started_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_RUN_INSERT);
  bool bound = s && store_bind_text(s, ":run", run_id) && store_bind_text(s, ":trigger", trigger) &&
               store_bind_i64(s, ":dry_run", dry_run) && store_bind_i64(s, ":started", started_ms);
  return store_write_bound(st, s, bound, "run insert", NULL);
}

int nrd_sqlite_run_finish(struct nrd_sqlite *st, const char *run_id, const char *state,
                          const char *report_json, int64_t finished_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_RUN_FINISH);
  /* The report is bound without a copy (it can be a MB; it outlives the
   * write, retries included). */
  bool bound = s && store_bind_text(s, ":run", run_id) && store_bind_text(s, ":state", state) &&
               store_bind_text_static(s, ":report", report_json) &&
               store_bind_i64(s, ":finished", finished_ms);
  return store_write_bound(st, s, bound, "run finish", NULL);
}

int nrd_sqlite_run_get(struct nrd_sqlite *st, const char *run_id, struct nrd_run_record *out)
{
  return store_get_shaped(st, STMT_RUN_GET, ":run", run_id, "run get", &store_run_record_shape, out,
                          sizeof *out);
}

int nrd_sqlite_run_fail_stale(struct nrd_sqlite *st, int64_t now_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_RUN_FAIL_STALE);
  bool bound = s && store_bind_i64(s, ":now", now_ms);
  int rc = store_write_bound(st, s, bound, "run fail stale", NULL);
  return rc == NRD_NONE ? NRD_OK : rc;
}

int nrd_sqlite_run_holding_lock(struct nrd_sqlite *st, const char *lock_name,
                                struct nrd_run_record *out)
{
  (void)st;
  (void)lock_name;
  memset(out, 0, sizeof *out);
  return NRD_NONE; /* one host: no run lock is shared (nrd_store_leader_try) */
}

struct prune_ctx {
  int64_t cutoff_ms;
  int64_t deleted;
};

static int prune_fn(struct nrd_sqlite *st, void *arg)
{
  static const enum store_stmt which[] = { STMT_PRUNE_RUNS, STMT_PRUNE_LEDGER, STMT_PRUNE_EVENTS };
  struct prune_ctx *ctx = arg;
  ctx->deleted = 0;
  for (size_t i = 0; i < sizeof which / sizeof which[0]; i++) {
    sqlite3_stmt *s = store_stmt(st, which[i]);
    int changes = 0;
    int rc = store_step_bound(st, s, s && store_bind_i64(s, ":cutoff", ctx->cutoff_ms), "prune",
                              &changes);
    if (rc != NRD_OK && rc != NRD_NONE)
      return rc;
    ctx->deleted += changes;
  }
  return NRD_OK;
}

int nrd_sqlite_prune(struct nrd_sqlite *st, int64_t cutoff_ms, int64_t *deleted)
{
  struct prune_ctx ctx = { .cutoff_ms = cutoff_ms, .deleted = 0 };
  int rc = store_tx(st, prune_fn, &ctx);
  if (deleted)
    *deleted = rc == NRD_OK ? ctx.deleted : 0;
  return rc;
}
