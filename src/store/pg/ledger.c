/* The recovery ledger on PostgreSQL: rows claimed with FOR UPDATE SKIP
 * LOCKED for a lease on the database's clock, changed only by their owner. */

#include "pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/log.h"
#include "nrd/util.h"

/* A row of PG_LEDGER_COLS (the order of store_codec.h). */
bool pg_ledger_read_row(const PGresult *r, int i, void *row)
{
  struct pg_row pr;
  pg_row_init(&pr, r, i);
  return store_ledger_decode(&pr.row, row);
}

int pg_ledger_query_rows(struct nrd_pg *pg, const char *sql, const struct pg_params *p,
                         struct nrd_ledger_row **rows, size_t *n, const char *what)
{
  struct pg_rows got = { .elem = sizeof **rows };
  int rc = pg_read_rows(pg, sql, p, what, pg_ledger_read_row, &got);
  if (rc != NRD_OK) {
    nrd_ledger_rows_free(got.arr, got.n);
    got = (struct pg_rows){ 0 };
  }
  *rows = got.arr;
  *n = got.n;
  return rc;
}

/* One row (or none: NRD_NONE) into out, which may be NULL. */
static int query_one(struct nrd_pg *pg, const char *sql, const struct pg_params *p,
                     struct nrd_ledger_row *out, const char *what)
{
  struct nrd_ledger_row unused; /* a row nobody asked for is still checked */
  int rc = pg_one_row(pg, sql, p, what, pg_ledger_read_row, out ? out : &unused);
  if (!out && rc == NRD_OK)
    nrd_ledger_row_cleanup(&unused);
  return rc;
}

static int64_t sql_limit(size_t limit)
{
  return limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
}

static const char sql_insert[] =
    "INSERT INTO ledger (job_id, job_type, instance_id, instance_name, state, new_name, name_ms,"
    " created_ms, updated_ms) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7)"
    " ON CONFLICT (job_id) DO NOTHING";

static void insert_params(struct pg_params *p, const struct nrd_ledger_new *r, int64_t now_ms)
{
  pgp_text(p, r->job_id);
  pgp_text(p, r->job_type);
  pgp_text(p, r->instance_id);
  pgp_text(p, r->instance_name);
  pgp_text(p, r->new_name);
  pgp_i64(p, r->name_ms);
  pgp_i64(p, now_ms);
}

int nrd_pg_ledger_insert(struct nrd_pg *pg, const char *job_id, const char *job_type,
                         const char *instance_id, const char *instance_name, const char *new_name,
                         int64_t name_ms, int64_t now_ms)
{
  const struct nrd_ledger_new r = {
    job_id, job_type, instance_id, instance_name, new_name, name_ms
  };
  struct pg_params p = { 0 };
  insert_params(&p, &r, now_ms);
  return pg_write(pg, sql_insert, &p, "ledger insert", NULL);
}

/* Rows per INSERT of nrd_pg_ledger_insert_many: 7 parameters each, far
 * below PostgreSQL's 65535. */
#define INSERT_BATCH 500

struct insert_many_ctx {
  const struct nrd_ledger_new *rows;
  size_t n;
  int64_t now_ms;
  bool *inserted;
};

/* Marks inserted[i] for the rows of [from, to) whose job_id r returned: the
 * first of equal ids in the batch is the one inserted. */
static void mark_inserted(const struct insert_many_ctx *ctx, size_t from, size_t to,
                          const PGresult *r)
{
  for (size_t i = from; i < to; i++)
    ctx->inserted[i] = false;
  for (int k = 0; k < PQntuples(r); k++) {
    const char *id = PQgetvalue(r, k, 0);
    size_t i = from;
    while (i < to && (ctx->inserted[i] || strcmp(ctx->rows[i].job_id, id) != 0))
      i++;
    if (i < to)
      ctx->inserted[i] = true;
  }
}

/* One multi-row INSERT of rows [from, to): the SQL text holds placeholders
 * only, every value is a parameter. */
