/* Surviving Novita's failures: random 500s, 429 with Retry-After, an outage
 * that opens the circuit, hostile bodies. */
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

static const char *immediate = "{\"immediate\":true}";

static void start_with(struct tu_stack *s, cJSON *sc)
{
  tu_stack_load(s, sc);
  cJSON_Delete(sc);
  tu_stack_start(s);
}

/* 30% random 500s on every endpoint (fixed seed): within 5 runs every
 * recovery completes, each with exactly one replacement. */
static void test_random_500s(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.circuit_failure_threshold = 0; /* the breaker is tested below */
  start_with(&s, tu_failed_fleet(20, 20));
  struct nrd_sim_fault f = {
    .kind = NRD_SIM_STATUS, .match = "/v1/", .status = 500, .probability = 0.3, .seed = 42
  };
  nrd_sim_add_fault(s.sim, &f);
  int runs = 0;
  bool done = false;
  while (!done && runs < 5) {
    long status = 0;
    cJSON *rep = tu_stack_check_failed(&s, immediate, &status);
    runs++;
    done = true;
    for (int i = 0; i < 20; i++)
      done = done && tu_replacements_of(s.sim, i) == 1;
    cJSON_Delete(rep);
  }
  assert_true(done);
  for (int i = 0; i < 20; i++)
    assert_int_equal(tu_replacements_of(s.sim, i), 1);
  assert_int_equal(nrd_sim_instance_count(s.sim), 40);
  tu_stack_cleanup(&s);
}

/* 429 with Retry-After: 2: the next call waits at least 2 s. */
static void test_retry_after_is_honoured(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_with(&s, tu_failed_fleet(1, 0));
  struct nrd_sim_fault f = {
    .kind = NRD_SIM_RETRY_AFTER, .match = "GET", .retry_after = "2", .count = 1
  };
  nrd_sim_add_fault(s.sim, &f);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  cJSON_Delete(rep);
  struct nrd_sim_request *reqs = NULL;
  size_t n = nrd_sim_requests(s.sim, &reqs);
  assert_true(n >= 2);
  /* The first request got the 429; the second came no sooner than 2 s later
   * (the log's times are whole milliseconds, so 2000.0 ms can read 1999). */
  if (reqs[1].at_ms - reqs[0].at_ms < 1999)
    fail_msg("%s %s then %s %s only %lld ms later", reqs[0].method, reqs[0].path, reqs[1].method,
             reqs[1].path, (long long)(reqs[1].at_ms - reqs[0].at_ms));
  nrd_sim_requests_free(reqs, n);
  tu_stack_cleanup(&s);
}

/* Novita refuses every delete for a whole run: the circuit opens, the rest
 * of the rows are deferred and stay open, the run answers 502; once Novita
 * is back and the cool-down passed, the next run completes them all. */
static void test_outage_opens_circuit(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.max_retry_attempts = 1;
  s.cfg.circuit_failure_threshold = 3;
  s.cfg.circuit_cooldown_seconds = 1;
  s.cfg.migration_max_concurrent = 2;
  start_with(&s, tu_failed_fleet(12, 0));
  struct nrd_sim_fault f = { .kind = NRD_SIM_STATUS, .match = "delete", .status = 503 };
  nrd_sim_add_fault(s.sim, &f);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 502);
  const cJSON *err = cJSON_GetObjectItem(rep, "error");
  assert_string_equal(nrd_json_str(err, "code"), "NOVITA_UNAVAILABLE");
  assert_true(tu_result_int(rep, "deferred") > 0);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 0);
  cJSON_Delete(rep);
  /* Far fewer deletes than rows x attempts: the breaker stopped the sending. */
  assert_true(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete") < 12);

  /* A whole-run outage: the listing fails, 502, nothing changes. */
  nrd_sim_clear_faults(s.sim);
  struct nrd_sim_fault down = { .kind = NRD_SIM_STATUS, .match = "", .status = 503 };
  nrd_sim_add_fault(s.sim, &down);
  nrd_sleep_ms(1100);
  rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 502);
  cJSON_Delete(rep);

  nrd_sim_clear_faults(s.sim);
  nrd_sleep_ms(1100);
  rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 12);
  cJSON_Delete(rep);
  for (int i = 0; i < 12; i++)
    assert_int_equal(tu_replacements_of(s.sim, i), 1);
  tu_stack_cleanup(&s);
}

/* Hostile bodies on the listing: a clear 502, the process stays up and the
 * next clean run works. */
static void test_hostile_listing_bodies(void **state)
{
  (void)state;
  static const struct {
    enum nrd_sim_fault_kind kind;
    size_t size;
  } kinds[] = {
    { NRD_SIM_HTML, 0 },      { NRD_SIM_TRUNCATED, 0 },
    { NRD_SIM_MALFORMED, 0 }, { NRD_SIM_OVERSIZED, 50u << 20 },
    { NRD_SIM_DEEP, 100000 }, { NRD_SIM_EMPTY, 0 },
  };
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.max_retry_attempts = 0;
  s.cfg.circuit_failure_threshold = 0;
  start_with(&s, tu_failed_fleet(1, 1));
  for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
    struct nrd_sim_fault f = {
      .kind = kinds[k].kind, .match = "GET", .size = kinds[k].size, .count = 1
    };
    nrd_sim_clear_faults(s.sim);
    nrd_sim_add_fault(s.sim, &f);
    long status = 0;
    cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true,\"dryRun\":true}", &status);
    if (status != 502)
      fail_msg("fault kind %d: status %ld", (int)kinds[k].kind, status);
    const char *msg = nrd_json_str(cJSON_GetObjectItem(rep, "error"), "message");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "listing instances failed"));
    cJSON_Delete(rep);
    rep = tu_stack_request(&s, "GET", "/health", NULL, &status);
    assert_int_equal(status, 200);
    cJSON_Delete(rep);
  }
  nrd_sim_clear_faults(s.sim);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* A page that turns out unusable after some of its runs were read (a body
 * cut in half): nothing of it is stored; the next clean run stores it. */
static bool snapshot_seen(struct tu_stack *s, const char *id)
{
  struct nrd_store *st = NULL;
  char err[256];
  assert_int_equal(nrd_store_open_path(s->cfg.database_path, &st, NULL, err, sizeof(err)), NRD_OK);
  int rc = nrd_store_snapshot_seen_since(st, id, 0);
  nrd_store_close(st);
  return rc == NRD_OK;
}

static void test_cut_page_stores_nothing_of_it(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.max_retry_attempts = 0;
  s.cfg.circuit_failure_threshold = 0;
  s.cfg.novita_page_size = 200; /* half a page holds a full run of instances */
  start_with(&s, tu_failed_fleet(1, 299));
  struct nrd_sim_fault f = { .kind = NRD_SIM_TRUNCATED, .match = "/v1/gpu/instances", .count = 1 };
  nrd_sim_add_fault(s.sim, &f);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 502);
  cJSON_Delete(rep);
  assert_false(snapshot_seen(&s, "i-000"));
  assert_false(snapshot_seen(&s, "i-063"));

  rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  cJSON_Delete(rep);
  assert_true(snapshot_seen(&s, "i-000"));
  assert_true(snapshot_seen(&s, "i-299"));
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_random_500s),
    cmocka_unit_test(test_retry_after_is_honoured),
    cmocka_unit_test(test_outage_opens_circuit),
    cmocka_unit_test(test_hostile_listing_bodies),
    cmocka_unit_test(test_cut_page_stores_nothing_of_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
