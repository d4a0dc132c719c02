/* The recovery ledger: one row per failed migration job, claimed with a lease
 * before any Novita call, changed only by its lease owner. */

#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/log.h"
#include "nrd/util.h"

static const char *const row_state_names[NRD_ROW_STATE_COUNT] = {
  [NRD_ROW_PENDING] = "pending",           [NRD_ROW_DELETING] = "deleting",
  [NRD_ROW_DELETED] = "deleted",           [NRD_ROW_CREATING] = "creating",
  [NRD_ROW_CREATED] = "created",           [NRD_ROW_FAILED] = "failed",
  [NRD_ROW_ABANDONED] = "abandoned",       [NRD_ROW_RUNNING] = "running",
  [NRD_ROW_START_FAILED] = "start_failed",
};

const char *nrd_row_state_name(enum nrd_row_state s)
{
  return NRD_ENUM_NAME(row_state_names, s);
}

bool nrd_row_state_parse(const char *s, enum nrd_row_state *out)
{
  if (!s)
    return false;
  for (int i = 0; i < NRD_ROW_STATE_COUNT; i++) {
    if (strcmp(s, row_state_names[i]) == 0) {
      *out = (enum nrd_row_state)i;
      return true;
    }
  }
  return false;
}

bool nrd_row_state_is_open(enum nrd_row_state s)
{
  return s >= NRD_ROW_PENDING && s <= NRD_ROW_CREATING;
}

/* A row of STORE_LEDGER_COLS (the order of store_codec.h). */
static bool read_row(sqlite3_stmt *s, struct nrd_ledger_row *out)
{
  struct sqlite_row r;
  store_row_init(&r, s);
  return store_ledger_decode(&r.row, out);
}

static bool read_row_into(sqlite3_stmt *s, void *rows)
{
  struct store_rows *r = rows;
  if (read_row(s, store_rows_next(r)))
    return true;
  r->len--; /* the slot read_row refused holds nothing */
  return false;
}

int store_ledger_read_rows(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound,
                           struct nrd_ledger_row **rows, size_t *n)
{
  struct store_rows r = { .elem = sizeof **rows };
  int rc = store_each_row(st, s, bound, "ledger read", read_row_into, &r);
  if (rc != NRD_OK) {
    nrd_ledger_rows_free(r.arr, r.len);
    r.arr = NULL;
    r.len = 0;
  }
  *rows = r.arr;
  *n = r.len;
  return rc;
}

/* SQLite limits are signed: a size_t limit beyond INT64_MAX means no limit. */
static int64_t sql_limit(size_t limit)
{
  return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
}

static bool bind_insert(sqlite3_stmt *s, const struct nrd_ledger_new *r, int64_t now_ms)
{
  return store_bind_text(s, ":job", r->job_id) && store_bind_text(s, ":type", r->job_type) &&
         store_bind_text(s, ":instance", r->instance_id) &&
         store_bind_text(s, ":instance_name", r->instance_name) &&
         store_bind_text(s, ":new_name", r->new_name) &&
         store_bind_i64(s, ":name_ms", r->name_ms) && store_bind_i64(s, ":now", now_ms);
}

int nrd_sqlite_ledger_insert(struct nrd_sqlite *st, const char *job_id, const char *job_type,
                             const char *instance_id, const char *instance_name,
                             const char *new_name, int64_t name_ms, int64_t now_ms)
{
  const struct nrd_ledger_new r = {
    job_id, job_type, instance_id, instance_name, new_name, name_ms
  };
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_INSERT);
  return store_write_bound(st, s, s && bind_insert(s, &r, now_ms), "ledger insert", NULL);
}

struct insert_many_ctx {
  const struct nrd_ledger_new *rows;
  size_t n;
  int64_t now_ms;
  bool *inserted;
};

static int insert_many_fn(struct nrd_sqlite *st, void *arg)
{
  struct insert_many_ctx *ctx = arg;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_INSERT);
  int rc = s ? NRD_OK : NRD_ERR;
  for (size_t i = 0; i < ctx->n && rc == NRD_OK; i++) {
    int changes = 0;
    rc = store_step_bound(st, s, bind_insert(s, &ctx->rows[i], ctx->now_ms), "ledger insert",
                          &changes);
    if (rc == NRD_NONE)
      rc = NRD_OK; /* the row was there already */
    if (ctx->inserted)
      ctx->inserted[i] = changes > 0;
  }
  return rc;
}

