/* Exactly one replacement per failed job, across retries, ambiguous creates,
 * vanished instances and concurrent callers (in-process service). The crash
 * rounds with kill -9 live in test_crash.c. Built twice: on SQLite, and as
 * test_pg_shared_exactly_once on PostgreSQL (backend_test.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/store.h"
#include "nrd/util.h"
#include "backend_test.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

static const char *immediate = "{\"immediate\":true}";

/* The stack on this build's backend: its SQLite file, or a fresh
 * PostgreSQL database. */
static void init_stack(struct tu_stack *s)
{
  char url[512];
  tu_stack_init(s, NULL);
  if (tb_fresh_url(url, sizeof url))
    s->cfg.database_url = nrd_xstrdup(url);
}

static void start_with(struct tu_stack *s, cJSON *sc)
{
  tu_stack_load(s, sc);
  cJSON_Delete(sc);
  tu_stack_start(s);
}

static cJSON *run_now(struct tu_stack *s)
{
  long status = 0;
  cJSON *rep = tu_stack_check_failed(s, immediate, &status);
  assert_non_null(rep);
  assert_true(status == 200 || status == 502);
  return rep;
}

/* Every failed instance "trainer-NNN" has exactly one replacement; and the
 * rows were in this build's store: a SQLite file exists only on SQLite. */
static void assert_one_replacement_each(struct tu_stack *s, int failed)
{
  char why[128] = "";
  if (!tu_one_replacement_each(s->sim, failed, -1, why, sizeof(why)))
    fail_msg("%s", why);
  bool file = access(s->cfg.database_path, F_OK) == 0;
  if (file == tb_is_pg())
    fail_msg("backend %s, yet the SQLite file %s", tb_backend(), file ? "exists" : "is missing");
}

/* (a) The delete answers 500 (past every retry) once: the row stays open,
 * the next run deletes and creates; one create in all. */
static void test_failed_delete_then_one_create(void **state)
{
  (void)state;
  struct tu_stack s;
  init_stack(&s);
  s.cfg.max_retry_attempts = 0;
  start_with(&s, tu_failed_fleet(1, 2));
  struct nrd_sim_fault f = { .kind = NRD_SIM_STATUS, .match = "delete", .status = 500, .count = 1 };
  nrd_sim_add_fault(s.sim, &f);

  cJSON *rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "errors"), 1);
  assert_string_equal(nrd_json_str(tu_outcome_for(rep, "i-000"), "action"), "failed");
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 0);

  rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  cJSON_Delete(rep);
  rep = run_now(&s); /* and nothing more afterwards */
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 0);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);
  assert_one_replacement_each(&s, 1);
  tu_stack_cleanup(&s);
}

/* (b) The create times out after the simulator accepted it: no blind second
 * create; the same run (issue 13: transient create failures are retried in
 * the run) looks the fixed name up and adopts that instance. */
static void test_ambiguous_create_is_adopted(void **state)
{
  (void)state;
  struct tu_stack s;
  init_stack(&s);
  s.cfg.request_timeout_ms = 300;
  start_with(&s, tu_failed_fleet(1, 0));
  struct nrd_sim_fault f = {
    .kind = NRD_SIM_APPLY_THEN_DELAY, .match = "create", .delay_ms = 1000, .count = 1
  };
  nrd_sim_add_fault(s.sim, &f);

  cJSON *rep = run_now(&s);
  const cJSON *o = tu_outcome_for(rep, "i-000");
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "adopted");
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);

  rep = run_now(&s); /* and nothing more afterwards */
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 0);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);
  assert_one_replacement_each(&s, 1);
  tu_stack_cleanup(&s);
}

struct bg_run {
  struct tu_stack *s;
  cJSON *rep;
};

static void *bg_run_main(void *arg)
{
  struct bg_run *b = arg;
  long status = 0;
  b->rep = tu_stack_check_failed(b->s, immediate, &status);
  return NULL;
}

/* Another process takes the row in `creating` over or, with take false,
 * lets the row it holds go. The takeover is the holder's lease ending (let
 * go in its name, as a lapse would) and then the other process's claim:
 * the same on both backends (on PostgreSQL leases run on the database's
 * clock, so no process's clock can see one end early). Through the store
 * interface, on the service's own store. */
