/* The watch loop (issue 15), end to end against the simulator: a migration
 * job that fails while the service runs is recovered within a tick or so,
 * with no POST; restarts detect nothing twice and find what failed while
 * down; a tick is skipped while a run is active; 429 from the jobs list
 * slows the watch and fails no run; WATCH_INTERVAL_SECONDS=0 turns it off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nrd/json.h"
#include "nrd/metrics.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define STATUS_PATH "/api/instances/migration/scheduler/status"
/* The margin over the interval: an ASan build on a busy 2-core machine. */
#define MARGIN_MS 15000

/* i-000..i-(n-1) running, named trainer-NNN. */
static void start_fleet(struct tu_stack *s, int n, unsigned watch_seconds)
{
  cJSON *sc = tu_scenario();
  for (int i = 0; i < n; i++) {
    char id[16], name[32];
    snprintf(id, sizeof(id), "i-%03d", i);
    snprintf(name, sizeof(name), "trainer-%03d", i);
    tu_add(sc, "instances", tu_instance(id, name, "running"));
  }
  tu_stack_load(s, sc);
  cJSON_Delete(sc);
  s->cfg.watch_interval_seconds = watch_seconds;
  s->cfg.recovery_start_poll_seconds = 1; /* the poller follows replacements to running */
  nrd_metrics_reset();
  tu_stack_start(s);
}

/* The scheduler status' "watch" object's number field (-1 when absent). */
static double watch_num(struct tu_stack *s, const char *key)
{
  long status = 0;
  cJSON *st = tu_stack_request(s, "GET", STATUS_PATH, NULL, &status);
  assert_int_equal(status, 200);
  const cJSON *v =
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(st, "watch"), key);
  double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
  cJSON_Delete(st);
  return d;
}

static bool wait_ticks(struct tu_stack *s, double ticks, int64_t timeout_ms)
{
  int64_t end = nrd_mono_ms() + timeout_ms;
  while (nrd_mono_ms() < end) {
    if (watch_num(s, "ticks") >= ticks)
      return true;
    nrd_sleep_ms(50);
  }
  return false;
}

static bool wait_creates(struct tu_stack *s, size_t n, int64_t timeout_ms)
{
  int64_t end = nrd_mono_ms() + timeout_ms;
  while (nrd_mono_ms() < end) {
    if (nrd_sim_count(s->sim, "POST", "/gpu/instance/create") >= n)
      return true;
    nrd_sleep_ms(20);
  }
  return false;
}

/* Requests whose query holds text. */
static size_t count_query(struct tu_stack *s, const char *text)
{
  struct nrd_sim_request *r = NULL;
  size_t n = nrd_sim_requests(s->sim, &r), hits = 0;
  for (size_t i = 0; i < n; i++)
    if (r[i].query && strstr(r[i].query, text))
      hits++;
  nrd_sim_requests_free(r, n);
  return hits;
}

