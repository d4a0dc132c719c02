#ifndef NRD_PG_TEST_H
#define NRD_PG_TEST_H

/* The PostgreSQL server of tests/support/pg.sh: a fresh database per test.
 * Without that server (the test was not started through pg.sh) the test
 * skips with 77. */

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nrd/store_pg.h"

/* Exits 77 when pg.sh did not start a server for this test. */
static inline void pgt_require_server(void)
{
  if (!getenv("NRD_TEST_PG_HOST") || !getenv("NRD_TEST_PG_PORT") || !getenv("NRD_TEST_PG_USER")) {
    fprintf(stderr, "no PostgreSQL server: run through tests/support/pg.sh\n");
    exit(77);
  }
}

/* The URL of database db on the test server. */
static inline void pgt_url(const char *db, char *out, size_t outlen)
{
  snprintf(out, outlen, "postgresql://%s@/%s?host=%s&port=%s", getenv("NRD_TEST_PG_USER"), db,
           getenv("NRD_TEST_PG_HOST"), getenv("NRD_TEST_PG_PORT"));
}

/* Runs sql (no parameters: test set-up only) on database db; 0 on success. */
static inline int pgt_exec(const char *db, const char *sql)
{
  char url[512];
  pgt_url(db, url, sizeof url);
  PGconn *c = PQconnectdb(url);
  int rc = -1;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult *r = PQexec(c, sql);
    rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
    if (rc != 0)
      fprintf(stderr, "pgt_exec: %s", PQresultErrorMessage(r));
    PQclear(r);
  } else {
    fprintf(stderr, "pgt_exec: %s", PQerrorMessage(c));
  }
  PQfinish(c);
  return rc;
}

/* Creates a new empty database (t1_<pid>, t2_<pid>, ...) and writes its URL
 * into url and its name into name (32 bytes). */
static inline int pgt_fresh_db(char *url, size_t urllen, char name[32])
{
  static int counter;
  char sql[96];
  snprintf(name, 32, "t%d_%ld", ++counter, (long)getpid());
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  if (pgt_exec("postgres", sql) != 0)
    return -1;
  pgt_url(name, url, urllen);
  return 0;
}

/* A fresh database and a connection to it, as a cmocka fixture. */
struct pg_fixture {
  char url[512];
  char db[32];
  struct nrd_pg *pg;
};

static inline int pg_fixture_setup(void **state)
{
  struct pg_fixture *f = calloc(1, sizeof *f);
  char err[256] = "";
  if (!f || pgt_fresh_db(f->url, sizeof f->url, f->db) != 0)
    return -1;
  if (nrd_pg_open_as(f->url, "test-main", &f->pg, NULL, err, sizeof err) != NRD_OK) {
    fprintf(stderr, "open failed: %s\n", err);
    return -1;
  }
  *state = f;
  return 0;
}

static inline int pg_fixture_teardown(void **state)
{
  struct pg_fixture *f = *state;
  nrd_pg_close(f->pg);
  free(f);
  return 0;
}

#endif