static int insert_batch(struct nrd_pg *pg, const struct insert_many_ctx *ctx, size_t from,
                        size_t to)
{
  size_t n = to - from;
  const char **vals = nrd_xcalloc(n * 7, sizeof *vals);
  char(*nums)[2][24] = nrd_xcalloc(n, sizeof *nums);
  struct nrd_buf sql;
  nrd_buf_init(&sql);
  nrd_buf_puts(&sql, "INSERT INTO ledger (job_id, job_type, instance_id, instance_name, state,"
                     " new_name, name_ms, created_ms, updated_ms) VALUES ");
  for (size_t i = 0; i < n; i++) {
    const struct nrd_ledger_new *row = &ctx->rows[from + i];
    size_t b = i * 7;
    nrd_buf_printf(&sql,
                   "%s($%zu, $%zu, $%zu, $%zu, 'pending', $%zu, $%zu::bigint,"
                   " $%zu::bigint, $%zu::bigint)",
                   i ? ", " : "", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 7);
    snprintf(nums[i][0], sizeof nums[i][0], "%lld", (long long)row->name_ms);
    snprintf(nums[i][1], sizeof nums[i][1], "%lld", (long long)ctx->now_ms);
    const char *v[7] = { row->job_id,   row->job_type, row->instance_id, row->instance_name,
                         row->new_name, nums[i][0],    nums[i][1] };
    memcpy(&vals[b], v, sizeof v);
  }
  nrd_buf_puts(&sql, " ON CONFLICT (job_id) DO NOTHING RETURNING job_id");
  int rc;
  PGresult *r = pg_exec_values(pg, sql.data, (int)(n * 7), vals, &rc, "ledger insert many");
  if (r && ctx->inserted)
    mark_inserted(ctx, from, to, r);
  PQclear(r);
  nrd_buf_cleanup(&sql);
  free(nums);
  free(vals);
  return rc;
}

static int insert_many_fn(struct nrd_pg *pg, void *arg)
{
  struct insert_many_ctx *ctx = arg;
  int rc = NRD_OK;
  for (size_t from = 0; from < ctx->n && rc == NRD_OK; from += INSERT_BATCH) {
    size_t to = ctx->n - from > INSERT_BATCH ? from + INSERT_BATCH : ctx->n;
    rc = insert_batch(pg, ctx, from, to);
  }
  return rc;
}

int nrd_pg_ledger_insert_many(struct nrd_pg *pg, const struct nrd_ledger_new *rows, size_t n,
                              int64_t now_ms, bool *inserted)
{
  struct insert_many_ctx ctx = { rows, n, now_ms, inserted };
  if (n == 0)
    return NRD_OK;
  return pg_tx(pg, insert_many_fn, &ctx);
}

int nrd_pg_ledger_open(struct nrd_pg *pg, const struct nrd_ledger_row *after, size_t limit,
                       struct nrd_ledger_row **rows, size_t *n)
{
  struct pg_params p = { 0 };
  pgp_i64(&p, after ? after->created_ms : INT64_MIN);
  pgp_text(&p, after ? after->job_id : "");
  pgp_i64(&p, sql_limit(limit));
  return pg_ledger_query_rows(pg,
                              "SELECT " PG_LEDGER_COLS
                              " FROM ledger WHERE state IN (" PG_OPEN_STATES ")"
                              " AND (created_ms, job_id) > ($1::bigint, $2::text COLLATE \"C\")"
                              " ORDER BY created_ms, job_id LIMIT $3",
                              &p, rows, n, "ledger open");
}

int nrd_pg_ledger_list(struct nrd_pg *pg, int state, size_t limit, struct nrd_ledger_row **rows,
                       size_t *n)
{
  *rows = NULL;
  *n = 0;
  if (state >= NRD_ROW_STATE_COUNT)
    return NRD_ERR;
  struct pg_params p = { 0 };
  pgp_text(&p, state < 0 ? NULL : nrd_row_state_name((enum nrd_row_state)state));
  pgp_i64(&p, sql_limit(limit));
  return pg_ledger_query_rows(pg,
                              "SELECT " PG_LEDGER_COLS
                              " FROM ledger WHERE $1::text IS NULL OR state = $1"
                              " ORDER BY created_ms DESC, job_id DESC LIMIT $2",
                              &p, rows, n, "ledger list");
}

int nrd_pg_ledger_get(struct nrd_pg *pg, const char *job_id, struct nrd_ledger_row *out)
{
  memset(out, 0, sizeof *out);
  struct pg_params p = { 0 };
  pgp_text(&p, job_id);
  return query_one(pg, "SELECT " PG_LEDGER_COLS " FROM ledger WHERE job_id = $1", &p, out,
                   "ledger get");
}

