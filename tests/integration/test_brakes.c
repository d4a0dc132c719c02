/* Never delete what cannot be recreated (issue 13), end to end against the
 * simulator: the account brake and its canary, the capacity brake, Novita's
 * transient reasons and Retry-After retried within the run, prepaid rows,
 * a 200 with an error body. */
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

static const char *immediate = "{\"immediate\":true}";

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
  assert_int_equal(status, 200);
  return rep;
}

static bool old_present(struct tu_stack *s, int i)
{
  char id[16];
  snprintf(id, sizeof(id), "i-%03d", i);
  cJSON *all = nrd_sim_instances(s->sim);
  const cJSON *it;
  bool found = false;
  cJSON_ArrayForEach(it, all) {
    const char *v = nrd_json_str(it, "id");
    found = found || (v && !strcmp(v, id));
  }
  cJSON_Delete(all);
  return found;
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

/* The account switch on: a run over 50 failed migrations deletes one
 * instance (the canary), defers the rest naming the reason in the report, the
 * metric and a recovery.blocked event. The brake is stored: the next run
 * probes with the refused create only. Cleared: one run recovers all 50,
 * each exactly once. */
static void test_account_brake(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_with(&s, tu_failed_fleet(50, 0));
  nrd_sim_set_account(s.sim, "BALANCE_NOT_ENOUGH");

  tu_stack_log_capture(&s);
  cJSON *rep = run_now(&s);
  char *log = tu_stack_log_take(&s);
  /* The log names the reason: where the brake was set, and on the rows it holds. */
  assert_non_null(tu_log_find(log, "account brake set", "reason", "BALANCE_NOT_ENOUGH"));
  const char *held = tu_log_find(log, "recovery held by a brake", "brake", "account");
  assert_non_null(held);
  assert_non_null(strstr(held, "BALANCE_NOT_ENOUGH"));
  free(log);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);
  const cJSON *brake = cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "result"), "accountBrake");
  assert_non_null(brake);
  assert_string_equal(nrd_json_str(brake, "reason"), "BALANCE_NOT_ENOUGH");
  assert_int_equal(cJSON_GetObjectItem(brake, "heldRows")->valueint, 50);
  assert_int_equal(tu_result_int(rep, "deferred"), 50);
  const cJSON *o = tu_outcome_for(rep, "i-049");
  assert_string_equal(nrd_json_str(o, "action"), "deferred");
  assert_string_equal(nrd_json_str(o, "brake"), "account");
  assert_non_null(strstr(nrd_json_str(o, "reason"), "BALANCE_NOT_ENOUGH"));
  cJSON_Delete(rep);
  assert_true(metric_has("nrd_brake_held_rows{brake=\"account\"} 50\n"));
  assert_true(metric_has("nrd_brake_held_rows{brake=\"capacity\"} 0\n"));
  long st = 0;
  cJSON *ev = tu_stack_request(&s, "GET", "/api/instances/migration/events", NULL, &st);
  assert_int_equal(st, 200);
  int blocked = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(ev, "events")) {
    if (strcmp(nrd_json_str(e, "type"), "recovery.blocked"))
      continue;
    blocked++;
    const cJSON *data = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "event"), "data");
    assert_string_equal(nrd_json_str(data, "brake"), "account");
    assert_string_equal(nrd_json_str(data, "reason"), "BALANCE_NOT_ENOUGH");
  }
  assert_int_equal(blocked, 1);
  cJSON_Delete(ev);

  /* Still refused: the next run sends the probe (the refused create) only. */
  rep = run_now(&s);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 2);

  nrd_sim_set_account(s.sim, NULL);
  rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 50);
  assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "result"), "accountBrake"));
  cJSON_Delete(rep);
  char why[256] = "";
  if (!tu_one_replacement_each(s.sim, 50, 50, why, sizeof(why)))
    fail_msg("%s", why);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 52);
  assert_true(metric_has("nrd_brake_held_rows{brake=\"account\"} 0\n"));
  tu_stack_cleanup(&s);
}

