#ifndef NRD_STORE_TEST_H
#define NRD_STORE_TEST_H

/* A fresh database for each store test, through the store interface
 * (nrd/store.h): a SQLite file in a temporary folder, or, in the builds of
 * these tests with NRD_TEST_PG (run through tests/support/pg.sh), a new
 * database on that PostgreSQL server. So one suite runs against both
 * backends. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "nrd/store.h"
#include "testutil.h"
#ifdef NRD_TEST_PG
#include "pg_test.h"
#endif

struct store_fixture {
  char *dir;
  char path[512]; /* the SQLite file, or the PostgreSQL URL */
  struct nrd_store_target target;
  struct nrd_store *st;
};

/* True when the suite runs against PostgreSQL. */
static inline bool store_test_is_pg(void)
{
#ifdef NRD_TEST_PG
  return true;
#else
  return false;
#endif
}

/* Another connection to the fixture's database. */
static inline int store_test_open(const struct store_fixture *f, struct nrd_store **st)
{
  char err[256] = "";
  int rc = nrd_store_open(&f->target, st, NULL, err, sizeof err);
  if (rc != NRD_OK)
    fprintf(stderr, "open failed: %s\n", err);
  return rc;
}

static inline int store_fixture_setup(void **state)
{
  struct store_fixture *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
#ifdef NRD_TEST_PG
  char db[32];
  pgt_require_server();
  if (pgt_fresh_db(f->path, sizeof f->path, db) != 0)
    return -1;
  f->target.url = f->path;
#else
  f->dir = tu_tempdir();
  snprintf(f->path, sizeof f->path, "%s/db/recovery.db", f->dir);
  f->target.path = f->path;
#endif
  if (store_test_open(f, &f->st) != NRD_OK)
    return -1;
  *state = f;
  return 0;
}

static inline int store_fixture_teardown(void **state)
{
  struct store_fixture *f = *state;
  nrd_store_close(f->st);
  if (f->dir)
    tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

#endif