int nrd_pg_ledger_count_by_state(struct nrd_pg *pg, int64_t counts[NRD_ROW_STATE_COUNT])
{
  memset(counts, 0, sizeof(int64_t) * NRD_ROW_STATE_COUNT);
  int rc;
  PGresult *r =
      pg_exec(pg, "SELECT state, count(*) FROM ledger GROUP BY state", NULL, &rc, "ledger count");
  if (!r)
    return rc;
  for (int i = 0; i < PQntuples(r) && rc == NRD_OK; i++) {
    enum nrd_row_state state;
    if (!nrd_row_state_parse(PQgetvalue(r, i, 0), &state)) {
      LOG_ERROR_AT(NRD_FAULT_DISK, "store: ledger row with unknown state");
      rc = NRD_ERR;
    } else {
      counts[state] = pg_col_i64(r, i, 1);
    }
  }
  PQclear(r);
  return rc;
}

/* ---- claims ---- */

/* The claim's UPDATE of the rows the CTE c locked: $1 owner, $2 lease_ms,
 * $3 run, $4 now. */
#define CLAIM_UPDATE                                                                          \
  " UPDATE ledger l SET owner = $1, lease_until_ms = nrd_now_ms() + $2::bigint, run_id = $3," \
  " attempts = l.attempts + 1, updated_ms = $4 FROM c WHERE l.job_id = c.job_id"              \
  " RETURNING l.job_id, l.job_type, l.instance_id, l.instance_name, l.state, l.new_name,"     \
  " l.name_ms, l.new_instance_id, l.delete_sent, l.create_sent, l.adopted, l.attempts,"       \
  " l.last_error, l.owner, l.lease_until_ms, l.run_id, l.created_ms, l.updated_ms,"           \
  " coalesce(l.accepted_ms, 0), coalesce(l.running_ms, 0), l.status_error_state,"             \
  " l.status_error_message"

static void claim_params(struct pg_params *p, const char *owner, int64_t lease_ms,
                         const char *run_id, int64_t now_ms)
{
  pgp_text(p, owner);
  pgp_i64(p, lease_ms);
  pgp_text(p, run_id);
  pgp_i64(p, now_ms);
}

int nrd_pg_ledger_claim(struct nrd_pg *pg, const char *job_id, const char *owner,
                        const char *run_id, int64_t now_ms, int64_t lease_ms,
                        struct nrd_ledger_row *out)
{
  if (out)
    memset(out, 0, sizeof *out);
  if (!owner || !*owner)
    return NRD_ERR;
  struct pg_params p = { 0 };
  claim_params(&p, owner, lease_ms, run_id, now_ms);
  pgp_text(&p, job_id);
  return query_one(pg,
                   "WITH c AS (SELECT job_id FROM ledger WHERE job_id = $5"
                   " AND state IN (" PG_OPEN_STATES ")"
                   " AND (owner IS NULL OR owner = $1 OR lease_until_ms < nrd_now_ms())"
                   " FOR UPDATE SKIP LOCKED)" CLAIM_UPDATE,
                   &p, out, "ledger claim");
}

/* Ends the transaction a held claim left open: COMMIT (the claim and what
 * followed it are kept) or ROLLBACK (the claim is undone). A COMMIT whose
 * answer was lost (the session gone) is NRD_BUSY: its outcome is unknown. */
static int held_end(struct nrd_pg *pg, bool commit)
{
  int rc = NRD_OK;
  if (commit && PQtransactionStatus(pg->conn) == PQTRANS_INERROR) {
    LOG_ERROR_AT(NRD_FAULT_OURS, "store: postgresql claim aborted by a statement we did not check");
    commit = false;
    rc = NRD_ERR;
  }
  PGresult *r = NULL;
  if (commit) {
    r = pg_exec(pg, "COMMIT", NULL, &rc, "claim commit");
  } else if (PQstatus(pg->conn) == CONNECTION_OK) {
    int ignored;
    r = pg_exec(pg, "ROLLBACK", NULL, &ignored, "claim rollback");
  }
  PQclear(r);
  pg->in_tx = false;
  pg->claim_held = false;
  return rc;
}

