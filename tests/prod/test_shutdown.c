/* Graceful shutdown of the real binary: SIGTERM (and SIGINT) in the middle of
 * an immediate run of 30 recoveries against a slow Novita. The process exits 0
 * within 10 s (Docker's grace), the waiting caller gets an answer, and a
 * restarted service finishes the work: every failed instance ends with exactly
 * one replacement, none lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "proc.h"
#include "scenario.h"
#include "testutil.h"

#define FAILED 30
#define RUNNING 10
#define GRACE_MS 10000

/* An immediate check-failed in its own thread. */
struct caller {
  char url[128];
  int rc;
  long status;
  char *body;
  int64_t answered_mono_ms;
};

static void *caller_main(void *arg)
{
  struct caller *c = arg;
  const char *const headers[] = { "Content-Type: application/json", NULL };
  struct tu_resp r = { 0 };
  c->rc = tu_http("POST", c->url, headers, "{\"immediate\":true}", &r);
  c->answered_mono_ms = nrd_mono_ms();
  c->status = r.status;
  c->body = r.body ? nrd_xstrdup(r.body) : NULL;
  tu_resp_cleanup(&r);
  return NULL;
}

/* Replacements per failed instance, by name: exactly one each, old ones gone. */
static void assert_exactly_one_each(struct prod_world *w)
{
  char why[128] = "";
  if (!tu_one_replacement_each(w->sim, FAILED, FAILED + RUNNING, why, sizeof(why)))
    fail_msg("%s", why);
}

/* sig at a moment of the run: after min_deletes deletes were sent, or (0)
 * while the instances are being listed. */
static void shutdown_mid_run(int sig, size_t min_deletes)
{
  struct prod_world w;
  struct prod_proc p;
  struct caller c = { 0 };
  pthread_t th;
  int code = -1;

  if (!getenv("NRD_BINARY"))
    skip();
  const char *const extra[] = { "MIGRATION_INTERVAL_MINUTES=0", "MIGRATION_MAX_CONCURRENT=4",
                                NULL };
  prod_world_init(&w, 200, FAILED, RUNNING, extra);
  prod_start_serve(&w, &p, "serve-1.log");
  snprintf(c.url, sizeof(c.url), "http://127.0.0.1:%u/api/instances/migration/check-failed",
           p.port);
  assert_int_equal(pthread_create(&th, NULL, caller_main, &c), 0);

  int64_t until = nrd_mono_ms() + 20000;
  if (min_deletes == 0) {
    /* The first listing request is in the simulator's 200 ms latency. */
    while (nrd_sim_count(w.sim, "GET", "/gpu/instances") < 1 && nrd_mono_ms() < until)
      nrd_sleep_ms(5);
    assert_int_equal(nrd_sim_count(w.sim, "POST", "/gpu/instance/delete"), 0);
  } else {
    /* Mid-recovery: some deletes sent, most rows still to do. */
    while (nrd_sim_count(w.sim, "POST", "/gpu/instance/delete") < min_deletes &&
           nrd_mono_ms() < until)
      nrd_sleep_ms(10);
    size_t deletes = nrd_sim_count(w.sim, "POST", "/gpu/instance/delete");
    assert_true(deletes >= min_deletes);
    assert_true(deletes < FAILED); /* the run is really in progress */
  }

  int64_t sent = nrd_mono_ms();
  assert_int_equal(kill(p.pid, sig), 0);
  bool exited = prod_wait_exit(&p, GRACE_MS, &code);
  int64_t took = nrd_mono_ms() - sent;
  if (!exited) {
    char *out = prod_read_log(&p);
    prod_kill(&p);
    fail_msg("still running %d ms after signal %d:\n%s", GRACE_MS, sig, out);
  }
  pthread_join(th, NULL);
  if (code != 0) {
    char *out = prod_read_log(&p);
    fail_msg("exit code %d after signal %d:\n%s", code, sig, out);
  }
  print_message("signal %d: exited 0 after %lld ms; caller got %ld %.300s\n", sig, (long long)took,
                c.status, c.body ? c.body : "");
  /* The waiting caller got an answer, not a hang or a reset. */
  assert_int_equal(c.rc, 0);
  assert_true(c.status == 200 || c.status == 502 || c.status == 503);
  assert_true(c.answered_mono_ms - sent <= GRACE_MS);
  if (c.status == 200) {
    /* Rows cut short by the shutdown are parked (deferred), not errors. */
    cJSON *ans = cJSON_Parse(c.body);
    const cJSON *o;
    assert_non_null(ans);
    assert_int_equal(tu_result_int(ans, "errors"), 0);
    cJSON_ArrayForEach(o, cJSON_GetObjectItem(cJSON_GetObjectItem(ans, "result"), "outcomes")) {
      const char *action = nrd_json_str(o, "action");
      if (!action || (strcmp(action, "deferred") && strcmp(action, "recreated")))
        fail_msg("outcome of an interrupted run: %s", cJSON_PrintUnformatted(o));
    }
    cJSON_Delete(ans);
  }
  free(c.body);

  /* Restart and run again: the ledger finishes what the first process began. */
  prod_start_serve(&w, &p, "serve-2.log");
  char url[128];
  const char *const headers[] = { "Content-Type: application/json", NULL };
  struct tu_resp r = { 0 };
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/instances/migration/check-failed", p.port);
  assert_int_equal(tu_http("POST", url, headers, "{\"immediate\":true}", &r), 0);
  if (r.status != 200)
    fail_msg("second run answered %ld: %s", r.status, r.body);
  cJSON *ans = cJSON_Parse(r.body);
  assert_non_null(ans);
  assert_int_equal(tu_result_int(ans, "errors"), 0);
  cJSON_Delete(ans);
  tu_resp_cleanup(&r);

  /* Nothing left open in the ledger: every row created, or already seen
   * running (a replacement of the first run, looked at by the second). */
  int64_t done = 0;
  static const char *const finished[] = { "created", "running" };
  for (int k = 0; k < 2; k++) {
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/instances/migration/recoveries?state=%s",
             p.port, finished[k]);
    assert_int_equal(tu_http("GET", url, NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    ans = cJSON_Parse(r.body);
    int64_t count = -1;
    assert_true(nrd_json_i64(ans, "count", &count));
    done += count;
    cJSON_Delete(ans);
    tu_resp_cleanup(&r);
  }
  assert_int_equal(done, FAILED);

  assert_exactly_one_each(&w);
  /* Idle shutdown is quick and clean too. */
  assert_int_equal(kill(p.pid, sig), 0);
  assert_true(prod_wait_exit(&p, GRACE_MS, &code));
  assert_int_equal(code, 0);
  prod_world_cleanup(&w);
}

static void test_sigterm_mid_run(void **state)
{
  (void)state;
  shutdown_mid_run(SIGTERM, 4);
}

static void test_sigint_mid_run(void **state)
{
  (void)state;
  shutdown_mid_run(SIGINT, 4);
}

static void test_sigterm_during_listing(void **state)
{
  (void)state;
  shutdown_mid_run(SIGTERM, 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sigterm_mid_run),
    cmocka_unit_test(test_sigint_mid_run),
    cmocka_unit_test(test_sigterm_during_listing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
