/* The migrations runner: applies the embedded migrations/NNNN_name.sql in
 * order, each once, in its own transaction, recorded in schema_migrations. */

#include "store_internal.h"

#include <stdio.h>
#include <string.h>

#include "nrd/log.h"
#include "nrd/migrations.h"
#include "nrd/util.h"

struct apply_ctx {
  const struct nrd_migration *m;
  bool applied;
  char error[256]; /* SQLite's message when the migration SQL failed */
};

/* Inside BEGIN IMMEDIATE: another process may have applied it meanwhile. */
static int apply_fn(struct nrd_sqlite *st, void *arg)
{
  struct apply_ctx *ctx = arg;
  int rc = NRD_ERR;
  ctx->applied = false;

  sqlite3_stmt *s = store_stmt(st, STMT_MIGRATION_APPLIED);
  if (!s)
    return NRD_ERR;
  if (!store_bind_i64(s, ":version", ctx->m->version)) {
    store_done(s);
    return NRD_ERR;
  }
  int src = sqlite3_step(s);
  store_done(s);
  if (src == SQLITE_ROW)
    return NRD_OK;
  if (src != SQLITE_DONE)
    return store_fail(st, src, "migration check");

  src = sqlite3_exec(st->db, ctx->m->sql, NULL, NULL, NULL);
  if (src != SQLITE_OK) {
    snprintf(ctx->error, sizeof ctx->error, "%s", sqlite3_errmsg(st->db));
    return store_fail(st, src, ctx->m->name);
  }

  s = store_stmt(st, STMT_MIGRATION_RECORD);
  if (!s)
    return NRD_ERR;
  if (store_bind_i64(s, ":version", ctx->m->version) && store_bind_text(s, ":name", ctx->m->name) &&
      store_bind_i64(s, ":now", nrd_now_ms()))
    rc = store_step_write(st, s, "migration record", NULL);
  store_done(s);
  if (rc == NRD_OK)
    ctx->applied = true;
  return rc;
}

int store_migrate(struct nrd_sqlite *st, unsigned *applied, char *err, size_t errlen)
{
  int binary_version = nrd_migrations_count ? nrd_migrations[nrd_migrations_count - 1].version : 0;
  int db_version = 0;

  int src = sqlite3_exec(st->db,
                         "CREATE TABLE IF NOT EXISTS schema_migrations ("
                         " version INTEGER PRIMARY KEY,"
                         " name TEXT NOT NULL,"
                         " applied_at_ms INTEGER NOT NULL)",
                         NULL, NULL, NULL);
  if (src != SQLITE_OK) {
    snprintf(err, errlen, "cannot create schema_migrations: %s", sqlite3_errmsg(st->db));
    return store_fail(st, src, "create schema_migrations");
  }
  int rc = nrd_sqlite_schema_version(st, &db_version);
  if (rc != NRD_OK) {
    snprintf(err, errlen, "cannot read the schema version");
    return rc;
  }
  if (db_version > binary_version) {
    snprintf(err, errlen, "database schema version %d is newer than this binary (%d)", db_version,
             binary_version);
    return NRD_ERR;
  }

  for (unsigned i = 0; i < nrd_migrations_count; i++) {
    struct apply_ctx ctx = { .m = &nrd_migrations[i], .applied = false, .error = "" };
    rc = store_tx(st, apply_fn, &ctx);
    if (rc != NRD_OK) {
      snprintf(err, errlen, "migration %s failed: %s", ctx.m->name,
               ctx.error[0]     ? ctx.error
               : rc == NRD_BUSY ? "database busy"
                                : "see log");
      return rc;
    }
    if (ctx.applied) {
      LOG_INFO("store: migration applied", "migration", ctx.m->name);
      if (applied)
        (*applied)++;
    }
  }
  return NRD_OK;
}
