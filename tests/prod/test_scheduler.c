/* The scheduler as an operator drives it. Against the real binary with
 * MIGRATION_INTERVAL_MINUTES=0: status says disabled, trigger still starts a
 * run (recorded with trigger "scheduler"), pause refuses triggers (409) and no
 * run starts, resume lets them through again. In-process with a 1-minute
 * interval: the next run is announced about 60 s ahead (nobody waits for it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "proc.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define FAILED 3
#define API "/api/instances/migration"

static cJSON *status_of(unsigned port)
{
  long st = 0;
  cJSON *s = prod_request(port, "GET", API "/scheduler/status", NULL, &st);
  assert_int_equal(st, 200);
  assert_non_null(s);
  return s;
}

static bool bool_field(const cJSON *o, const char *key)
{
  const cJSON *b = cJSON_GetObjectItem(o, key);
  if (!cJSON_IsBool(b))
    fail_msg("field %s is not a boolean", key);
  return cJSON_IsTrue(b);
}

/* Polls runs/{id} until it is no longer running; returns the record. */
static cJSON *wait_run(unsigned port, const char *run_id)
{
  char path[256];
  snprintf(path, sizeof(path), API "/runs/%s", run_id);
  int64_t until = nrd_mono_ms() + 20000;
  while (nrd_mono_ms() < until) {
    long st = 0;
    cJSON *rec = prod_request(port, "GET", path, NULL, &st);
    assert_int_equal(st, 200);
    const char *state = nrd_json_str(rec, "state");
    assert_non_null(state);
    if (strcmp(state, "running"))
      return rec;
    cJSON_Delete(rec);
    nrd_sleep_ms(50);
  }
  fail_msg("run %s still running after 20 s", run_id);
  return NULL;
}

/* POST trigger; 202 with a runId (copied to run_id). */
static void trigger_ok(unsigned port, char run_id[64])
{
  long st = 0;
  cJSON *t = prod_request(port, "POST", API "/scheduler/trigger", NULL, &st);
  assert_int_equal(st, 202);
  const char *id = nrd_json_str(t, "runId");
  assert_non_null(id);
  assert_true(strlen(id) < 64);
  assert_string_equal(nrd_json_str(t, "jobId"), id);
  snprintf(run_id, 64, "%s", id);
  cJSON_Delete(t);
}

static void test_disabled_scheduler_trigger_pause_resume(void **state)
{
  (void)state;
  struct prod_world w;
  struct prod_proc p;
  char run1[64], run2[64];
  long st = 0;
  int code = -1;

  if (!getenv("NRD_BINARY"))
    skip();
  const char *const extra[] = { "MIGRATION_INTERVAL_MINUTES=0", NULL };
  prod_world_init(&w, 0, FAILED, 2, extra);
  prod_start_serve(&w, &p, "serve.log");

  /* Interval 0: disabled, nothing planned, nothing run yet. */
  cJSON *s = status_of(p.port);
  assert_false(bool_field(s, "enabled"));
  assert_false(bool_field(s, "paused"));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(s, "nextRunAt")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(s, "lastRunId")));
  cJSON_Delete(s);

  /* Trigger works even when disabled; the run is the scheduler's. */
  trigger_ok(p.port, run1);
  cJSON *rec = wait_run(p.port, run1);
  assert_string_equal(nrd_json_str(rec, "state"), "done");
  assert_string_equal(nrd_json_str(rec, "trigger"), "scheduler");
  int64_t recreated = -1;
  assert_true(nrd_json_i64(cJSON_GetObjectItem(rec, "result"), "instancesRecreated", &recreated));
  assert_int_equal(recreated, FAILED);
  cJSON_Delete(rec);
  s = status_of(p.port);
  assert_string_equal(nrd_json_str(s, "lastRunId"), run1);
  int64_t triggered = -1;
  assert_true(nrd_json_i64(s, "totalTriggered", &triggered));
  assert_int_equal(triggered, 1);
  cJSON_Delete(s);

  /* Pause: trigger refused with 409, and no run starts. */
  cJSON *pa = prod_request(p.port, "POST", API "/scheduler/pause", NULL, &st);
  assert_int_equal(st, 200);
  assert_true(bool_field(pa, "paused"));
  cJSON_Delete(pa);
  size_t listings = nrd_sim_count(w.sim, "GET", "/gpu/instances");
  cJSON *t = prod_request(p.port, "POST", API "/scheduler/trigger", NULL, &st);
  assert_int_equal(st, 409);
  assert_false(bool_field(t, "success"));
  assert_string_equal(nrd_json_str(cJSON_GetObjectItem(t, "error"), "code"), "SCHEDULER_PAUSED");
  cJSON_Delete(t);
  nrd_sleep_ms(500);
  assert_int_equal(nrd_sim_count(w.sim, "GET", "/gpu/instances"), listings);
  s = status_of(p.port);
  assert_true(bool_field(s, "paused"));
  assert_false(bool_field(s, "running"));
  assert_string_equal(nrd_json_str(s, "lastRunId"), run1);
  cJSON_Delete(s);

  /* Resume: trigger starts a new run again. */
  cJSON *re = prod_request(p.port, "POST", API "/scheduler/resume", NULL, &st);
  assert_int_equal(st, 200);
  assert_false(bool_field(re, "paused"));
  cJSON_Delete(re);
  trigger_ok(p.port, run2);
  assert_string_not_equal(run1, run2);
  rec = wait_run(p.port, run2);
  assert_string_equal(nrd_json_str(rec, "state"), "done");
  assert_string_equal(nrd_json_str(rec, "trigger"), "scheduler");
  cJSON_Delete(rec);
  assert_true(nrd_sim_count(w.sim, "GET", "/gpu/instances") > listings);
  /* Every failed instance was recreated once, by the first run only. */
  assert_int_equal(nrd_sim_count(w.sim, "POST", "/gpu/instance/create"), FAILED);

  kill(p.pid, SIGTERM);
  assert_true(prod_wait_exit(&p, 10000, &code));
  assert_int_equal(code, 0);
  prod_world_cleanup(&w);
}

