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
  assert_int_equal(nrd_store_open_path(path, &st, &applied, err, sizeof err), NRD_OK);
  assert_true(nrd_migrations_count >= 1);
  assert_int_equal(applied, nrd_migrations_count);
  int version = -1;
  assert_int_equal(nrd_store_schema_version(st, &version), NRD_OK);
  assert_int_equal(version, nrd_migrations[nrd_migrations_count - 1].version);
  assert_int_equal(nrd_store_ping(st), NRD_OK);
  nrd_store_close(st);

  applied = 99;
  assert_int_equal(nrd_store_open_path(path, &st, &applied, err, sizeof err), NRD_OK);
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
  int rc = nrd_store_open_path(path, &st, NULL, err, sizeof err);
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
  assert_int_equal(nrd_store_open_path(path, &st, NULL, err, sizeof err), NRD_OK);
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
  assert_int_equal(nrd_store_open_path(path, &st, NULL, err, sizeof err), NRD_ERR);
  assert_null(st);
  char want[128];
  snprintf(want, sizeof want, "database schema version %d is newer than this binary (%d)", future,
           future - 1);
  assert_string_equal(err, want);

  tu_rmrf(dir);
  free(dir);
}

static int count_rows(sqlite3 *db, const char *sql)
{
  sqlite3_stmt *s = NULL;
  int n = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
    n = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return n;
}

/* A database at version 3 with rows: 0004 keeps every row, widens the
 * ledger's CHECK to running and start_failed (still refusing others), keeps
 * its indexes, and adds the snapshot columns. */
static void test_0004_upgrades_a_used_database(void **state)
{
  char *dir = tu_tempdir();
  char path[512], err[256] = "";
  snprintf(path, sizeof path, "%s/recovery.db", dir);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                                " name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  for (unsigned i = 0; i < nrd_migrations_count && nrd_migrations[i].version <= 3; i++) {
    char sql[200];
    assert_int_equal(sqlite3_exec(db, nrd_migrations[i].sql, NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof sql, "INSERT INTO schema_migrations VALUES (%d, 'old', 1)",
             nrd_migrations[i].version);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  }
  assert_int_equal(
      sqlite3_exec(db,
                   "INSERT INTO ledger (job_id, instance_id, state, new_name, name_ms, created_ms, "
                   "updated_ms)"
                   " VALUES ('j1', 'i1', 'created', 'n1', 1, 10, 20), ('j2', 'i2', 'pending', "
                   "'n2', 1, 11, 21);"
                   "INSERT INTO snapshots (instance_id, image_url, first_seen_ms, last_seen_ms)"
                   " VALUES ('i1', 'img', 1, 2)",
                   NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);

  struct nrd_store *st = NULL;
  unsigned applied = 0;
  assert_int_equal(nrd_store_open_path(path, &st, &applied, err, sizeof err), NRD_OK);
  assert_int_equal(applied, nrd_migrations_count - 3);
  nrd_store_close(st);

  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(count_rows(db, "SELECT count(*) FROM ledger WHERE (job_id = 'j1' AND"
                                  " state = 'created' AND updated_ms = 20 AND accepted_ms IS NULL)"
                                  " OR (job_id = 'j2' AND state = 'pending')"),
                   2);
  assert_int_equal(count_rows(db, "SELECT count(*) FROM snapshots WHERE instance_id = 'i1'"
                                  " AND image_url = 'img' AND entrypoint IS NULL"
                                  " AND tools_json IS NULL"),
                   1);
  assert_int_equal(count_rows(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND"
                                  " name IN ('ledger_state_created', 'ledger_instance',"
                                  " 'ledger_open_order')"),
                   3);
  assert_int_equal(
      sqlite3_exec(db, "UPDATE ledger SET state = 'running' WHERE job_id = 'j1'", NULL, NULL, NULL),
      SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "UPDATE ledger SET state = 'start_failed' WHERE job_id = 'j1'",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  assert_int_not_equal(
      sqlite3_exec(db, "UPDATE ledger SET state = 'bogus' WHERE job_id = 'j1'", NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
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
  assert_int_equal(nrd_store_open_path(path, &st, NULL, err, sizeof err), NRD_ERR);
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
    cmocka_unit_test(test_0004_upgrades_a_used_database),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
