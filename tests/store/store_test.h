#ifndef NRD_STORE_TEST_H
#define NRD_STORE_TEST_H

/* A fresh database in a temporary folder, shared by the store tests. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "nrd/store.h"
#include "testutil.h"

struct store_fixture {
  char *dir;
  char path[512];
  struct nrd_store *st;
};

static inline int store_fixture_setup(void **state)
{
  struct store_fixture *f = calloc(1, sizeof *f);
  char err[256] = "";
  if (!f)
    return -1;
  f->dir = tu_tempdir();
  snprintf(f->path, sizeof f->path, "%s/db/recovery.db", f->dir);
  if (nrd_store_open(f->path, &f->st, NULL, err, sizeof err) != NRD_OK) {
    fprintf(stderr, "open failed: %s\n", err);
    return -1;
  }
  *state = f;
  return 0;
}

static inline int store_fixture_teardown(void **state)
{
  struct store_fixture *f = *state;
  nrd_store_close(f->st);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

#endif
