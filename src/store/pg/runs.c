/* Runs, brakes and retention on PostgreSQL. */

#include "pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

int nrd_pg_run_insert(struct nrd_pg *pg, const char *run_id, const char *trigger, bool dry_run,
                      int64_t started_ms)
{
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_TEXT(run_id), PG_TEXT(trigger), PG_BOOL(dry_run), PG_I64(started_ms),
            PG_TEXT(pg->identity));
  return pg_write(pg,
                  "INSERT INTO runs (run_id, trigger, dry_run, state, started_ms, holder)"
                  " VALUES ($1, $2, $3, 'running', $4, $5)",
                  &p, "run insert", NULL);
}

int nrd_pg_run_finish(struct nrd_pg *pg, const char *run_id, const char *state,
                      const char *report_json, int64_t finished_ms)
{
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_TEXT(run_id), PG_TEXT(state), PG_TEXT(report_json), PG_I64(finished_ms));
  return pg_write(pg,
                  "UPDATE runs SET state = $2, report_json = $3, finished_ms = $4"
                  " WHERE run_id = $1",
                  &p, "run finish", NULL);
}

int nrd_pg_run_get(struct nrd_pg *pg, const char *run_id, struct nrd_run_record *out)
{
  return pg_get_shaped(pg,
                       "SELECT run_id, trigger, state, dry_run, started_ms,"
                       " coalesce(finished_ms, 0), report_json FROM runs WHERE run_id = $1",
                       run_id, "run get", &store_run_record_shape, out, sizeof *out);
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
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_I64(PG_LOCK_LEADER), PG_TEXT(lock_name));
  /* The lock as nrd_pg_leader_try takes it: (PG_LOCK_LEADER, hashtext(name)),
   * two int4 keys (objsubid 2), in this database, held by another session.
   * That session's identity (application_name) is its runs' holder. */
  return pg_one_shaped(pg,
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
                       &p, "run holding lock", &store_run_record_shape, out, sizeof *out);
}

/* ---- brakes ---- */

int nrd_pg_brake_get(struct nrd_pg *pg, const char *name, struct nrd_brake *out)
{
  return pg_get_shaped(
      pg, "SELECT reason, message, job_id, until_ms, set_ms FROM brakes WHERE name = $1", name,
      "brake get", &store_brake_shape, out, sizeof *out);
}

int nrd_pg_brake_set(struct nrd_pg *pg, const char *name, const struct nrd_brake *b, int64_t now_ms)
{
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_TEXT(name), PG_TEXT(b->reason), PG_TEXT(b->message), PG_TEXT(b->job_id),
            PG_I64(b->until_ms), PG_I64(now_ms));
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