int nrd_pg_ledger_claim_held(struct nrd_pg *pg, const char *job_id, const char *owner,
                             const char *run_id, int64_t now_ms, int64_t lease_ms,
                             struct nrd_ledger_row *out)
{
  if (pg->claim_held) /* one at a time: the one before is kept */
    held_end(pg, true);
  int rc;
  PGresult *r = pg_exec(pg, "BEGIN", NULL, &rc, "claim begin");
  PQclear(r);
  if (rc != NRD_OK) {
    if (out)
      memset(out, 0, sizeof *out);
    return rc;
  }
  pg->in_tx = true;
  rc = nrd_pg_ledger_claim(pg, job_id, owner, run_id, now_ms, lease_ms, out);
  if (rc == NRD_OK) {
    pg->claim_held = true;
    pg->held_lease_ms = lease_ms;
    pg->held_since_ms = nrd_mono_ms();
    return NRD_OK;
  }
  held_end(pg, false); /* nothing claimed */
  return rc;
}

int nrd_pg_ledger_claim_next(struct nrd_pg *pg, const char *owner, const char *run_id,
                             int64_t now_ms, int64_t lease_ms, struct nrd_ledger_row *out)
{
  if (out)
    memset(out, 0, sizeof *out);
  if (!owner || !*owner)
    return NRD_ERR;
  struct pg_params p = { 0 };
  claim_params(&p, owner, lease_ms, run_id, now_ms);
  return query_one(pg,
                   "WITH c AS (SELECT job_id FROM ledger WHERE state IN (" PG_OPEN_STATES ")"
                   " AND (owner IS NULL OR lease_until_ms < nrd_now_ms())"
                   " ORDER BY created_ms, job_id LIMIT 1 FOR UPDATE SKIP LOCKED)" CLAIM_UPDATE,
                   &p, out, "ledger claim next");
}

int nrd_pg_ledger_renew(struct nrd_pg *pg, const char *job_id, const char *owner,
                        int64_t lease_until_ms)
{
  struct pg_params p = { 0 };
  pgp_text(&p, job_id);
  pgp_text(&p, owner);
  pgp_i64(&p, lease_until_ms - nrd_now_ms());
  return pg_write(pg,
                  "UPDATE ledger SET lease_until_ms = nrd_now_ms() + $3::bigint"
                  " WHERE job_id = $1 AND owner = $2",
                  &p, "ledger renew", NULL);
}

int nrd_pg_ledger_release(struct nrd_pg *pg, const char *job_id, const char *owner)
{
  bool held = pg->claim_held;
  struct pg_params p = { 0 };
  pgp_text(&p, job_id);
  pgp_text(&p, owner);
  int rc = pg_write(pg,
                    "UPDATE ledger SET owner = NULL, lease_until_ms = 0"
                    " WHERE job_id = $1 AND owner = $2",
                    &p, "ledger release", NULL);
  if (held) { /* the claim and its release commit together */
    int end = held_end(pg, rc == NRD_OK || rc == NRD_NONE);
    if (end != NRD_OK)
      rc = end;
  }
  return rc;
}

/* ---- update by the owner ---- */

struct update_ctx {
  const char *job_id, *owner;
  const struct nrd_ledger_update *u;
  int64_t now_ms;
};

static int update_fn(struct nrd_pg *pg, void *arg)
{
  const struct update_ctx *ctx = arg;
  const struct nrd_ledger_update *u = ctx->u;
  struct pg_params p = { 0 };
  pgp_text(&p, nrd_row_state_name(u->state));
  pgp_text_opt(&p, u->new_instance_id);
  pgp_text(&p, u->last_error);
  pgp_bool(&p, u->set_delete_sent);
  pgp_bool(&p, u->set_create_sent);
  pgp_bool(&p, u->set_adopted);
  pgp_bool(&p, u->release);
  pgp_i64(&p, ctx->now_ms);
  pgp_text(&p, ctx->job_id);
  pgp_text(&p, ctx->owner);
  pgp_bool(&p, u->clear_delete_sent);
  return pg_write_with_event(
      pg,
      "UPDATE ledger SET state = $1,"
      " new_instance_id = coalesce($2, new_instance_id),"
      " last_error = CASE WHEN $3::text IS NULL THEN last_error"
      " WHEN $3 = '' THEN NULL ELSE $3 END,"
      " delete_sent = CASE WHEN $11::boolean THEN false"
      " ELSE delete_sent OR $4::boolean END,"
      " create_sent = create_sent OR $5::boolean,"
      " adopted = adopted OR $6::boolean,"
      " accepted_ms = CASE WHEN $1 = 'created' THEN coalesce(accepted_ms, $8)"
      " ELSE accepted_ms END,"
      " owner = CASE WHEN $7::boolean THEN NULL ELSE owner END,"
      " lease_until_ms = CASE WHEN $7::boolean THEN 0 ELSE lease_until_ms END,"
      " updated_ms = $8 WHERE job_id = $9 AND owner = $10",
      &p, "ledger update", u->event);
}

