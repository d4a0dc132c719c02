/* The PostgreSQL migrations runner: applies the embedded migrations/pg/
 * NNNN_name.sql in order, each once, in its own transaction holding an
 * advisory lock, recorded in schema_migrations. Replicas starting together
 * queue on the lock; each finds what the one before it applied. */

#include "pg_internal.h"

#include <stdio.h>
#include <string.h>

#include "nrd/log.h"
#include "nrd/util.h"

struct apply_ctx {
  const struct nrd_migration *m; /* NULL: only create schema_migrations and check */
  int binary_version;
  bool applied;
  bool newer; /* the database's schema is newer than ours */
  int db_version;
  char error[256];
};

static int lock_and_version(struct nrd_pg *pg, struct apply_ctx *ctx)
{
  struct pg_params p = { 0 };
  pgp_i64(&p, PG_LOCK_MIGRATE);
  int rc;
  PGresult *r = pg_exec(pg, "SELECT pg_advisory_xact_lock($1::int4, 0)", &p, &rc, "migration lock");
  PQclear(r);
  if (rc != NRD_OK)
    return rc;
  r = pg_exec(pg,
              "CREATE TABLE IF NOT EXISTS schema_migrations ("
              " version integer PRIMARY KEY, name text NOT NULL, applied_at_ms bigint NOT NULL)",
              NULL, &rc, "create schema_migrations");
  PQclear(r);
  if (rc != NRD_OK)
    return rc;
  int version = 0;
  rc = nrd_pg_schema_version(pg, &version);
  ctx->db_version = version;
  if (rc == NRD_OK && version > ctx->binary_version) {
    ctx->newer = true;
    return NRD_ERR;
  }
  return rc;
}

/* Inside the transaction: under the lock, apply ctx->m unless recorded. */
static int apply_fn(struct nrd_pg *pg, void *arg)
{
  struct apply_ctx *ctx = arg;
  ctx->applied = false;
  int rc = lock_and_version(pg, ctx);
  if (rc != NRD_OK || !ctx->m)
    return rc;
  struct pg_params p = { 0 };
  pgp_i64(&p, ctx->m->version);
  PGresult *r = pg_exec(pg, "SELECT 1 FROM schema_migrations WHERE version = $1::int4", &p, &rc,
                        "migration check");
  if (!r)
    return rc;
  bool done = PQntuples(r) > 0;
  PQclear(r);
  if (done)
    return NRD_OK;
  /* The migration's own SQL: several statements, no value of ours in it. */
  r = PQexec(pg->conn, ctx->m->sql);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(ctx->error, sizeof ctx->error, "%s", msg ? msg : PQerrorMessage(pg->conn));
    LOG_ERROR_AT(NRD_FAULT_DISK, "store: postgresql migration failed", "migration", ctx->m->name,
                 "error", ctx->error);
    PQclear(r);
    return NRD_ERR;
  }
  PQclear(r);
  struct pg_params rec = { 0 };
  PG_PARAMS(&rec, PG_I64(ctx->m->version), PG_TEXT(ctx->m->name), PG_I64(nrd_now_ms()));
  rc = pg_write(pg,
                "INSERT INTO schema_migrations (version, name, applied_at_ms)"
                " VALUES ($1::int4, $2, $3)",
                &rec, "migration record", NULL);
  if (rc == NRD_OK)
    ctx->applied = true;
  return rc == NRD_NONE ? NRD_ERR : rc;
}

/* The schema is already this binary's: schema_migrations exists and its
 * newest version is our newest (migrations are applied in order, each
 * recorded in its own transaction, so every one before it is there too).
 * Read without the lock, so the connections a process opens at start do
 * not queue on it one after the other; anything else (a fresh database, a
 * migration missing, a newer schema, an error) takes the locked path. */
static bool schema_current(struct nrd_pg *pg, int binary_version)
{
  int rc;
  PGresult *r =
      pg_exec(pg, "SELECT to_regclass('schema_migrations') IS NOT NULL", NULL, &rc, "schema check");
  bool exists = r && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  PQclear(r);
  int version = 0;
  return exists && nrd_pg_schema_version(pg, &version) == NRD_OK && version == binary_version;
}

int pg_migrate(struct nrd_pg *pg, unsigned *applied, char *err, size_t errlen)
{
  int binary_version =
      nrd_pg_migrations_count ? nrd_pg_migrations[nrd_pg_migrations_count - 1].version : 0;
  if (nrd_pg_migrations_count && schema_current(pg, binary_version))
    return NRD_OK;
  struct apply_ctx ctx = { .m = NULL, .binary_version = binary_version };
  int rc = pg_tx(pg, apply_fn, &ctx);
  for (unsigned i = 0; i < nrd_pg_migrations_count && rc == NRD_OK; i++) {
    ctx = (struct apply_ctx){ .m = &nrd_pg_migrations[i], .binary_version = binary_version };
    rc = pg_tx(pg, apply_fn, &ctx);
    if (rc == NRD_OK && ctx.applied) {
      LOG_INFO("store: migration applied", "migration", ctx.m->name, "backend", "postgresql");
      if (applied)
        (*applied)++;
    }
  }
  if (rc == NRD_OK)
    return NRD_OK;
  if (ctx.newer)
    snprintf(err, errlen, "database schema version %d is newer than this binary (%d)",
             ctx.db_version, binary_version);
  else if (ctx.m)
    snprintf(err, errlen, "migration %s failed: %s", ctx.m->name,
             ctx.error[0]     ? ctx.error
             : rc == NRD_BUSY ? "database busy"
                              : "see log");
  else
    snprintf(err, errlen, "cannot create or read schema_migrations");
  return rc;
}
