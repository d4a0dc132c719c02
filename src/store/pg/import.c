/* migrate-store: copies a SQLite ledger into PostgreSQL, in one
 * transaction. What is copied, table by table, and why:
 * - ledger: every row the file holds (the service prunes finished ones
 *   past RETENTION_DAYS): an open row is resumed, a finished one keeps its
 *   job from being detected as new. Leases are dropped (the old service
 *   is stopped; a lease on the old host's clock means nothing here).
 * - snapshots: every one; an open row is recreated from its instance's.
 * - runs, events (the outbox, in its order), brakes: every one.
 * A row whose key is already there is the same row copied before when its
 * identity matches (a ledger row: its instance and creation time; a run:
 * its trigger and start; an event: its type and body), and is left as it
 * is; otherwise the copy is refused as a whole. Snapshots and brakes
 * already there are kept. */

#include "pg_internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "nrd/util.h"

struct table_spec {
  const char *name, *key, *cols, *order;
  int ncols;
  int same[4]; /* columns (0-based, after the key) that must match; -1 ends */
  int64_t *copied, *present;
};

struct import_ctx {
  sqlite3 *lite;
  struct nrd_store_import *out;
  char *err;
  size_t errlen;
};

#define LEDGER_COLS                                                                    \
  "job_id, job_type, instance_id, instance_name, state, new_name, name_ms,"            \
  " new_instance_id, delete_sent, create_sent, adopted, attempts, last_error, run_id," \
  " created_ms, updated_ms, accepted_ms, running_ms, status_error_state,"              \
  " status_error_message"
#define SNAPSHOT_COLS                                                                     \
  "instance_id, name, status, cluster_id, cluster_name, product_id, product_name,"        \
  " image_url, image_auth_id, command, gpu_num, rootfs_size, kind, billing_mode,"         \
  " ports_json, envs_json, mounts_json, raw_json, novita_created_at, first_seen_ms,"      \
  " last_seen_ms, seen_run, config_updated_ms, entrypoint, network_id, min_cuda_version," \
  " tools_json"

/* The INSERT of one row, and the query that says whether the row already
 * there is the same one. */
static void spec_sql(const struct table_spec *t, char *ins, size_t inslen, char *same,
                     size_t samelen, int *nsame)
{
  size_t o = (size_t)snprintf(ins, inslen, "INSERT INTO %s (%s) VALUES (", t->name, t->cols);
  for (int i = 0; i < t->ncols && o < inslen; i++)
    o += (size_t)snprintf(ins + o, inslen - o, "%s$%d", i ? ", " : "", i + 1);
  if (o < inslen)
    snprintf(ins + o, inslen - o, ") ON CONFLICT (%s) DO NOTHING", t->key);

  /* Column names of the spec, by index, to name the matching ones. */
  char cols[1024];
  const char *names[32];
  snprintf(cols, sizeof cols, "%s", t->cols);
  int n = 0;
  for (char *save = NULL, *tok = strtok_r(cols, ", ", &save); tok && n < 32;
       tok = strtok_r(NULL, ", ", &save))
    names[n++] = tok;
  o = (size_t)snprintf(same, samelen, "SELECT 1 FROM %s WHERE %s = $1", t->name, t->key);
  *nsame = 1;
  for (int i = 0; i < 4 && t->same[i] >= 0 && o < samelen; i++, (*nsame)++)
    o += (size_t)snprintf(same + o, samelen - o, " AND %s IS NOT DISTINCT FROM $%d",
                          names[t->same[i]], i + 2);
}

/* One source row: inserted, or found there already (the same row or a
 * conflict). */
static int copy_row(struct nrd_pg *pg, struct import_ctx *c, const struct table_spec *t,
                    sqlite3_stmt *s, const char *ins, const char *same, int nsame)
{
  const char *v[32];
  int rc;
  for (int i = 0; i < t->ncols; i++)
    v[i] = (const char *)sqlite3_column_text(s, i);
  PGresult *r = pg_exec_values(pg, ins, t->ncols, v, &rc, "import row");
  if (!r)
    return rc;
  bool inserted = strcmp(PQcmdTuples(r), "1") == 0;
  PQclear(r);
  if (inserted) {
    (*t->copied)++;
    return NRD_OK;
  }
  const char *sv[5] = { v[0] };
  for (int i = 1; i < nsame; i++)
    sv[i] = v[t->same[i - 1]];
  r = pg_exec_values(pg, same, nsame, sv, &rc, "import compare");
  if (!r)
    return rc;
  bool is_same = PQntuples(r) == 1;
  PQclear(r);
  if (!is_same) {
    snprintf(c->err, c->errlen,
             "%s '%s' is already in the PostgreSQL database as a different row;"
             " nothing was copied (was another ledger migrated there?)",
             t->name, v[0] ? v[0] : "");
    return NRD_ERR;
  }
  (*t->present)++;
  return NRD_OK;
}