/* The lease of a claim held for more than a third of it (its checks waited
 * on Novita's look-ups) starts again at its first write: the lease keeper
 * cannot renew a claim not yet committed, and it renews every third of a
 * lease from then on. The database's clock now, not nrd_now_ms(): now() is
 * the transaction's start, the claim's time. */
static int held_restamp(struct nrd_pg *pg, const struct update_ctx *ctx)
{
  if (ctx->u->release || nrd_mono_ms() - pg->held_since_ms <= pg->held_lease_ms / 3)
    return NRD_OK;
  struct pg_params p = { 0 };
  pgp_text(&p, ctx->job_id);
  pgp_text(&p, ctx->owner);
  pgp_i64(&p, pg->held_lease_ms);
  return pg_write(pg,
                  "UPDATE ledger SET lease_until_ms ="
                  " (extract(epoch FROM clock_timestamp()) * 1000)::bigint + $3::bigint"
                  " WHERE job_id = $1 AND owner = $2",
                  &p, "ledger lease restamp", NULL);
}

/* Tries of an update without an event, as pg_tx's of a transaction. */
#define UPDATE_ATTEMPTS 4

/* An update without an event is one statement, which PostgreSQL runs as a
 * transaction of its own, committed as durably as pg_tx's: one round trip
 * where BEGIN, UPDATE and COMMIT were three (the row's intents, written
 * while a worker waits to send its call). It is run again only when the
 * server answered that it did not do it (a busy error, the session still
 * there). A session lost while it ran leaves its outcome unknown, as a
 * COMMIT lost in pg_tx does: NRD_BUSY, not run again. */
static int update_alone(struct nrd_pg *pg, const struct update_ctx *ctx)
{
  int rc = NRD_BUSY;
  pg->last_error[0] = '\0';
  for (int attempt = 0; attempt < UPDATE_ATTEMPTS && rc == NRD_BUSY; attempt++) {
    if (attempt > 0) {
      if (PQstatus(pg->conn) != CONNECTION_OK)
        break;
      nrd_sleep_ms(10 * attempt + (int64_t)(nrd_random_unit() * 20));
    }
    rc = update_fn(pg, (void *)ctx);
  }
  return rc;
}

int nrd_pg_ledger_update(struct nrd_pg *pg, const char *job_id, const char *owner,
                         const struct nrd_ledger_update *u, int64_t now_ms)
{
  if (!owner || !*owner || (unsigned)u->state >= NRD_ROW_STATE_COUNT)
    return NRD_ERR;
  struct update_ctx ctx = { .job_id = job_id, .owner = owner, .u = u, .now_ms = now_ms };
  if (pg->claim_held) { /* the claim commits with its row's first write */
    pg->last_error[0] = '\0';
    int rc = held_restamp(pg, &ctx);
    if (rc == NRD_OK || rc == NRD_NONE)
      rc = update_fn(pg, &ctx);
    int end = held_end(pg, rc == NRD_OK || rc == NRD_NONE);
    return end != NRD_OK ? end : rc;
  }
  if (!u->event)
    return update_alone(pg, &ctx);
  return pg_tx(pg, update_fn, &ctx);
}

/* ---- operator control ---- */

int nrd_pg_ledger_retry(struct nrd_pg *pg, const char *job_id, int64_t now_ms)
{
  struct pg_params p = { 0 };
  pgp_text(&p, job_id);
  pgp_i64(&p, now_ms);
  return pg_write(pg,
                  "UPDATE ledger SET state = 'pending', owner = NULL, lease_until_ms = 0,"
                  " updated_ms = $2 WHERE job_id = $1 AND state = 'failed'",
                  &p, "ledger retry", NULL);
}

int nrd_pg_ledger_abandon(struct nrd_pg *pg, const char *job_id, const char *reason, int64_t now_ms)
{
  struct pg_params p = { 0 };
  pgp_text(&p, job_id);
  pgp_text(&p, reason);
  pgp_i64(&p, now_ms);
  return pg_write(pg,
                  "UPDATE ledger SET state = 'abandoned', last_error = $2, owner = NULL,"
                  " lease_until_ms = 0, updated_ms = $3"
                  " WHERE job_id = $1 AND state IN (" PG_OPEN_STATES ", 'failed')",
                  &p, "ledger abandon", NULL);
}