/* No capacity for the product in one cluster: none of its rows is deleted,
 * every other row is recovered. */
static void test_capacity_brake(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(6, 0);
  const cJSON *it;
  int i = 0;
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(sc, "instances")) {
    if (i++ % 2)
      cJSON_ReplaceItemInObject((cJSON *)it, "clusterId", cJSON_CreateString("c-us"));
  }
  start_with(&s, sc);
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-us", 0);

  cJSON *rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 3);
  assert_int_equal(tu_result_int(rep, "capacityHeldRows"), 3);
  for (i = 0; i < 6; i++) {
    char id[16];
    snprintf(id, sizeof(id), "i-%03d", i);
    const cJSON *o = tu_outcome_for(rep, id);
    if (i % 2) {
      assert_string_equal(nrd_json_str(o, "action"), "deferred");
      assert_string_equal(nrd_json_str(o, "reason"), "no capacity for RTX 4090 24GB in c-us");
      assert_true(old_present(&s, i));
      assert_int_equal(tu_replacements_of(s.sim, i), 0);
    } else {
      assert_int_equal(tu_replacements_of(s.sim, i), 1);
      assert_false(old_present(&s, i));
    }
  }
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 3);
  assert_true(metric_has("nrd_brake_held_rows{brake=\"capacity\"} 3\n"));
  tu_stack_cleanup(&s);
}

/* Novita's CLUSTER_STATUS on the first create: retried, recovered in the
 * same run. */
static void test_cluster_status_retried_in_run(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_with(&s, tu_failed_fleet(1, 0));
  struct nrd_sim_fault f = {
    .kind = NRD_SIM_STATUS, .match = "create", .status = 400, .reason = "CLUSTER_STATUS", .count = 1
  };
  nrd_sim_add_fault(s.sim, &f);
  cJSON *rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  assert_string_equal(nrd_json_str(tu_outcome_for(rep, "i-000"), "action"), "recreated");
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 2);
  assert_int_equal(tu_replacements_of(s.sim, 0), 1);
  tu_stack_cleanup(&s);
}

/* Retry-After: 2 on a create: no call to Novita from any worker for 2 s
 * after it, then recovered in that same run. */
static void test_retry_after_on_create(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.migration_max_concurrent = 4;
  start_with(&s, tu_failed_fleet(6, 0));
  struct nrd_sim_fault f = {
    .kind = NRD_SIM_RETRY_AFTER, .match = "create", .retry_after = "2", .count = 1
  };
  nrd_sim_add_fault(s.sim, &f);
  cJSON *rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 6);
  cJSON_Delete(rep);
  struct nrd_sim_request *reqs = NULL;
  size_t n = nrd_sim_requests(s.sim, &reqs);
  int64_t at = -1;
  for (size_t i = 0; i < n && at < 0; i++)
    if (strstr(reqs[i].path, "/instance/create"))
      at = reqs[i].at_ms; /* the first create: the one answered 429 */
  assert_true(at >= 0);
  for (size_t i = 0; i < n; i++)
    if (reqs[i].at_ms > at && reqs[i].at_ms - at < 1999)
      fail_msg("%s %s %lld ms after the 429", reqs[i].method, reqs[i].path,
               (long long)(reqs[i].at_ms - at));
  nrd_sim_requests_free(reqs, n);
  char why[256] = "";
  if (!tu_one_replacement_each(s.sim, 6, 6, why, sizeof(why)))
    fail_msg("%s", why);
  tu_stack_cleanup(&s);
}

/* 30% of deletes and creates answered 5xx or 429, and the first creates
 * certainly so (two 503s, then a 429): after one run every deleted instance
 * has its replacement, none twice, no row's retries spent (MAX_RETRY_ATTEMPTS
 * 10 makes spending them a one-in-a-million draw), and the creates refused
 * were sent again within the run. */