int nrd_sqlite_ledger_insert_many(struct nrd_sqlite *st, const struct nrd_ledger_new *rows,
                                  size_t n, int64_t now_ms, bool *inserted)
{
  struct insert_many_ctx ctx = { rows, n, now_ms, inserted };
  if (n == 0)
    return NRD_OK;
  return store_tx(st, insert_many_fn, &ctx);
}

int nrd_sqlite_ledger_open(struct nrd_sqlite *st, const struct nrd_ledger_row *after, size_t limit,
                           struct nrd_ledger_row **rows, size_t *n)
{
  *rows = NULL;
  *n = 0;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_OPEN);
  /* No row: before every row (created_ms is a time, job_id at least ""). */
  bool bound = s && store_bind_text(s, ":after_job", after ? after->job_id : "") &&
               store_bind_i64(s, ":after_ms", after ? after->created_ms : INT64_MIN) &&
               store_bind_i64(s, ":limit", sql_limit(limit));
  return store_ledger_read_rows(st, s, bound, rows, n);
}

int nrd_sqlite_ledger_list(struct nrd_sqlite *st, int state, size_t limit,
                           struct nrd_ledger_row **rows, size_t *n)
{
  *rows = NULL;
  *n = 0;
  if (state >= NRD_ROW_STATE_COUNT)
    return NRD_ERR;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_LIST);
  const char *name = state < 0 ? NULL : nrd_row_state_name((enum nrd_row_state)state);
  bool bound =
      s && store_bind_text(s, ":state", name) && store_bind_i64(s, ":limit", sql_limit(limit));
  return store_ledger_read_rows(st, s, bound, rows, n);
}

static bool read_row_any(sqlite3_stmt *s, void *out)
{
  return read_row(s, out);
}

/* Reads one row by job id with the cached statement. */
static int get_row(struct nrd_sqlite *st, const char *job_id, struct nrd_ledger_row *out)
{
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_GET);
  bool bound = s && store_bind_text(s, ":job", job_id);
  return store_one_row(st, s, bound, "ledger get", read_row_any, out);
}

int nrd_sqlite_ledger_get(struct nrd_sqlite *st, const char *job_id, struct nrd_ledger_row *out)
{
  memset(out, 0, sizeof *out);
  return get_row(st, job_id, out);
}

static bool read_count(sqlite3_stmt *s, void *counts)
{
  enum nrd_row_state state;
  if (!nrd_row_state_parse((const char *)sqlite3_column_text(s, 0), &state)) {
    LOG_ERROR_AT(NRD_FAULT_DISK, "store: ledger row with unknown state");
    return false;
  }
  ((int64_t *)counts)[state] = sqlite3_column_int64(s, 1);
  return true;
}

int nrd_sqlite_ledger_count_by_state(struct nrd_sqlite *st, int64_t counts[NRD_ROW_STATE_COUNT])
{
  memset(counts, 0, sizeof(int64_t) * NRD_ROW_STATE_COUNT);
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_COUNT);
  return store_each_row(st, s, s != NULL, "ledger count", read_count, counts);
}

/* ---- claim ---- */

struct claim_ctx {
  const char *job_id, *owner, *run_id;
  int64_t now_ms, lease_ms;
  struct nrd_ledger_row *out;
};

static int claim_fn(struct nrd_sqlite *st, void *arg)
{
  struct claim_ctx *ctx = arg;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_CLAIM);
  bool bound = s && store_bind_text(s, ":owner", ctx->owner) &&
               store_bind_i64(s, ":lease_until", ctx->now_ms + ctx->lease_ms) &&
               store_bind_text(s, ":run", ctx->run_id) && store_bind_i64(s, ":now", ctx->now_ms) &&
               store_bind_text(s, ":job", ctx->job_id);
  int rc = store_step_bound(st, s, bound, "ledger claim", NULL);
  if (rc != NRD_OK || !ctx->out)
    return rc;
  nrd_ledger_row_cleanup(ctx->out); /* a retried transaction may have filled it */
  return get_row(st, ctx->job_id, ctx->out);
}