/* nextRunAt of a status, checked to be within [lo, hi] ms of now. */
static void assert_next_run_in(struct tu_stack *s, int64_t lo, int64_t hi)
{
  long st = 0;
  cJSON *j = tu_stack_request(s, "GET", API "/scheduler/status", NULL, &st);
  assert_int_equal(st, 200);
  assert_true(bool_field(j, "enabled"));
  int64_t next = prod_iso_ms(nrd_json_str(j, "nextRunAt"));
  int64_t ahead = next - nrd_now_ms();
  if (next < 0 || ahead < lo || ahead > hi)
    fail_msg("nextRunAt %s is %lld ms ahead; expected %lld..%lld",
             nrd_json_str(j, "nextRunAt") ? nrd_json_str(j, "nextRunAt") : "(none)",
             (long long)ahead, (long long)lo, (long long)hi);
  cJSON_Delete(j);
}

/* How many of this process's descriptors are open on the file at path. */
static int open_fds_to(const char *path)
{
  char real[4096], link[300], target[4096];
  if (!realpath(path, real))
    fail_msg("no file at %s", path);
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(link, target, sizeof(target) - 1);
    if (len > 0) {
      target[len] = '\0';
      n += strcmp(target, real) == 0;
    }
  }
  closedir(d);
  return n;
}

static void test_one_minute_interval_plans_next_run(void **state)
{
  (void)state;
  struct tu_stack s;
  long st = 0;

  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(1, 1);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.migration_interval_minutes = 1;
  tu_stack_start(&s);

  /* Asked at once after start: the first run is a minute away. */
  assert_next_run_in(&s, 55000, 60500);
  cJSON *j = tu_stack_request(&s, "GET", API "/scheduler/status", NULL, &st);
  assert_false(bool_field(j, "paused"));
  assert_true(bool_field(j, "leader")); /* SQLite: every process leads */
  assert_non_null(nrd_json_str(j, "leaderSince"));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "lastRunId")));
  int64_t minutes = -1;
  assert_true(nrd_json_i64(j, "intervalMinutes", &minutes));
  assert_int_equal(minutes, 1);
  cJSON_Delete(j);

  /* Paused: no next run announced; resumed: a full interval from now. */
  cJSON_Delete(tu_stack_request(&s, "POST", API "/scheduler/pause", NULL, &st));
  assert_int_equal(st, 200);
  j = tu_stack_request(&s, "GET", API "/scheduler/status", NULL, &st);
  assert_true(bool_field(j, "paused"));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "nextRunAt")));
  cJSON_Delete(j);
  nrd_sleep_ms(1200);
  cJSON_Delete(tu_stack_request(&s, "POST", API "/scheduler/resume", NULL, &st));
  assert_int_equal(st, 200);
  assert_next_run_in(&s, 58500, 60500);
  /* Nothing ran: the interval has not passed. */
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/gpu/instances"), 0);

  /* Straight from nrd_scheduler_create, before its thread had a chance to
   * run: the status already announces the next run a minute ahead. */
  for (int i = 0; i < 50; i++) {
    int fds = open_fds_to(s.cfg.database_path);
    struct nrd_scheduler *own = nrd_scheduler_create(&s.cfg, s.runner);
    /* SQLite: every process leads, with no connection of its own for it. */
    assert_int_equal(open_fds_to(s.cfg.database_path), fds);
    char *json = nrd_scheduler_status_json(own);
    int64_t now = nrd_now_ms();
    nrd_scheduler_destroy(own);
    cJSON *o = cJSON_Parse(json);
    int64_t ahead = prod_iso_ms(nrd_json_str(o, "nextRunAt")) - now;
    if (ahead < 59000 || ahead > 60500)
      fail_msg("round %d: nextRunAt %s is %lld ms ahead", i, nrd_json_str(o, "nextRunAt"),
               (long long)ahead);
    cJSON_Delete(o);
    free(json);
  }
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_disabled_scheduler_trigger_pause_resume),
    cmocka_unit_test(test_one_minute_interval_plans_next_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