static int copy_table(struct nrd_pg *pg, struct import_ctx *c, const struct table_spec *t)
{
  char sel[1200], ins[1600], same[600];
  int nsame = 0;
  snprintf(sel, sizeof sel, "SELECT %s FROM %s ORDER BY %s", t->cols, t->name, t->order);
  spec_sql(t, ins, sizeof ins, same, sizeof same, &nsame);
  sqlite3_stmt *s = NULL;
  if (sqlite3_prepare_v2(c->lite, sel, -1, &s, NULL) != SQLITE_OK) {
    snprintf(c->err, c->errlen, "reading %s from the SQLite file: %s", t->name,
             sqlite3_errmsg(c->lite));
    return NRD_ERR;
  }
  int rc = NRD_OK, step;
  while (rc == NRD_OK && (step = sqlite3_step(s)) == SQLITE_ROW)
    rc = copy_row(pg, c, t, s, ins, same, nsame);
  if (rc == NRD_OK && step != SQLITE_DONE) {
    snprintf(c->err, c->errlen, "reading %s from the SQLite file: %s", t->name,
             sqlite3_errmsg(c->lite));
    rc = NRD_ERR;
  }
  sqlite3_finalize(s);
  return rc;
}

static int import_tx(struct nrd_pg *pg, void *arg)
{
  struct import_ctx *c = arg;
  struct nrd_store_import *o = c->out;
  *o = (struct nrd_store_import){ 0 };
  const struct table_spec tables[] = {
    { "snapshots",
      "instance_id",
      SNAPSHOT_COLS,
      "instance_id",
      27,
      { -1 },
      &o->snapshots,
      &o->present },
    { "runs",
      "run_id",
      "run_id, trigger, dry_run, state, started_ms, finished_ms, report_json",
      "started_ms, run_id",
      7,
      { 1, 4, -1 },
      &o->runs,
      &o->present },
    { "ledger",
      "job_id",
      LEDGER_COLS,
      "created_ms, job_id",
      20,
      { 2, 14, -1 },
      &o->ledger,
      &o->present },
    { "events",
      "id",
      "id, type, body_json, created_ms, state, attempts, next_attempt_ms, last_error",
      "seq",
      8,
      { 1, 2, -1 },
      &o->events,
      &o->present },
    { "brakes",
      "name",
      "name, reason, message, job_id, until_ms, set_ms",
      "name",
      6,
      { -1 },
      &o->brakes,
      &o->present },
  };
  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    int rc = copy_table(pg, c, &tables[i]);
    if (rc != NRD_OK)
      return rc;
  }
  return NRD_OK;
}

/* NRD_OK when no row of the file is leased now (its service is stopped). */
static int check_no_lease(sqlite3 *lite, int64_t now_ms, char *err, size_t errlen)
{
  sqlite3_stmt *s = NULL;
  int64_t leased = 0;
  if (sqlite3_prepare_v2(lite,
                         "SELECT count(*) FROM ledger WHERE owner IS NOT NULL"
                         " AND lease_until_ms > ?1",
                         -1, &s, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "the SQLite file is not a ledger: %s", sqlite3_errmsg(lite));
    return NRD_ERR;
  }
  sqlite3_bind_int64(s, 1, now_ms);
  if (sqlite3_step(s) == SQLITE_ROW)
    leased = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  if (leased > 0) {
    snprintf(err, errlen,
             "%lld row(s) of the SQLite ledger are leased by a service that is running (or was"
             " killed less than a lease ago): stop it, then try again",
             (long long)leased);
    return NRD_ERR;
  }
  return NRD_OK;
}

int nrd_pg_import_sqlite(struct nrd_pg *pg, const char *path, int64_t now_ms,
                         struct nrd_store_import *out, char *err, size_t errlen)
{
  struct import_ctx c = { .out = out, .err = err, .errlen = errlen };
  *out = (struct nrd_store_import){ 0 };
  err[0] = '\0';
  if (sqlite3_open_v2(path, &c.lite, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot open %s: %s", path, c.lite ? sqlite3_errmsg(c.lite) : "");
    sqlite3_close(c.lite);
    return NRD_ERR;
  }
  sqlite3_busy_timeout(c.lite, 5000);
  int rc = check_no_lease(c.lite, now_ms, err, errlen);
  if (rc == NRD_OK)
    rc = pg_tx(pg, import_tx, &c);
  if (rc != NRD_OK && !err[0])
    snprintf(err, errlen, "PostgreSQL: %s", pg->last_error[0] ? pg->last_error : "unreachable");
  sqlite3_close(c.lite);
  return rc;
}
