/* Runs, brakes and retention on PostgreSQL. */

#include "pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

int nrd_pg_run_insert(struct nrd_pg *pg, const char *run_id, const char *trigger, bool dry_run,
                      int64_t started_ms)
{
  struct pg_params p = { 0 };
  pgp_text(&p, run_id);
  pgp_text(&p, trigger);
  pgp_bool(&p, dry_run);
  pgp_i64(&p, started_ms);
  pgp_text(&p, pg->identity);
  return pg_write(pg,
                  "INSERT INTO runs (run_id, trigger, dry_run, state, started_ms, holder)"
                  " VALUES ($1, $2, $3, 'running', $4, $5)",
                  &p, "run insert", NULL);
}

int nrd_pg_run_finish(struct nrd_pg *pg, const char *run_id, const char *state,
                      const char *report_json, int64_t finished_ms)
{
  struct pg_params p = { 0 };
  pgp_text(&p, run_id);
  pgp_text(&p, state);
  pgp_text(&p, report_json);
  pgp_i64(&p, finished_ms);
  return pg_write(pg,
                  "UPDATE runs SET state = $2, report_json = $3, finished_ms = $4"
                  " WHERE run_id = $1",
                  &p, "run finish", NULL);
}

static bool read_run_record(const PGresult *r, int i, void *record)
{
  struct nrd_run_record *out = record;
  out->run_id = pg_col_text(r, i, 0);
  out->trigger = pg_col_text(r, i, 1);
  out->state = pg_col_text(r, i, 2);
  out->dry_run = pg_col_bool(r, i, 3);
  out->started_ms = pg_col_i64(r, i, 4);
  out->finished_ms = pg_col_i64(r, i, 5);
  out->report_json = pg_col_text(r, i, 6);
  return true;
}

int nrd_pg_run_get(struct nrd_pg *pg, const char *run_id, struct nrd_run_record *out)
{
  memset(out, 0, sizeof *out);
  struct pg_params p = { 0 };
  pgp_text(&p, run_id);
  return pg_one_row(pg,
                    "SELECT run_id, trigger, state, dry_run, started_ms,"
                    " coalesce(finished_ms, 0), report_json FROM runs WHERE run_id = $1",
                    &p, "run get", read_run_record, out);
}

int nrd_pg_run_fail_stale(struct nrd_pg *pg, int64_t now_ms)
{
  struct pg_params p = { 0 };
  pgp_i64(&p, now_ms);
  int rc = pg_write(pg,
                    "UPDATE runs SET state = 'failed', finished_ms = $1 WHERE state = 'running'"
                    " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
                    " WHERE a.application_name = runs.holder)",
                    &p, "run fail stale", NULL);
  return rc == NRD_NONE ? NRD_OK : rc;
}

int nrd_pg_run_holding_lock(struct nrd_pg *pg, const char *lock_name, struct nrd_run_record *out)
{
  memset(out, 0, sizeof *out);
  struct pg_params p = { 0 };
  pgp_i64(&p, PG_LOCK_LEADER);
  pgp_text(&p, lock_name);
  /* The lock as nrd_pg_leader_try takes it: (PG_LOCK_LEADER, hashtext(name)),
   * two int4 keys (objsubid 2), in this database, held by another session.
   * That session's identity (application_name) is its runs' holder. */
  return pg_one_row(pg,
                    "SELECT r.run_id, r.trigger, r.state, r.dry_run, r.started_ms,"
                    " coalesce(r.finished_ms, 0), r.report_json"
                    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " JOIN runs r ON r.holder = a.application_name"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
                    " AND l.classid = $1::int4::oid AND l.objid = hashtext($2)::oid"
                    " AND l.database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                    " AND l.pid <> pg_backend_pid() AND r.state = 'running'"
                    " ORDER BY r.started_ms DESC, r.run_id DESC LIMIT 1",
                    &p, "run holding lock", read_run_record, out);
}

/* ---- brakes ---- */

static bool read_brake(const PGresult *r, int i, void *brake)
{
  struct nrd_brake *out = brake;
  out->reason = pg_col_text(r, i, 0);
  out->message = pg_col_text(r, i, 1);
  out->job_id = pg_col_text(r, i, 2);
  out->until_ms = pg_col_i64(r, i, 3);
  out->set_ms = pg_col_i64(r, i, 4);
  return true;
}

int nrd_pg_brake_get(struct nrd_pg *pg, const char *name, struct nrd_brake *out)
{
  memset(out, 0, sizeof *out);
  struct pg_params p = { 0 };
  pgp_text(&p, name);
  return pg_one_row(pg,
                    "SELECT reason, message, job_id, until_ms, set_ms FROM brakes WHERE name = $1",
                    &p, "brake get", read_brake, out);
}

int nrd_pg_brake_set(struct nrd_pg *pg, const char *name, const struct nrd_brake *b, int64_t now_ms)
{
  struct pg_params p = { 0 };
  pgp_text(&p, name);
  pgp_text(&p, b->reason);
  pgp_text(&p, b->message);
  pgp_text(&p, b->job_id);
  pgp_i64(&p, b->until_ms);
  pgp_i64(&p, now_ms);
  int rc = pg_write(pg,
                    "INSERT INTO brakes (name, reason, message, job_id, until_ms, set_ms)"
                    " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET"
                    " reason = excluded.reason, message = excluded.message,"
                    " job_id = excluded.job_id, until_ms = excluded.until_ms,"
                    " set_ms = excluded.set_ms",
                    &p, "brake set", NULL);
  return rc == NRD_NONE ? NRD_ERR : rc;
}

int nrd_pg_brake_clear(struct nrd_pg *pg, const char *name)
{
  struct pg_params p = { 0 };
  pgp_text(&p, name);
  int rc = pg_write(pg, "DELETE FROM brakes WHERE name = $1", &p, "brake clear", NULL);
  return rc == NRD_NONE ? NRD_OK : rc;
}

/* ---- retention ---- */

struct prune_ctx {
  int64_t cutoff_ms, deleted;
};

static int prune_fn(struct nrd_pg *pg, void *arg)
{
  struct prune_ctx *ctx = arg;
  static const char *const sql[] = {
    "DELETE FROM runs WHERE state <> 'running' AND finished_ms < $1",
    "DELETE FROM ledger WHERE state IN ('created', 'running', 'abandoned') AND updated_ms < $1",
    "DELETE FROM events WHERE state IN ('delivered', 'dead') AND created_ms < $1",
  };
  ctx->deleted = 0;
  for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
    struct pg_params p = { 0 };
    pgp_i64(&p, ctx->cutoff_ms);
    int64_t n = 0;
    int rc = pg_write(pg, sql[i], &p, "prune", &n);
    if (rc != NRD_OK && rc != NRD_NONE)
      return rc;
    ctx->deleted += n;
  }
  return NRD_OK;
}

int nrd_pg_prune(struct nrd_pg *pg, int64_t cutoff_ms, int64_t *deleted)
{
  struct prune_ctx ctx = { .cutoff_ms = cutoff_ms };
  int rc = pg_tx(pg, prune_fn, &ctx);
  if (deleted)
    *deleted = rc == NRD_OK ? ctx.deleted : 0;
  return rc;
}
