#ifndef NRD_BACKEND_TEST_H
#define NRD_BACKEND_TEST_H

/* The store an integration test's service runs on: SQLite (DATABASE_PATH,
 * a file in the test's temporary folder), or, in the builds of the test
 * with NRD_TEST_PG (run through tests/support/pg.sh), a fresh database on
 * that PostgreSQL server (DATABASE_URL). So one source runs against both
 * backends, as the store suite does (tests/store/store_test.h). */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef NRD_TEST_PG
#include "pg_test.h"
#endif

/* True in the PostgreSQL build. */
static inline bool tb_is_pg(void)
{
#ifdef NRD_TEST_PG
  return true;
#else
  return false;
#endif
}

/* The backend's name, for the test's output. */
static inline const char *tb_backend(void)
{
  return tb_is_pg() ? "postgresql" : "sqlite";
}

/* Exits 77 when the backend cannot run here (PostgreSQL: pg.sh started no
 * server), and says which backend the test runs on. */
static inline void tb_require(void)
{
#ifdef NRD_TEST_PG
  pgt_require_server();
#endif
  printf("backend: %s\n", tb_backend());
  fflush(stdout);
}

/* PostgreSQL: creates a fresh database, writes its URL into url and returns
 * true (exits 1 when it cannot: never a silent SQLite run). SQLite: false
 * (the caller keeps its file). */
static inline bool tb_fresh_url(char *url, size_t urllen)
{
#ifdef NRD_TEST_PG
  char db[32];
  if (pgt_fresh_db(url, urllen, db) != 0) {
    fprintf(stderr, "no fresh PostgreSQL database\n");
    exit(1);
  }
  return true;
#else
  (void)url;
  (void)urllen;
  return false;
#endif
}

#endif
