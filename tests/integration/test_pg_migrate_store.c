/* `novita-recoveryd migrate-store --from FILE`: a SQLite ledger copied into
 * the PostgreSQL server of tests/support/pg.sh. A service on PostgreSQL then
 * resumes the open rows once each and does not detect the finished jobs
 * again; a second copy copies nothing; a different row already there, or a
 * file whose rows are leased, is refused with nothing copied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/store.h"
#include "nrd/util.h"
#include "pg_test.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define DONE 3 /* failed jobs recovered on SQLite */
#define OPEN 3 /* failed jobs left open there */

static const char *immediate = "{\"immediate\":true}";

/* Runs the binary with args, DATABASE_URL=url when url is set; its
 * output (both streams) in out. The exit status. */
static int run_cli(const char *url, const char *args, char *out, size_t outlen)
{
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s%s%s'%s' %s 2>&1", url ? "DATABASE_URL='" : "env -u DATABASE_URL",
           url ? url : "", url ? "' " : " ", getenv("NRD_BINARY"), args);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, outlen - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  fprintf(stderr, "$ migrate-store ... -> %d: %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int migrate(const char *url, const char *file, char *out, size_t outlen)
{
  char args[1024];
  snprintf(args, sizeof args, "migrate-store --from '%s'", file);
  return run_cli(url, args, out, outlen);
}

static int64_t open_rows(const char *file)
{
  struct nrd_store *st = NULL;
  char err[256];
  int64_t counts[NRD_ROW_STATE_COUNT] = { 0 }, open = 0;
  assert_int_equal(nrd_store_open_path(file, &st, NULL, err, sizeof err), NRD_OK);
  assert_int_equal(nrd_store_ledger_count_by_state(st, counts), NRD_OK);
  nrd_store_close(st);
  for (int s = 0; s < NRD_ROW_STATE_COUNT; s++)
    if (nrd_row_state_is_open((enum nrd_row_state)s))
      open += counts[s];
  return open;
}

/* A SQLite service recovers DONE jobs, then leaves OPEN rows open (every
 * create refused). The file is copied; a service on PostgreSQL against the
 * same Novita finishes the OPEN rows with one create each and leaves the
 * DONE jobs alone. */
static void test_copy_then_resume_once(void **state)
{
  (void)state;
  char url[512], db[32], out[2048], file[600];
  struct tu_stack a, b;
  long status = 0;
  tu_stack_init(&a, NULL);
  cJSON *sc = tu_failed_fleet(DONE, OPEN);
  tu_stack_load(&a, sc);
  cJSON_Delete(sc);
  tu_stack_start(&a);
  cJSON *rep = tu_stack_check_failed(&a, immediate, &status);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), DONE);
  cJSON_Delete(rep);
  for (int i = 0; i < OPEN; i++) {
    char id[64];
    assert_int_equal(nrd_sim_fail_migration(a.sim, nrd_now_ms() / 1000 - 60, id), 0);
  }
  struct nrd_sim_fault refuse = { .kind = NRD_SIM_STATUS,
                                  .match = "/gpu/instance/create",
                                  .status = 503 };
  nrd_sim_add_fault(a.sim, &refuse);
  cJSON_Delete(tu_stack_check_failed(&a, immediate, &status));
  tu_stack_stop_service(&a);
  nrd_sim_clear_faults(a.sim);
  snprintf(file, sizeof file, "%s", a.cfg.database_path);
  assert_int_equal(open_rows(file), OPEN);
  size_t creates = nrd_sim_count(a.sim, "POST", "/gpu/instance/create");

  assert_int_equal(pgt_fresh_db(url, sizeof url, db), 0);
  assert_int_equal(migrate(url, file, out, sizeof out), 0);
  assert_non_null(strstr(out, "6 ledger row(s)"));
  assert_non_null(strstr(out, "; 0 row(s) were there already"));
  /* Again: nothing copied twice. */
  assert_int_equal(migrate(url, file, out, sizeof out), 0);
  assert_non_null(strstr(out, ": 0 ledger row(s), 0 snapshot(s), 0 run(s), 0 event(s)"));
  assert_null(strstr(out, "; 0 row(s) were there already"));

  tu_stack_init(&b, NULL);
  b.cfg.database_url = nrd_xstrdup(url);
  free(b.cfg.novita_api_base_url);
  b.cfg.novita_api_base_url = nrd_xstrdup(a.cfg.novita_api_base_url);
  tu_stack_start(&b);
  rep = tu_stack_check_failed(&b, immediate, &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), OPEN);
  assert_int_equal(tu_result_int(rep, "errors"), 0);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(a.sim, "POST", "/gpu/instance/create"), creates + OPEN);
  rep = tu_stack_check_failed(&b, immediate, &status);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 0);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(a.sim, "POST", "/gpu/instance/create"), creates + OPEN);
  char why[128] = "";
  if (!tu_one_replacement_each(a.sim, DONE, DONE + OPEN, why, sizeof why))
    fail_msg("%s", why);
  tu_stack_cleanup(&b);
  tu_stack_cleanup(&a);
}

