/* One store interface, two backends: struct nrd_store holds a SQLite or a
 * PostgreSQL connection, and each nrd_store_* calls that backend's version
 * (the list is store_ops.h). Which one is decided once, at open, from the
 * configuration: DATABASE_URL selects PostgreSQL. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/config.h"
#include "nrd/store_pg.h"
#include "nrd/util.h"
#include "store_ops.h"

struct nrd_store {
  struct nrd_sqlite *lite; /* one of the two is set */
  struct nrd_pg *pg;
  char *file; /* the SQLite file */
};

/* Builds without libpq (-DNRD_PG=OFF) have SQLite only: st->pg stays NULL. */
#ifdef NRD_HAVE_PG
#define ON_PG(st, call) \
  if ((st)->pg)         \
  return call
#else
#define ON_PG(st, call) (void)0
#endif

static bool url_is_pg(const char *url)
{
  return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

struct nrd_store_target nrd_store_target_of(const struct nrd_config *cfg)
{
  const char *url = cfg->database_url && *cfg->database_url ? cfg->database_url : NULL;
  return (struct nrd_store_target){ .url = url, .path = cfg->database_path };
}

void nrd_store_target_describe(const struct nrd_store_target *t, char *out, size_t outlen)
{
  if (!t->url) {
    snprintf(out, outlen, "%s", t->path ? t->path : "");
    return;
  }
#ifdef NRD_HAVE_PG
  nrd_pg_url_redact(t->url, out, outlen);
#else
  snprintf(out, outlen, "a PostgreSQL URL");
#endif
}

static int open_pg(struct nrd_store *st, const char *url, unsigned *applied, char *err,
                   size_t errlen)
{
  if (!url_is_pg(url)) {
    snprintf(err, errlen, "DATABASE_URL must start with postgres:// or postgresql://");
    return NRD_ERR;
  }
#ifdef NRD_HAVE_PG
  return nrd_pg_open(url, &st->pg, applied, err, errlen);
#else
  (void)st;
  (void)applied;
  snprintf(err, errlen,
           "DATABASE_URL is set, but this build has no PostgreSQL store"
           " (built with -DNRD_PG=OFF)");
  return NRD_ERR;
#endif
}

int nrd_store_open(const struct nrd_store_target *t, struct nrd_store **out, unsigned *applied,
                   char *err, size_t errlen)
{
  struct nrd_store *st = nrd_xcalloc(1, sizeof *st);
  int rc;
  *out = NULL;
  if (applied)
    *applied = 0;
  if (t->url) {
    rc = open_pg(st, t->url, applied, err, errlen);
  } else {
    rc = nrd_sqlite_open(t->path, &st->lite, applied, err, errlen);
    st->file = rc == NRD_OK ? nrd_xstrdup(t->path) : NULL;
  }
  if (rc != NRD_OK) {
    free(st);
    return rc;
  }
  *out = st;
  return NRD_OK;
}

int nrd_store_open_path(const char *path, struct nrd_store **out, unsigned *applied, char *err,
                        size_t errlen)
{
  const struct nrd_store_target t = { .path = path };
  return nrd_store_open(&t, out, applied, err, errlen);
}

void nrd_store_close(struct nrd_store *st)
{
  if (!st)
    return;
#ifdef NRD_HAVE_PG
  nrd_pg_close(st->pg);
#endif
  nrd_sqlite_close(st->lite);
  free(st->file);
  free(st);
}

const char *nrd_store_file(const struct nrd_store *st)
{
  return st->file;
}

int nrd_store_ping(struct nrd_store *st)
{
  ON_PG(st, nrd_pg_ping(st->pg));
  return nrd_sqlite_ping(st->lite);
}

const char *nrd_store_last_error(const struct nrd_store *st)
{
  ON_PG(st, nrd_pg_last_error(st->pg));
  return nrd_sqlite_last_error(st->lite);
}

void nrd_store_release_memory(struct nrd_store *st)
{
  if (st->lite) /* PostgreSQL holds nothing here to give back */
    nrd_sqlite_release_memory(st->lite);
}

int nrd_store_leader_try(struct nrd_store *st, const char *name)
{
  ON_PG(st, nrd_pg_leader_try(st->pg, name));
  (void)name;
  return NRD_OK; /* SQLite: one host, every process leads */
}

int nrd_store_leader_release(struct nrd_store *st, const char *name)
{
  ON_PG(st, nrd_pg_leader_release(st->pg, name));
  (void)name;
  return NRD_OK;
}

int nrd_store_import_sqlite(struct nrd_store *st, const char *path, int64_t now_ms,
                            struct nrd_store_import *out, char *err, size_t errlen)
{
  ON_PG(st, nrd_pg_import_sqlite(st->pg, path, now_ms, out, err, errlen));
  (void)path;
  (void)now_ms;
  *out = (struct nrd_store_import){ 0 };
  snprintf(err, errlen, "the target is not PostgreSQL (set DATABASE_URL)");
  return NRD_ERR;
}

int nrd_store_ledger_claim_held(struct nrd_store *st, const char *job_id, const char *owner,
                                const char *run_id, int64_t now_ms, int64_t lease_ms,
                                struct nrd_ledger_row *out)
{
  ON_PG(st, nrd_pg_ledger_claim_held(st->pg, job_id, owner, run_id, now_ms, lease_ms, out));
  return nrd_sqlite_ledger_claim(st->lite, job_id, owner, run_id, now_ms, lease_ms, out);
}

/* Every other operation: the same call to the backend st holds. */
#define DISPATCH(ret, name, params, args)                        \
  ret nrd_store_##name(struct nrd_store *st, NRD_UNPAREN params) \
  {                                                              \
    ON_PG(st, nrd_pg_##name(st->pg, NRD_UNPAREN args));          \
    return nrd_sqlite_##name(st->lite, NRD_UNPAREN args);        \
  }
NRD_STORE_OPS(DISPATCH)
#undef DISPATCH
