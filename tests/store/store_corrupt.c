#include "store_corrupt.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The root pages of the tables' b-trees and the page size. */
static int root_pages(const char *path, const char *const *tables, int *pages, int max,
                      int *page_size)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  int n = 0;

  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    goto fail;
  if (sqlite3_prepare_v2(db,
                         "SELECT rootpage FROM sqlite_master WHERE tbl_name = ?1"
                         " AND rootpage > 0",
                         -1, &st, NULL) != SQLITE_OK)
    goto fail;
  for (const char *const *t = tables; *t; t++) {
    sqlite3_bind_text(st, 1, *t, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW && n < max)
      pages[n++] = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW)
    goto fail;
  *page_size = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
fail:
  sqlite3_finalize(st);
  sqlite3_close(db);
  return -1;
}

int tu_store_corrupt_tables(const char *path, const char *const *tables)
{
  int pages[64], page_size = 0;
  int n = root_pages(path, tables, pages, 64, &page_size);
  if (n <= 0 || page_size <= 0)
    return -1;
  char *junk = malloc((size_t)page_size);
  int fd = open(path, O_WRONLY);
  if (!junk || fd < 0) {
    free(junk);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  memset(junk, 0xA5, (size_t)page_size);
  for (int i = 0; i < n; i++)
    if (pwrite(fd, junk, (size_t)page_size, (off_t)(pages[i] - 1) * page_size) != page_size)
      n = -1;
  close(fd);
  free(junk);
  return n;
}

struct tu_store_hold {
  sqlite3 *db;
};

struct tu_store_hold *tu_store_hold_write(const char *path)
{
  struct tu_store_hold *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  if (sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
      sqlite3_exec(h->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
    sqlite3_close(h->db);
    free(h);
    return NULL;
  }
  return h;
}

void tu_store_release_write(struct tu_store_hold *h)
{
  if (!h)
    return;
  sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(h->db);
  free(h);
}