static bool metric_has(const char *line)
{
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_metrics_render(&b);
  bool has = strstr(b.data, line) != NULL;
  nrd_buf_cleanup(&b);
  return has;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" to ms since the epoch. */
static bool parse_at(const char *text, int64_t *ms)
{
  struct tm tm = { 0 };
  int milli = 0;
  if (!text || sscanf(text, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &milli) != 7)
    return false;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *ms = (int64_t)timegm(&tm) * 1000 + milli;
  return true;
}

/* Snapshots stored by a run before anything fails, as the CLI's (no POST
 * to the service). */
static void first_run(struct tu_stack *s)
{
  char *result = NULL, *error = NULL;
  assert_int_equal(nrd_runner_run_sync(s->runner, NRD_TRIGGER_CLI, false, &result, &error), 0);
  free(result);
  free(error);
}

/* A migration runs for longer than a tick, then fails: the watch recovers it
 * within the interval plus the margin, without any POST and without a sync
 * (the snapshot is stored), through a run of trigger "watch". */
static void test_failure_recovered_without_post(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_fleet(&s, 5, 1);
  first_run(&s);
  int64_t now_s = nrd_now_ms() / 1000;
  assert_int_equal(nrd_sim_start_migration(s.sim, "i-002", "job-w1", now_s - 30), 0);
  double ticks = watch_num(&s, "ticks");
  assert_true(wait_ticks(&s, ticks + 2, MARGIN_MS)); /* running: nothing to do */
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);

  nrd_sim_clear_requests(s.sim);
  int64_t failed_at = nrd_mono_ms();
  assert_int_equal(nrd_sim_set_job_state(s.sim, "job-w1", "fail"), 0);
  assert_true(wait_creates(&s, 1, 1000 + MARGIN_MS));
  assert_true(nrd_mono_ms() - failed_at <= 1000 + MARGIN_MS);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/gpu/instances"), 0); /* no sync */
  assert_true(nrd_sim_count(s.sim, "GET", "/gpu/instance") >= 1);     /* confirmed */
  assert_true(count_query(&s, "state=fail") >= 2);
  assert_int_equal(tu_replacements_of(s.sim, 2), 1);
  assert_int_equal(watch_num(&s, "detected"), 1);

  long status = 0;
  cJSON *st = tu_stack_request(&s, "GET", STATUS_PATH, NULL, &status);
  const char *run_id = nrd_json_str(cJSON_GetObjectItem(st, "watch"), "lastRunId");
  assert_non_null(run_id);
  char path[160];
  snprintf(path, sizeof(path), "/api/instances/migration/runs/%s", run_id);
  cJSON_Delete(st);
  /* The run ends (its report written) shortly after the create. */
  cJSON *run = NULL;
  for (int i = 0; i < 200; i++) {
    cJSON_Delete(run);
    run = tu_stack_request(&s, "GET", path, NULL, &status);
    const char *rs = nrd_json_str(run, "state");
    if (rs && strcmp(rs, "running"))
      break;
    nrd_sleep_ms(50);
  }
  assert_string_equal(nrd_json_str(run, "trigger"), "watch");
  assert_string_equal(nrd_json_str(run, "state"), "done");
  cJSON_Delete(run);
  assert_true(metric_has("nrd_watch_detect_seconds_count 1\n"));
  assert_true(metric_has("nrd_runs_total{trigger=\"watch\",outcome=\"done\"} 1\n"));
  /* The next ticks see the job as known: nothing more is sent. */
  ticks = watch_num(&s, "ticks");
  assert_true(wait_ticks(&s, ticks + 2, MARGIN_MS));
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  assert_true(metric_has("nrd_time_to_recovery_seconds_count{stage=\"create_accepted\"} 1\n"));
  /* The simulator's replacement runs at once: the poller follows it to
   * running, and the next tick observes that stage too. */
  bool running = false;
  for (int64_t end = nrd_mono_ms() + MARGIN_MS; !running && nrd_mono_ms() < end;) {
    running = metric_has("nrd_time_to_recovery_seconds_count{stage=\"running\"} 1\n");
    if (!running)
      nrd_sleep_ms(100);
  }
  assert_true(running);
  assert_false(metric_has("nrd_http_requests_total{route=\"check_failed\"")); /* no POST */
  tu_stack_cleanup(&s);
}

/* Restart: job A recovered before the stop is not detected again; job B,
 * failed while the service was down and without a snapshot, is found by the
 * first tick after start (a full run of trigger "watch" syncs first). */
static void test_restart(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_fleet(&s, 5, 1);
  first_run(&s);
  int64_t now_s = nrd_now_ms() / 1000;
  assert_int_equal(nrd_sim_start_migration(s.sim, "i-001", "job-a", now_s - 60), 0);
  assert_int_equal(nrd_sim_set_job_state(s.sim, "job-a", "fail"), 0);
  assert_true(wait_creates(&s, 1, 1000 + MARGIN_MS));
  assert_true(wait_ticks(&s, watch_num(&s, "ticks") + 1, MARGIN_MS));
  tu_stack_stop_service(&s);

  /* While down: B fails, on an instance no run has seen. */
  cJSON *b = tu_instance("i-new", "late-comer", "running");
  assert_int_equal(nrd_sim_put_instance(s.sim, b), 0);
  cJSON_Delete(b);
  assert_int_equal(nrd_sim_start_migration(s.sim, "i-new", "job-b", now_s - 10), 0);
  assert_int_equal(nrd_sim_set_job_state(s.sim, "job-b", "fail"), 0);
  s.cfg.watch_interval_seconds = 600; /* only the first tick, at start */
  tu_stack_start(&s);
  assert_true(wait_creates(&s, 2, MARGIN_MS));
  assert_int_equal(watch_num(&s, "detected"), 1);
  assert_int_equal(watch_num(&s, "failedJobsSeen"), 2); /* job-a known, job-b new */
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 2);
  assert_int_equal(tu_replacements_of(s.sim, 1), 1);
  assert_int_equal(nrd_sim_count_by_name(s.sim, "late-comer"), 0);
  tu_stack_cleanup(&s);
}

/* While a run is active, a tick is skipped: no failed-jobs listing is sent. */
static void test_skips_tick_during_run(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_fleet(&s, 3, 1);
  assert_true(wait_ticks(&s, 1, MARGIN_MS));
  struct nrd_sim_fault slow = {
    .kind = NRD_SIM_DELAY, .match = "/v1/gpu/instances", .delay_ms = 3500, .count = 1
  };
  assert_int_equal(nrd_sim_add_fault(s.sim, &slow), 0);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, NULL, &status); /* in the background */
  assert_int_equal(status, 202);
  cJSON_Delete(rep);
  nrd_sleep_ms(300);
  nrd_sim_clear_requests(s.sim);
  double ticks = watch_num(&s, "ticks");
  nrd_sleep_ms(2500); /* the run is still listing: two ticks fall due */
  assert_int_equal(count_query(&s, "state=fail"), 0);
  assert_int_equal(watch_num(&s, "ticks"), ticks);
  assert_false(metric_has("nrd_watch_ticks_total{result=\"skipped\"} 0\n"));
  /* After the run, ticks go on. */
  assert_true(wait_ticks(&s, ticks + 1, MARGIN_MS));
  tu_stack_cleanup(&s);
}