static void test_faults_leave_nothing_half_done(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.circuit_failure_threshold = 0;
  s.cfg.max_retry_attempts = 10;
  start_with(&s, tu_failed_fleet(20, 0));
  struct nrd_sim_fault first503 = {
    .kind = NRD_SIM_STATUS, .match = "/gpu/instance/create", .status = 503, .count = 2
  };
  struct nrd_sim_fault first429 = {
    .kind = NRD_SIM_STATUS, .match = "/gpu/instance/create", .status = 429, .count = 1
  };
  struct nrd_sim_fault f500 = {
    .kind = NRD_SIM_STATUS, .match = "/gpu/instance/", .status = 503, .probability = 0.15, .seed = 7
  };
  struct nrd_sim_fault f429 = { .kind = NRD_SIM_STATUS,
                                .match = "/gpu/instance/",
                                .status = 429,
                                .probability = 0.18,
                                .seed = 11 };
  nrd_sim_add_fault(s.sim, &first503);
  nrd_sim_add_fault(s.sim, &first429);
  nrd_sim_add_fault(s.sim, &f500);
  nrd_sim_add_fault(s.sim, &f429);
  cJSON *rep = run_now(&s);
  int recovered = 0, deleted = 0;
  for (int i = 0; i < 20; i++) {
    char id[16];
    snprintf(id, sizeof(id), "i-%03d", i);
    int reps = tu_replacements_of(s.sim, i);
    assert_true(reps <= 1);
    recovered += reps;
    deleted += !old_present(&s, i);
    if (reps == 0 && !old_present(&s, i))
      fail_msg("%s deleted without a replacement at the end of the run", id);
    const cJSON *o = tu_outcome_for(rep, id);
    if (o && cJSON_IsTrue(cJSON_GetObjectItem(o, "retriesSpent")))
      fail_msg("%s spent its retries", id);
  }
  cJSON_Delete(rep);
  assert_true(recovered > 0);
  assert_int_equal(recovered, deleted);
  /* The three refused first creates at least were sent again in this run. */
  assert_true(nrd_sim_count(s.sim, "POST", "/gpu/instance/create") >= (size_t)recovered + 3);
  tu_stack_cleanup(&s);
}

/* Placement fallback: a fleet of n failed instances in c-hk (CN-HK-01), a
 * second cluster of that region (c-hk2) and one of another (c-us), with no
 * capacity left for the product in c-hk. */
static cJSON *placement_fleet(int n)
{
  cJSON *sc = tu_failed_fleet(n, 0);
  cJSON *clusters = cJSON_AddArrayToObject(sc, "clusters");
  static const char *const cl[][2] = { { "c-hk", "CN-HK-01 (Hong Kong)" },
                                       { "c-us", "US-CA-01 (California)" },
                                       { "c-hk2", "CN-HK-01 (Hong Kong)" } };
  for (size_t i = 0; i < sizeof(cl) / sizeof(cl[0]); i++) {
    cJSON *c = cJSON_CreateObject();
    nrd_json_add_str(c, "id", cl[i][0]);
    nrd_json_add_str(c, "name", cl[i][1]);
    cJSON_AddItemToArray(clusters, c);
  }
  return sc;
}

/* Every create sent carries exactly these clusterId and billingMode bytes;
 * returns how many were sent. */
static int creates_placed(struct tu_stack *s, const char *cluster, const char *billing)
{
  char want_cluster[96], want_billing[64];
  snprintf(want_cluster, sizeof(want_cluster), "\"clusterId\":\"%s\"", cluster);
  snprintf(want_billing, sizeof(want_billing), "\"billingMode\":\"%s\"", billing);
  struct nrd_sim_request *reqs = NULL;
  size_t n = nrd_sim_requests(s->sim, &reqs);
  int creates = 0;
  for (size_t i = 0; i < n; i++) {
    if (!strstr(reqs[i].path, "/instance/create"))
      continue;
    creates++;
    if (!strstr(reqs[i].body, want_cluster) || !strstr(reqs[i].body, want_billing))
      fail_msg("create body %s lacks %s or %s", reqs[i].body, want_cluster, want_billing);
  }
  nrd_sim_requests_free(reqs, n);
  return creates;
}