static void other_process(struct tu_stack *s, bool take)
{
  struct nrd_store *st = NULL;
  char err[256] = "";
  struct nrd_ledger_row *rows = NULL, row = { 0 };
  size_t n = 0;
  const struct nrd_store_target t = nrd_store_target_of(&s->cfg);
  if (nrd_store_open(&t, &st, NULL, err, sizeof err) != NRD_OK)
    fail_msg("open: %s", err);
  assert_true((nrd_store_file(st) == NULL) == tb_is_pg());
  assert_int_equal(nrd_store_ledger_list(st, NRD_ROW_CREATING, 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_non_null(rows[0].owner);
  if (take) {
    assert_string_not_equal(rows[0].owner, "another-process");
    assert_int_equal(nrd_store_ledger_release(st, rows[0].job_id, rows[0].owner), NRD_OK);
    assert_int_equal(nrd_store_ledger_claim(st, rows[0].job_id, "another-process", "run-other",
                                            nrd_now_ms(), 3600 * 1000, &row),
                     NRD_OK);
    assert_string_equal(row.owner, "another-process");
  } else {
    assert_string_equal(rows[0].owner, "another-process");
    assert_int_equal(nrd_store_ledger_release(st, rows[0].job_id, "another-process"), NRD_OK);
  }
  nrd_ledger_row_cleanup(&row);
  nrd_ledger_rows_free(rows, n);
  nrd_store_close(st);
}

/* The row's lease passes to another process while its create is in flight
 * (the other process took it over after this one looked stalled): the
 * run's write after the create finds the row not its own, so it reports
 * the row deferred, naming the lease, instead of recreated; once the row is
 * free again the next run finds the replacement by name: one create. */
static void test_lease_lost_mid_row(void **state)
{
  (void)state;
  struct tu_stack s;
  init_stack(&s);
  start_with(&s, tu_failed_fleet(1, 0));
  struct nrd_sim_fault f = {
    .kind = NRD_SIM_DELAY, .match = "create", .delay_ms = 1500, .count = 1
  };
  nrd_sim_add_fault(s.sim, &f);

  struct bg_run b = { .s = &s };
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, bg_run_main, &b), 0);
  for (int64_t until = nrd_mono_ms() + 20000;
       nrd_sim_count(s.sim, "POST", "/gpu/instance/create") < 1 && nrd_mono_ms() < until;)
    nrd_sleep_ms(10);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);
  other_process(&s, true);
  pthread_join(t, NULL);
  assert_non_null(b.rep);
  const cJSON *o = tu_outcome_for(b.rep, "i-000");
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "deferred");
  assert_non_null(strstr(nrd_json_str(o, "reason"), "lease passed to another process"));
  assert_int_equal(tu_result_int(b.rep, "instancesRecreated"), 0);
  cJSON_Delete(b.rep);

  /* The other process is gone: its lease is let go, the next run adopts. */
  other_process(&s, false);
  cJSON *rep = run_now(&s);
  assert_string_equal(nrd_json_str(tu_outcome_for(rep, "i-000"), "action"), "adopted");
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);
  assert_one_replacement_each(&s, 1);
  tu_stack_cleanup(&s);
}

/* An instance that vanished before we sent its delete was removed by someone
 * else: abandoned, nothing created. */
static void test_vanished_before_delete_is_abandoned(void **state)
{
  (void)state;
  struct tu_stack s;
  init_stack(&s);
  s.cfg.max_retry_attempts = 0;
  start_with(&s, tu_failed_fleet(1, 0));
  /* Run 1: the product look-up is not needed; make the delete fail so the
   * row stays pending... then the instance disappears on its own. */
  struct nrd_sim_fault f = { .kind = NRD_SIM_STATUS, .match = "delete", .status = 503, .count = 1 };
  nrd_sim_add_fault(s.sim, &f);
  cJSON *rep = run_now(&s);
  cJSON_Delete(rep);
  /* The row is now 'deleting' (delete sent): gone means deleted by us. */
  nrd_sim_remove_instance(s.sim, "i-000");
  rep = run_now(&s);
  assert_string_equal(nrd_json_str(tu_outcome_for(rep, "i-000"), "action"), "recreated");
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);

  /* Never acted on: a new failed job whose instance is gone by the time the
   * row is driven is abandoned. Simulate with a ledger row from a first run
   * in dry-run mode, then the instance removed. */
  init_stack(&s);
  start_with(&s, tu_failed_fleet(1, 0));
  long status = 0;
  rep = tu_stack_check_failed(&s, "{\"immediate\":true,\"dryRun\":true}", &status);
  assert_int_equal(status, 200);
  cJSON_Delete(rep);
  nrd_sim_remove_instance(s.sim, "i-000");
  rep = run_now(&s);
  const cJSON *o = tu_outcome_for(rep, "i-000");
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "abandoned");
  assert_non_null(strstr(nrd_json_str(o, "reason"), "someone else"));
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 0);
  tu_stack_cleanup(&s);
}

struct poster {
  struct tu_stack *s;
  bool immediate;
  char run_id[64];
  long status;
};

static void *post_one(void *arg)
{
  struct poster *p = arg;
  cJSON *rep = tu_stack_check_failed(p->s, p->immediate ? immediate : NULL, &p->status);
  const char *id = p->immediate ? nrd_json_str(cJSON_GetObjectItem(rep, "result"), "runId")
                                : nrd_json_str(rep, "runId");
  snprintf(p->run_id, sizeof(p->run_id), "%s", id ? id : "");
  cJSON_Delete(rep);
  return NULL;
}

/* (d) 20 concurrent POSTs (immediate and background) join one run. */
static void test_concurrent_posts_join_one_run(void **state)
{
  (void)state;
  struct tu_stack s;
  init_stack(&s);
  start_with(&s, tu_failed_fleet(10, 10));
  nrd_sim_set_latency(s.sim, 100); /* a run long enough for all to arrive */
  struct poster p[20];
  pthread_t th[20];
  /* The first caller starts the run; the others arrive while it runs. */
  long status = 0;
  cJSON *acc = tu_stack_check_failed(&s, NULL, &status);
  assert_int_equal(status, 202);
  char first[64];
  snprintf(first, sizeof(first), "%s", nrd_json_str(acc, "runId"));
  cJSON_Delete(acc);
  for (int i = 0; i < 20; i++) {
    p[i] = (struct poster){ .s = &s, .immediate = i % 2 == 0 };
    assert_int_equal(pthread_create(&th[i], NULL, post_one, &p[i]), 0);
  }
  for (int i = 0; i < 20; i++) {
    pthread_join(th[i], NULL);
    assert_true(p[i].status == 200 || p[i].status == 202);
    assert_string_equal(p[i].run_id, first);
  }
  /* One run: the instances were listed once (one page at pageSize 100). */
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/v1/gpu/instances"), 1);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 10);
  assert_one_replacement_each(&s, 10);
  tu_stack_cleanup(&s);
}

int main(void)
{
  tb_require();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_failed_delete_then_one_create),
    cmocka_unit_test(test_ambiguous_create_is_adopted),
    cmocka_unit_test(test_vanished_before_delete_is_abandoned),
    cmocka_unit_test(test_lease_lost_mid_row),
    cmocka_unit_test(test_concurrent_posts_join_one_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