/* A SQLite file holding one row job-1 for instance (claimed when leased). */
static void make_ledger(const char *file, const char *instance, bool leased)
{
  struct nrd_store *st = NULL;
  struct nrd_ledger_row row;
  char err[256];
  int64_t now = nrd_now_ms();
  assert_int_equal(nrd_store_open_path(file, &st, NULL, err, sizeof err), NRD_OK);
  assert_int_equal(nrd_store_ledger_insert(st, "job-1", "autoInstanceMigrate", instance, "n",
                                           "n-recreated", now, now),
                   NRD_OK);
  if (leased) {
    assert_int_equal(nrd_store_ledger_claim(st, "job-1", "other", "run-1", now, 600000, &row),
                     NRD_OK);
    nrd_ledger_row_cleanup(&row);
  }
  nrd_store_close(st);
}

static void test_refusals(void **state)
{
  (void)state;
  char url[512], db[32], out[32768], f1[600], f2[600], f3[600];
  char *dir = tu_tempdir();
  snprintf(f1, sizeof f1, "%s/one.db", dir);
  snprintf(f2, sizeof f2, "%s/two.db", dir);
  snprintf(f3, sizeof f3, "%s/leased.db", dir);
  make_ledger(f1, "i-1", false);
  make_ledger(f2, "i-2", false); /* the same job id, another instance */
  make_ledger(f3, "i-3", true);
  assert_int_equal(pgt_fresh_db(url, sizeof url, db), 0);

  assert_int_equal(run_cli(NULL, "--help", out, sizeof out), 0);
  assert_non_null(strstr(out, "migrate-store --from FILE"));
  assert_int_equal(run_cli(url, "migrate-store", out, sizeof out), 64);
  assert_int_equal(migrate(NULL, f1, out, sizeof out), 78);
  assert_non_null(strstr(out, "DATABASE_URL"));

  assert_int_equal(migrate(url, f1, out, sizeof out), 0);
  assert_non_null(strstr(out, "1 ledger row(s)"));
  assert_int_equal(migrate(url, f2, out, sizeof out), 1);
  assert_non_null(strstr(out, "ledger 'job-1' is already in the PostgreSQL database"));
  assert_int_equal(migrate(url, f3, out, sizeof out), 1);
  assert_non_null(strstr(out, "leased"));

  /* What is there is still the first file's row. */
  struct nrd_store *st = NULL;
  struct nrd_ledger_row row;
  char err[256];
  const struct nrd_store_target t = { .url = url };
  assert_int_equal(nrd_store_open(&t, &st, NULL, err, sizeof err), NRD_OK);
  assert_int_equal(nrd_store_ledger_get(st, "job-1", &row), NRD_OK);
  assert_string_equal(row.instance_id, "i-1");
  nrd_ledger_row_cleanup(&row);
  nrd_store_close(st);
  tu_rmrf(dir);
  free(dir);
}

int main(void)
{
  pgt_require_server();
  if (!getenv("NRD_BINARY")) {
    fprintf(stderr, "NRD_BINARY is not set: skipped\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_copy_then_resume_once),
    cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