int nrd_sqlite_ledger_claim(struct nrd_sqlite *st, const char *job_id, const char *owner,
                            const char *run_id, int64_t now_ms, int64_t lease_ms,
                            struct nrd_ledger_row *out)
{
  struct claim_ctx ctx = { .job_id = job_id,
                           .owner = owner,
                           .run_id = run_id,
                           .now_ms = now_ms,
                           .lease_ms = lease_ms,
                           .out = out };
  if (out)
    memset(out, 0, sizeof *out);
  if (!owner || !*owner)
    return NRD_ERR;
  int rc = store_tx(st, claim_fn, &ctx);
  if (rc != NRD_OK && out)
    nrd_ledger_row_cleanup(out);
  return rc;
}

int nrd_sqlite_ledger_renew(struct nrd_sqlite *st, const char *job_id, const char *owner,
                            int64_t lease_until_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_RENEW);
  bool bound = s && store_bind_text(s, ":job", job_id) && store_bind_text(s, ":owner", owner) &&
               store_bind_i64(s, ":lease_until", lease_until_ms);
  return store_write_bound(st, s, bound, "ledger renew", NULL);
}

int nrd_sqlite_ledger_release(struct nrd_sqlite *st, const char *job_id, const char *owner)
{
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_RELEASE);
  bool bound = s && store_bind_text(s, ":job", job_id) && store_bind_text(s, ":owner", owner);
  return store_write_bound(st, s, bound, "ledger release", NULL);
}

/* ---- update by the owner ---- */

struct update_ctx {
  const char *job_id, *owner;
  const struct nrd_ledger_update *u;
  int64_t now_ms;
};

static int update_fn(struct nrd_sqlite *st, void *arg)
{
  const struct update_ctx *ctx = arg;
  const struct nrd_ledger_update *u = ctx->u;
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_UPDATE);
  bool bound = s && store_bind_text(s, ":state", nrd_row_state_name(u->state)) &&
               store_bind_text_opt(s, ":new_instance_id", u->new_instance_id) &&
               store_bind_text(s, ":error", u->last_error) &&
               store_bind_i64(s, ":delete_sent", u->set_delete_sent) &&
               store_bind_i64(s, ":clear_delete_sent", u->clear_delete_sent) &&
               store_bind_i64(s, ":create_sent", u->set_create_sent) &&
               store_bind_i64(s, ":adopted", u->set_adopted) &&
               store_bind_i64(s, ":release", u->release) &&
               store_bind_i64(s, ":now", ctx->now_ms) && store_bind_text(s, ":job", ctx->job_id) &&
               store_bind_text(s, ":owner", ctx->owner);
  return store_step_with_event(st, s, bound, "ledger update", u->event);
}

int nrd_sqlite_ledger_update(struct nrd_sqlite *st, const char *job_id, const char *owner,
                             const struct nrd_ledger_update *u, int64_t now_ms)
{
  if (!owner || !*owner || (unsigned)u->state >= NRD_ROW_STATE_COUNT)
    return NRD_ERR;
  struct update_ctx ctx = { .job_id = job_id, .owner = owner, .u = u, .now_ms = now_ms };
  return store_tx(st, update_fn, &ctx);
}

/* ---- operator control ---- */

int nrd_sqlite_ledger_retry(struct nrd_sqlite *st, const char *job_id, int64_t now_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_RETRY);
  bool bound = s && store_bind_text(s, ":job", job_id) && store_bind_i64(s, ":now", now_ms);
  return store_write_bound(st, s, bound, "ledger retry", NULL);
}

int nrd_sqlite_ledger_abandon(struct nrd_sqlite *st, const char *job_id, const char *reason,
                              int64_t now_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_LEDGER_ABANDON);
  bool bound = s && store_bind_text(s, ":job", job_id) && store_bind_text(s, ":reason", reason) &&
               store_bind_i64(s, ":now", now_ms);
  return store_write_bound(st, s, bound, "ledger abandon", NULL);
}