/* The outcome's placement of instance i: cluster, region, billing, fallback. */
static void assert_placed(const cJSON *rep, int i, const char *cluster, const char *region,
                          const char *billing)
{
  char id[16];
  snprintf(id, sizeof(id), "i-%03d", i);
  const cJSON *o = tu_outcome_for(rep, id);
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "recreated");
  const cJSON *p = cJSON_GetObjectItem(o, "placement");
  assert_non_null(p);
  assert_string_equal(nrd_json_str(p, "clusterId"), cluster);
  assert_string_equal(nrd_json_str(p, "region"), region);
  assert_string_equal(nrd_json_str(p, "billingMode"), billing);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(p, "fallback")));
  assert_non_null(strstr(nrd_json_str(p, "reason"), "no capacity for RTX 4090 24GB in c-hk"));
}

/* The default (same-cluster, no billing fallback): no capacity in c-hk keeps
 * every row deferred, though c-hk2 and c-us have room; nothing deleted. */
static void test_placement_default_defers(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_with(&s, placement_fleet(3));
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk", 0);
  cJSON *rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "capacityHeldRows"), 3);
  const cJSON *o = tu_outcome_for(rep, "i-001");
  assert_string_equal(nrd_json_str(o, "action"), "deferred");
  assert_string_equal(nrd_json_str(o, "reason"), "no capacity for RTX 4090 24GB in c-hk");
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 0);
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/v1/clusters"), 0);
  tu_stack_cleanup(&s);
}

/* same-region: the replacements go to c-hk2 (CN-HK-01 too), spot as before;
 * the outcome says where and why. */
static void test_placement_same_region(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.recovery_placement = NRD_PLACE_SAME_REGION;
  start_with(&s, placement_fleet(3));
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk", 0);
  cJSON *rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 3);
  for (int i = 0; i < 3; i++)
    assert_placed(rep, i, "c-hk2", "CN-HK-01", "spot");
  cJSON_Delete(rep);
  assert_int_equal(creates_placed(&s, "c-hk2", "spot"), 3);
  char why[256] = "";
  if (!tu_one_replacement_each(s.sim, 3, 3, why, sizeof(why)))
    fail_msg("%s", why);

  /* The region full too: same-region defers, any would not (next test). */
  tu_stack_cleanup(&s);
  tu_stack_init(&s, NULL);
  s.cfg.recovery_placement = NRD_PLACE_SAME_REGION;
  start_with(&s, placement_fleet(2));
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk", 0);
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk2", 0);
  rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "capacityHeldRows"), 2);
  assert_non_null(strstr(nrd_json_str(tu_outcome_for(rep, "i-000"), "reason"),
                         "no capacity for RTX 4090 24GB in c-hk; nor anywhere "
                         "RECOVERY_PLACEMENT=same-region"));
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);
  tu_stack_cleanup(&s);
}

/* any: with the whole region full, the replacements go to c-us. */
static void test_placement_any(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.recovery_placement = NRD_PLACE_ANY;
  start_with(&s, placement_fleet(3));
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk", 0);
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk2", 0);
  cJSON *rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 3);
  for (int i = 0; i < 3; i++)
    assert_placed(rep, i, "c-us", "US-CA-01", "spot");
  cJSON_Delete(rep);
  assert_int_equal(creates_placed(&s, "c-us", "spot"), 3);
  tu_stack_cleanup(&s);
}

/* A place that fills up after the check: c-hk2 takes one more, so the
 * creates it refuses after their deletes go on to c-us (any) in the same
 * run instead of waiting for the next. */
