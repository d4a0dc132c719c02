/* Opening a store: folder and file modes, migrations applied once and
 * recorded, a database from a newer binary refused. */

#include "store_test.h"

#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "nrd/migrations.h"

static void test_fresh_then_reopen(void **state)
{
  char *dir = tu_tempdir();
  char path[512], err[256] = "";
  snprintf(path, sizeof path, "%s/data/recovery.db", dir);

  struct nrd_store *st = NULL;
  unsigned applied = 99;
  assert_int_equal(nrd_store_open(path, &st, &applied, err, sizeof err), NRD_OK);
  assert_true(nrd_migrations_count >= 1);
  assert_int_equal(applied, nrd_migrations_count);
  int version = -1;
  assert_int_equal(nrd_store_schema_version(st, &version), NRD_OK);
  assert_int_equal(version, nrd_migrations[nrd_migrations_count - 1].version);
  assert_int_equal(nrd_store_ping(st), NRD_OK);
  nrd_store_close(st);

  applied = 99;
  assert_int_equal(nrd_store_open(path, &st, &applied, err, sizeof err), NRD_OK);
  assert_int_equal(applied, 0);
  version = -1;
  assert_int_equal(nrd_store_schema_version(st, &version), NRD_OK);
  assert_int_equal(version, nrd_migrations[nrd_migrations_count - 1].version);
  nrd_store_close(st);

  tu_rmrf(dir);
  free(dir);
}

/* A restrictive umask must not leave the folder or the file unusable or
 * wider than 0700 / 0600. */
static void test_modes(void **state)
{
  char *dir = tu_tempdir();
  char folder[512], path[600], err[256] = "";
  snprintf(folder, sizeof folder, "%s/a/b", dir);
  snprintf(path, sizeof path, "%s/recovery.db", folder);

  mode_t old = umask(0277);
  struct nrd_store *st = NULL;
  int rc = nrd_store_open(path, &st, NULL, err, sizeof err);
  umask(old);
  assert_int_equal(rc, NRD_OK);

  struct stat sb;
  assert_int_equal(stat(folder, &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  assert_int_equal(sb.st_mode & 07777, 0700);
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 07777, 0600);
  nrd_store_close(st);

  tu_rmrf(dir);
  free(dir);
}

static void test_future_version_refused(void **state)
{
  char *dir = tu_tempdir();
  char path[512], err[256] = "";
  snprintf(path, sizeof path, "%s/recovery.db", dir);

  struct nrd_store *st = NULL;
  assert_int_equal(nrd_store_open(path, &st, NULL, err, sizeof err), NRD_OK);
  nrd_store_close(st);

  /* A newer binary recorded a migration this one does not have. */
  int future = nrd_migrations[nrd_migrations_count - 1].version + 1;
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char sql[200];
  snprintf(sql, sizeof sql,
           "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (%d, 'future', 1)",
           future);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);

  st = NULL;
  assert_int_equal(nrd_store_open(path, &st, NULL, err, sizeof err), NRD_ERR);
  assert_null(st);
  char want[128];
  snprintf(want, sizeof want, "database schema version %d is newer than this binary (%d)",
           future, future - 1);
  assert_string_equal(err, want);

  tu_rmrf(dir);
  free(dir);
}

static void test_bad_folder(void **state)
{
  char *dir = tu_tempdir();
  char file[512], path[600], err[256] = "";
  snprintf(file, sizeof file, "%s/plain", dir);
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  fclose(fp);
  snprintf(path, sizeof path, "%s/recovery.db", file);

  struct nrd_store *st = NULL;
  assert_int_equal(nrd_store_open(path, &st, NULL, err, sizeof err), NRD_ERR);
  assert_null(st);
  assert_non_null(strstr(err, "not a directory"));

  tu_rmrf(dir);
  free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fresh_then_reopen),
    cmocka_unit_test(test_modes),
    cmocka_unit_test(test_future_version_refused),
    cmocka_unit_test(test_bad_folder),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