/* 429 with Retry-After on the jobs list: the watch's tick fails after its
 * retries and the next waits longer; a run meanwhile completes, and the
 * failed job is still recovered once the 429s stop. */
static void test_429_slows_watch_never_fails_run(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.max_retry_attempts = 1;
  start_fleet(&s, 4, 1);
  first_run(&s);
  assert_true(wait_ticks(&s, 1, MARGIN_MS));
  struct nrd_sim_fault limit = {
    .kind = NRD_SIM_RETRY_AFTER, .match = "/v1/jobs", .retry_after = "1", .count = 2
  };
  assert_int_equal(nrd_sim_add_fault(s.sim, &limit), 0);
  int64_t now_s = nrd_now_ms() / 1000;
  assert_int_equal(nrd_sim_start_migration(s.sim, "i-003", "job-r", now_s - 60), 0);
  assert_int_equal(nrd_sim_set_job_state(s.sim, "job-r", "fail"), 0);

  int64_t end = nrd_mono_ms() + MARGIN_MS;
  while (watch_num(&s, "consecutiveFailures") < 1 && nrd_mono_ms() < end)
    nrd_sleep_ms(20);
  assert_int_equal(watch_num(&s, "consecutiveFailures"), 1);
  long status = 0;
  cJSON *st = tu_stack_request(&s, "GET", STATUS_PATH, NULL, &status);
  const cJSON *w = cJSON_GetObjectItem(st, "watch");
  assert_non_null(nrd_json_str(w, "lastError"));
  int64_t last = 0, next = 0;
  assert_true(parse_at(nrd_json_str(w, "lastTickAt"), &last));
  assert_true(parse_at(nrd_json_str(w, "nextTickAt"), &next));
  assert_true(next - last >= 1900); /* twice the interval */
  cJSON_Delete(st);

  /* A run now is not failed by the watch's 429s (nor the breaker). */
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  cJSON_Delete(rep);
  assert_true(wait_creates(&s, 1, MARGIN_MS));
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  assert_true(metric_has("nrd_runs_total{trigger=\"api\",outcome=\"failed\"} 0\n"));
  assert_true(metric_has("nrd_runs_total{trigger=\"watch\",outcome=\"failed\"} 0\n"));
  tu_stack_cleanup(&s);
}

/* A failed job whose instance is running again, and one whose instance
 * migrated again since, are let go: looked at once (one GET for the first,
 * none for the second), never recovered, counted as seen. */
static void test_let_go(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  int64_t now_s = nrd_now_ms() / 1000;
  cJSON *sc = tu_scenario();
  tu_add(sc, "instances", tu_instance("i-000", "fixed", "running"));
  tu_add(sc, "instances", tu_instance("i-001", "moved-on", "migrating"));
  tu_add(sc, "jobs", tu_job("job-fixed", "instanceMigrate", "i-000", now_s - 120, "fail"));
  tu_add(sc, "jobs", tu_job("job-old", "autoInstanceMigrate", "i-001", now_s - 120, "fail"));
  tu_add(sc, "jobs", tu_job("job-new", "instanceMigrate", "i-001", now_s - 60, "running"));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.watch_interval_seconds = 1;
  tu_stack_start(&s);
  assert_true(wait_ticks(&s, 3, MARGIN_MS));
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/gpu/instance"), 1);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);
  assert_int_equal(watch_num(&s, "detected"), 0);
  assert_int_equal(watch_num(&s, "failedJobsSeen"), 2);
  tu_stack_cleanup(&s);
}

/* WATCH_INTERVAL_SECONDS=0: no watch, no jobs listing, nothing recovered. */
static void test_watch_off(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.migration_interval_minutes = 60; /* the scheduler runs; the watch does not */
  start_fleet(&s, 3, 0);
  int64_t now_s = nrd_now_ms() / 1000;
  assert_int_equal(nrd_sim_start_migration(s.sim, "i-000", "job-off", now_s - 60), 0);
  assert_int_equal(nrd_sim_set_job_state(s.sim, "job-off", "fail"), 0);
  nrd_sleep_ms(2500);
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/v1/jobs"), 0);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);
  long status = 0;
  cJSON *st = tu_stack_request(&s, "GET", STATUS_PATH, NULL, &status);
  assert_int_equal(status, 200);
  const cJSON *w = cJSON_GetObjectItem(st, "watch");
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(w, "enabled")));
  cJSON_Delete(st);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_failure_recovered_without_post),
    cmocka_unit_test(test_restart),
    cmocka_unit_test(test_skips_tick_during_run),
    cmocka_unit_test(test_429_slows_watch_never_fails_run),
    cmocka_unit_test(test_let_go),
    cmocka_unit_test(test_watch_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