static void test_placement_moves_on_after_refusal(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.recovery_placement = NRD_PLACE_ANY;
  start_with(&s, placement_fleet(3));
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk", 0);
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk2", 1);
  cJSON *rep = run_now(&s);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 3);
  int in_hk2 = 0, in_us = 0;
  for (int i = 0; i < 3; i++) {
    char id[16];
    snprintf(id, sizeof(id), "i-%03d", i);
    const char *cl =
        nrd_json_str(cJSON_GetObjectItem(tu_outcome_for(rep, id), "placement"), "clusterId");
    assert_non_null(cl);
    in_hk2 += !strcmp(cl, "c-hk2");
    in_us += !strcmp(cl, "c-us");
  }
  assert_int_equal(in_hk2, 1);
  assert_int_equal(in_us, 2);
  cJSON_Delete(rep);
  char why[256] = "";
  if (!tu_one_replacement_each(s.sim, 3, 3, why, sizeof(why)))
    fail_msg("%s", why);
  tu_stack_cleanup(&s);
}

/* A spot product sold out (offered onDemand only): RECOVERY_BILLING_FALLBACK
 * none defers, onDemand recreates in the same cluster, onDemand. */
static void test_billing_fallback(void **state)
{
  (void)state;
  for (int fallback = 0; fallback < 2; fallback++) {
    struct tu_stack s;
    tu_stack_init(&s, NULL);
    s.cfg.recovery_billing_fallback =
        fallback ? NRD_BILLING_FALLBACK_ON_DEMAND : NRD_BILLING_FALLBACK_NONE;
    cJSON *sc = placement_fleet(2);
    cJSON *prod = cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "products"), 0);
    cJSON *methods = cJSON_AddArrayToObject(prod, "billingMethods");
    cJSON_AddItemToArray(methods, cJSON_CreateString("onDemand"));
    start_with(&s, sc);
    cJSON *rep = run_now(&s);
    if (fallback) {
      assert_int_equal(tu_result_int(rep, "instancesRecreated"), 2);
      assert_placed(rep, 0, "c-hk", "CN-HK-01", "onDemand");
      assert_placed(rep, 1, "c-hk", "CN-HK-01", "onDemand");
      assert_int_equal(creates_placed(&s, "c-hk", "onDemand"), 2);
    } else {
      assert_int_equal(tu_result_int(rep, "capacityHeldRows"), 2);
      assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);
    }
    cJSON_Delete(rep);
    tu_stack_cleanup(&s);
  }
}

/* A row mounting network storage stays in its cluster whatever the setting. */
static void test_placement_network_storage_stays(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  s.cfg.recovery_placement = NRD_PLACE_ANY;
  cJSON *sc = placement_fleet(2);
  cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "instances"), 0);
  cJSON *mounts = cJSON_AddArrayToObject(first, "volumeMounts");
  cJSON *m = cJSON_CreateObject();
  nrd_json_add_str(m, "type", "network");
  nrd_json_add_str(m, "id", "ns-1");
  nrd_json_add_str(m, "mountPath", "/network");
  nrd_json_add_str(m, "size", "100");
  cJSON_AddItemToArray(mounts, m);
  start_with(&s, sc);
  nrd_sim_set_capacity(s.sim, "RTX 4090 24GB", "c-hk", 0);
  cJSON *rep = run_now(&s);
  const cJSON *o = tu_outcome_for(rep, "i-000");
  assert_string_equal(nrd_json_str(o, "action"), "deferred");
  assert_non_null(strstr(nrd_json_str(o, "reason"), "network storage keeps it in its cluster"));
  assert_true(old_present(&s, 0));
  assert_placed(rep, 1, "c-hk2", "CN-HK-01", "spot");
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* A prepaid (monthly) instance: skipped once, never deleted. */
static void test_prepaid_skipped_once(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(2, 0);
  cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "instances"), 0);
  cJSON_ReplaceItemInObject(first, "billingMode", cJSON_CreateString("monthly"));
  cJSON *prod = cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "products"), 0);
  cJSON *methods = cJSON_AddArrayToObject(prod, "billingMethods");
  cJSON_AddItemToArray(methods, cJSON_CreateString("spot"));
  cJSON_AddItemToArray(methods, cJSON_CreateString("monthly"));
  start_with(&s, sc);
  cJSON *rep = run_now(&s);
  const cJSON *o = tu_outcome_for(rep, "i-000");
  assert_string_equal(nrd_json_str(o, "action"), "skipped");
  assert_string_equal(nrd_json_str(o, "novitaReason"), "PREPAID_INSTANCE_NOT_SUPPORT_RELEASE");
  assert_int_equal(tu_result_int(rep, "errors"), 0);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  cJSON_Delete(rep);
  assert_true(old_present(&s, 0));
  rep = run_now(&s);
  assert_null(tu_outcome_for(rep, "i-000"));
  cJSON_Delete(rep);
  assert_true(old_present(&s, 0));
  assert_int_equal(tu_replacements_of(s.sim, 0), 0);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 2);
  assert_true(metric_has("nrd_recoveries_total{action=\"skipped\"} 1\n"));
  tu_stack_cleanup(&s);
}

