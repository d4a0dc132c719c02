/* What we do not handle (issue 14): a failed migration job on an instance
 * that is not migrating is reported `ignored`, logged and counted once, and
 * nothing is deleted; with RECOVER_STATUSES naming its status it is
 * recovered. End to end against the simulator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/metrics.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

static int64_t now_s(void)
{
  return nrd_now_ms() / 1000;
}

static void exited_with_failed_job(struct tu_stack *s)
{
  cJSON *sc = tu_scenario();
  cJSON *inst = tu_instance("i-ex", "web-ex", "exited");
  cJSON *se = cJSON_AddObjectToObject(inst, "statusError");
  nrd_json_add_str(se, "state", "migrateFailed");
  nrd_json_add_str(se, "message", "target node lost");
  tu_add(sc, "instances", inst);
  tu_add(sc, "jobs", tu_job("job-ex", "autoInstanceMigrate", "i-ex", now_s() - 60, "fail"));
  /* A healthy instance whose newest job succeeded is not reported. */
  tu_add(sc, "instances", tu_instance("i-ok", "web-ok", "running"));
  tu_add(sc, "jobs", tu_job("job-ok", "instanceMigrate", "i-ok", now_s() - 60, "success"));
  tu_stack_load(s, sc);
  cJSON_Delete(sc);
}

static double unhandled(const char *status)
{
  struct nrd_buf b;
  char key[96];
  nrd_buf_init(&b);
  nrd_metrics_render(&b);
  snprintf(key, sizeof(key), "nrd_failed_jobs_unhandled_total{status=\"%s\"} ", status);
  const char *at = strstr(b.data, key);
  double v = at ? strtod(at + strlen(key), NULL) : -1;
  nrd_buf_cleanup(&b);
  return v;
}

static void test_exited_is_ignored(void **state)
{
  (void)state;
  struct tu_stack s;
  nrd_metrics_reset();
  tu_stack_init(&s, NULL);
  exited_with_failed_job(&s);
  tu_stack_start(&s);
  long status = 0;
  for (int run = 0; run < 2; run++) {
    cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
    assert_int_equal(status, 200);
    const cJSON *o = tu_outcome_for(rep, "i-ex");
    assert_non_null(o);
    assert_string_equal(nrd_json_str(o, "action"), "ignored");
    assert_string_equal(nrd_json_str(o, "reason"), "not migrating (status exited)");
    assert_string_equal(nrd_json_str(o, "jobId"), "job-ex");
    assert_null(tu_outcome_for(rep, "i-ok"));
    assert_int_equal(tu_result_int(rep, "errors"), 0);
    cJSON_Delete(rep);
  }
  assert_true(unhandled("exited") == 1); /* once per job, not per run */
  assert_int_equal(nrd_sim_count(s.sim, "POST", NULL), 0);
  assert_int_equal(nrd_sim_instance_count(s.sim), 2);
  tu_stack_cleanup(&s);
}

static void test_recover_statuses_adds_exited(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  exited_with_failed_job(&s);
  free(s.cfg.recover_statuses);
  s.cfg.recover_statuses = nrd_xstrdup("migrating,exited");
  tu_stack_start(&s);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  const cJSON *o = tu_outcome_for(rep, "i-ex");
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "recreated");
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* The simulator fails a running instance's migration and leaves it exited. */
static void test_sim_failed_migration_left_exited(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  tu_add(sc, "instances", tu_instance("i-run", "web-run", "running"));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  char id[64];
  assert_int_equal(nrd_sim_fail_migration_as(s.sim, now_s() - 30, "exited", id), 0);
  assert_string_equal(id, "i-run");
  tu_stack_start(&s);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  const cJSON *o = tu_outcome_for(rep, "i-run");
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "ignored");
  assert_string_equal(nrd_json_str(o, "status"), "exited");
  assert_int_equal(nrd_sim_count(s.sim, "POST", NULL), 0);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* With nothing to recover, a jobs listing that fails does not fail the run
 * (only the ignored ones go unreported), as before the jobs were listed in
 * every run. */
static void test_jobs_down_with_nothing_to_recover(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  tu_add(sc, "instances", tu_instance("i-run", "web-run", "running"));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  struct nrd_sim_fault f = {
    .kind = NRD_SIM_STATUS, .match = "/v1/jobs", .status = 400, .reason = "VALIDATOR_PARAM"
  };
  assert_int_equal(nrd_sim_add_fault(s.sim, &f), 0);
  tu_stack_start(&s);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(rep, "success")));
  assert_true(nrd_sim_count(s.sim, "GET", "/v1/jobs") >= 1);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_exited_is_ignored),
    cmocka_unit_test(test_recover_statuses_adds_exited),
    cmocka_unit_test(test_sim_failed_migration_left_exited),
    cmocka_unit_test(test_jobs_down_with_nothing_to_recover),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
