/* Following the replacement until it runs (issue 14), end to end: real HTTP
 * into the service, real libcurl out to the simulator, whose new instances
 * go toCreate -> creating -> pulling -> running (or exited when their image
 * fails to pull). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/store.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define API "/api/instances/migration"
#define IMAGE "docker.io/acme/trainer:1.2"

static int64_t now_s(void)
{
  return nrd_now_ms() / 1000;
}

static void one_failed(struct tu_stack *s)
{
  cJSON *sc = tu_scenario();
  tu_add(sc, "instances", tu_instance("i-1", "web-1", "migrating"));
  tu_add(sc, "jobs", tu_job("job-1", "instanceMigrate", "i-1", now_s() - 60, "fail"));
  tu_stack_load(s, sc);
  cJSON_Delete(sc);
}

/* The ledger row of job-1, from GET .../recoveries (caller deletes). */
static cJSON *row_of_job(struct tu_stack *s)
{
  long status = 0;
  cJSON *ans = tu_stack_request(s, "GET", API "/recoveries", NULL, &status);
  assert_int_equal(status, 200);
  cJSON *row = NULL, *it;
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(ans, "recoveries")) {
    if (!strcmp(nrd_json_str(it, "jobId"), "job-1"))
      row = cJSON_Duplicate(it, true);
  }
  cJSON_Delete(ans);
  assert_non_null(row);
  return row;
}

static const char *row_state(struct tu_stack *s, char out[32])
{
  cJSON *row = row_of_job(s);
  snprintf(out, 32, "%s", nrd_json_str(row, "state"));
  cJSON_Delete(row);
  return out;
}

/* The outcome of i-1 with this action in a report, or NULL. */
static const cJSON *outcome_action(const cJSON *rep, const char *action)
{
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "result"), "outcomes")) {
    if (!strcmp(nrd_json_str(o, "instanceId"), "i-1") && !strcmp(nrd_json_str(o, "action"), action))
      return o;
  }
  return NULL;
}

/* The data of the outbox's event of this type, or NULL (caller deletes). */
static cJSON *event_data(struct tu_stack *s, const char *type)
{
  long status = 0;
  cJSON *ans = tu_stack_request(s, "GET", API "/events", NULL, &status), *data = NULL, *it;
  assert_int_equal(status, 200);
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(ans, "events")) {
    const cJSON *ev = cJSON_GetObjectItem(it, "event");
    if (!strcmp(nrd_json_str(it, "type"), type) && !data)
      data = cJSON_Duplicate(cJSON_GetObjectItem(ev, "data"), true);
  }
  cJSON_Delete(ans);
  return data;
}

/* A replacement that runs: the run that created it leaves it created (it
 * does not wait), the next sees it running and says so: state running,
 * outcome, instance.running. */
static void test_replacement_reaches_running(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  one_failed(&s);
  tu_stack_start(&s);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_non_null(outcome_action(rep, "recreated"));
  assert_null(outcome_action(rep, "running"));
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/v1/gpu/instance"), 0);
  char st[32];
  assert_string_equal(row_state(&s, st), "created");
  cJSON_Delete(rep);
  rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  const cJSON *o = outcome_action(rep, "running");
  assert_non_null(o);
  assert_non_null(nrd_json_str(o, "newInstanceId"));
  assert_string_equal(row_state(&s, st), "running");
  cJSON *row = row_of_job(&s);
  assert_non_null(nrd_json_str(row, "acceptedAt"));
  assert_non_null(nrd_json_str(row, "runningAt"));
  cJSON_Delete(row);
  cJSON *ev = event_data(&s, "instance.running");
  assert_non_null(ev);
  assert_string_equal(nrd_json_str(ev, "newInstanceId"), nrd_json_str(o, "newInstanceId"));
  cJSON_Delete(ev);
  assert_true(nrd_sim_count(s.sim, "GET", "/v1/gpu/instance") >= 1);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* A failed pull: start_failed with Novita's statusError, its event; nothing
 * deleted or recreated on our own, the old snapshot kept; retry, when asked,
 * makes a new replacement with a new name. */
static void test_failed_pull_is_start_failed(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  one_failed(&s);
  nrd_sim_set_start_times(s.sim, 0, 0, 50);
  nrd_sim_set_pull_failure(s.sim, IMAGE, "manifest unknown: trainer:1.2");
  tu_stack_start(&s);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  cJSON_Delete(rep);
  nrd_sleep_ms(100); /* past the simulated pull */
  rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  const cJSON *o = outcome_action(rep, "start_failed");
  assert_non_null(o);
  assert_non_null(strstr(nrd_json_str(o, "reason"), "manifest unknown"));
  cJSON *row = row_of_job(&s);
  assert_string_equal(nrd_json_str(row, "state"), "start_failed");
  const cJSON *se = cJSON_GetObjectItem(row, "statusError");
  assert_string_equal(nrd_json_str(se, "state"), "pullImageFailed");
  assert_string_equal(nrd_json_str(se, "message"), "manifest unknown: trainer:1.2");
  char first_name[300];
  snprintf(first_name, sizeof(first_name), "%s", nrd_json_str(row, "newName"));
  cJSON_Delete(row);
  cJSON *ev = event_data(&s, "instance.start_failed");
  assert_non_null(ev);
  assert_string_equal(nrd_json_str(cJSON_GetObjectItem(ev, "statusError"), "message"),
                      "manifest unknown: trainer:1.2");
  cJSON_Delete(ev);
  cJSON_Delete(rep);

  /* The old snapshot stays; the failed replacement is left alone. */
  struct nrd_store *st = NULL;
  char err[256];
  assert_int_equal(nrd_store_open_path(s.cfg.database_path, &st, NULL, err, sizeof(err)), NRD_OK);
  struct nrd_instance snap;
  assert_int_equal(nrd_store_snapshot_get(st, "i-1", &snap), NRD_OK);
  assert_string_equal(snap.image_url, IMAGE);
  nrd_instance_cleanup(&snap);
  nrd_store_close(st);
  rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  assert_int_equal(nrd_sim_count_by_name(s.sim, first_name), 1);

  /* retry, when asked: a new replacement with a new name on the next run. */
  nrd_sim_set_pull_failure(s.sim, IMAGE, NULL);
  cJSON *ans = tu_stack_request(&s, "POST", API "/recoveries/job-1/retry", "{}", &status);
  assert_int_equal(status, 200);
  assert_non_null(strstr(nrd_json_str(ans, "message"), "A new replacement named"));
  cJSON_Delete(ans);
  nrd_sleep_ms(2); /* a new name needs a new millisecond */
  rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_non_null(outcome_action(rep, "recreated"));
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 2);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  row = row_of_job(&s);
  assert_string_not_equal(nrd_json_str(row, "newName"), first_name);
  cJSON_Delete(row);
  assert_int_equal(nrd_sim_count_by_name(s.sim, first_name), 1);
  tu_stack_cleanup(&s);
}