/* Issue 16: a create answered 200 with Novita's error body is a refusal:
 * the row fails with Novita's message, it is not "created without an id". */
static void test_error_body_with_200(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_with(&s, tu_failed_fleet(1, 0));
  struct nrd_sim_fault f = { .kind = NRD_SIM_ERROR_200,
                             .match = "create",
                             .reason = "VALIDATOR_PARAM" };
  nrd_sim_add_fault(s.sim, &f);
  cJSON *rep = run_now(&s);
  const cJSON *o = tu_outcome_for(rep, "i-000");
  assert_string_equal(nrd_json_str(o, "action"), "failed");
  assert_non_null(strstr(nrd_json_str(o, "reason"), "injected error with HTTP 200"));
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 1);
  long st = 0;
  cJSON *rows =
      tu_stack_request(&s, "GET", "/api/instances/migration/recoveries?state=failed", NULL, &st);
  assert_int_equal(st, 200);
  assert_int_equal(cJSON_GetObjectItem(rows, "count")->valueint, 1);
  cJSON_Delete(rows);
  tu_stack_cleanup(&s);
}

/* A delete refused account-wide deleted nothing: the row goes back to
 * pending as if no delete had been sent, so the next run checks the
 * instance again (healthy or gone) before sending another. */
static void test_delete_refused_account_wide(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  start_with(&s, tu_failed_fleet(1, 0));
  struct nrd_sim_fault f = { .kind = NRD_SIM_STATUS,
                             .match = "delete",
                             .status = 400,
                             .reason = "BALANCE_NOT_ENOUGH",
                             .count = 1 };
  nrd_sim_add_fault(s.sim, &f);
  cJSON *rep = run_now(&s);
  const cJSON *o = tu_outcome_for(rep, "i-000");
  assert_string_equal(nrd_json_str(o, "action"), "deferred");
  assert_string_equal(nrd_json_str(o, "brake"), "account");
  cJSON_Delete(rep);
  assert_true(old_present(&s, 0));
  long st = 0;
  cJSON *rows =
      tu_stack_request(&s, "GET", "/api/instances/migration/recoveries?state=pending", NULL, &st);
  assert_int_equal(st, 200);
  const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(rows, "recoveries"), 0);
  assert_non_null(row);
  assert_string_equal(nrd_json_str(row, "instanceId"), "i-000");
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(row, "deleteSent")));
  cJSON_Delete(rows);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_account_brake),
    cmocka_unit_test(test_capacity_brake),
    cmocka_unit_test(test_cluster_status_retried_in_run),
    cmocka_unit_test(test_retry_after_on_create),
    cmocka_unit_test(test_faults_leave_nothing_half_done),
    cmocka_unit_test(test_prepaid_skipped_once),
    cmocka_unit_test(test_placement_default_defers),
    cmocka_unit_test(test_placement_same_region),
    cmocka_unit_test(test_placement_any),
    cmocka_unit_test(test_placement_moves_on_after_refusal),
    cmocka_unit_test(test_billing_fallback),
    cmocka_unit_test(test_placement_network_storage_stays),
    cmocka_unit_test(test_error_body_with_200),
    cmocka_unit_test(test_delete_refused_account_wide),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