/* A replacement slower than RECOVERY_START_TIMEOUT_SECONDS is start_failed. */
static void test_slow_replacement_times_out(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  one_failed(&s);
  nrd_sim_set_start_times(s.sim, 0, 0, 3600 * 1000);
  s.cfg.recovery_start_timeout_seconds = 1;
  tu_stack_start(&s);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_non_null(outcome_action(rep, "recreated"));
  assert_null(outcome_action(rep, "start_failed"));
  cJSON_Delete(rep);
  char st[32];
  assert_string_equal(row_state(&s, st), "created");
  nrd_sleep_ms(1200);
  rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  const cJSON *o = outcome_action(rep, "start_failed");
  assert_non_null(o);
  assert_non_null(strstr(nrd_json_str(o, "reason"), "did not reach running within 1 s"));
  cJSON_Delete(rep);
  assert_string_equal(row_state(&s, st), "start_failed");
  tu_stack_cleanup(&s);
}

/* Between runs, the light poller follows the row to running: no run, one
 * get per look. */
static void test_poller_between_runs(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  one_failed(&s);
  nrd_sim_set_start_times(s.sim, 100, 100, 300);
  s.cfg.recovery_start_poll_seconds = 1;
  tu_stack_start(&s);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_null(outcome_action(rep, "running"));
  cJSON_Delete(rep);
  size_t lists = nrd_sim_count(s.sim, "GET", "/v1/gpu/instances");
  char st[32] = "";
  for (int i = 0; i < 200 && strcmp(row_state(&s, st), "running"); i++)
    nrd_sleep_ms(100); /* a generous bound: the poller looks every second */
  assert_string_equal(st, "running");
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/v1/gpu/instances"), lists);
  cJSON *ev = event_data(&s, "instance.running");
  assert_non_null(ev);
  cJSON_Delete(ev);
  tu_stack_cleanup(&s);
}

/* More replacements to follow than one read of the store returns (200):
 * one look reaches every one of them, a batch after another, with one get
 * each. Before, a look read the 200 oldest only. */
static void test_every_row_in_one_look(void **state)
{
  enum { N = 230 };
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(N, 0);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.max_recoveries_per_run = N; /* the brake lets them all through */
  tu_stack_start(&s);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), N);
  cJSON_Delete(rep);
  size_t gets = nrd_sim_count(s.sim, "GET", "/v1/gpu/instance");
  rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  int running = 0;
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "result"), "outcomes"))
    running += !strcmp(nrd_json_str(o, "action"), "running");
  cJSON_Delete(rep);
  assert_int_equal(running, N);
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/v1/gpu/instance") - gets, N);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_replacement_reaches_running),
    cmocka_unit_test(test_failed_pull_is_start_failed),
    cmocka_unit_test(test_slow_replacement_times_out),
    cmocka_unit_test(test_poller_between_runs),
    cmocka_unit_test(test_every_row_in_one_look),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
