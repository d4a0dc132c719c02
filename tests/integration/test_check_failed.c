/* check-failed end to end: real HTTP into the service, real libcurl out to
 * the simulator, a real SQLite file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

static int64_t now_s(void)
{
  return nrd_now_ms() / 1000;
}

/* 300 instances over several pages: 40 failed, 10 whose newest job still
 * runs, 5 migrating without any job; older failed jobs superseded by a newer
 * success are left alone. Exactly the 40 are recreated. */
static void test_fleet_recovers_exactly_the_failed(void **state)
{
  (void)state;
  struct tu_stack s;
  struct nrd_sim_options so = { .api_key = "test-key", .page_cap = 50 };
  tu_stack_init(&s, &so);
  cJSON *sc = tu_scenario();
  char id[32], name[32], jid[32];
  int64_t t = now_s() - 600;
  for (int i = 0; i < 300; i++) {
    snprintf(id, sizeof(id), "i-%03d", i);
    snprintf(name, sizeof(name), "trainer-%03d", i);
    const char *status = i < 55 ? "migrating" : "running";
    tu_add(sc, "instances", tu_instance(id, name, status));
    snprintf(jid, sizeof(jid), "job-%03d", i);
    if (i < 40) {
      tu_add(sc, "jobs",
             tu_job(jid, i % 2 ? "instanceMigrate" : "autoInstanceMigrate", id, t, "fail"));
    } else if (i < 50) {
      /* An older failure, then a newer job still running: not recovered. */
      tu_add(sc, "jobs", tu_job(jid, "autoInstanceMigrate", id, t - 100, "fail"));
      snprintf(jid, sizeof(jid), "job-%03d-b", i);
      tu_add(sc, "jobs", tu_job(jid, "instanceMigrate", id, t, "running"));
    }
  }
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.novita_page_size = 100; /* more than the simulator's cap of 50 */
  tu_stack_start(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(rep, "success")));
  assert_int_equal(tu_result_int(rep, "totalChecked"), 55);
  assert_int_equal(tu_result_int(rep, "failedJobsFound"), 40);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 40);
  assert_int_equal(tu_result_int(rep, "errors"), 0);
  assert_int_equal(
      cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "result"), "outcomes")), 40);
  for (int i = 0; i < 55; i++) {
    snprintf(id, sizeof(id), "i-%03d", i);
    const cJSON *o = tu_outcome_for(rep, id);
    if (i < 40) {
      assert_non_null(o);
      assert_string_equal(nrd_json_str(o, "action"), "recreated");
      snprintf(name, sizeof(name), "trainer-%03d-recreated-", i);
      assert_memory_equal(nrd_json_str(o, "newName"), name, strlen(name));
      assert_int_equal(strlen(nrd_json_str(o, "newName")), strlen(name) + 13);
    } else {
      assert_null(o);
    }
  }
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 40);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 40);
  assert_int_equal(nrd_sim_instance_count(s.sim), 300);
  cJSON_Delete(rep);

  /* A second run finds nothing new to do: no request but the listings. */
  nrd_sim_clear_requests(s.sim);
  rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 0);
  assert_int_equal(nrd_sim_count(s.sim, "POST", NULL), 0);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* The create request is the snapshot's configuration, byte for byte, in the
 * form Novita documents, and fits CreateInstanceRequest. */
static void test_create_request_carries_the_configuration(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  cJSON *inst = tu_instance("i-full", "web-1-recreated-1700000000000", "migrating");
  nrd_json_add_str(inst, "imageAuthId", "auth-77");
  nrd_json_add_str(inst, "command", "python serve.py --port 8080");
  cJSON *ports = cJSON_AddArrayToObject(inst, "portMappings");
  cJSON *p = cJSON_CreateObject();
  nrd_json_add_num(p, "port", 8080);
  nrd_json_add_str(p, "type", "http");
  cJSON_AddItemToArray(ports, p);
  p = cJSON_CreateObject();
  nrd_json_add_num(p, "port", 22);
  cJSON_AddItemToArray(ports, p);
  cJSON *envs = cJSON_AddArrayToObject(inst, "envs");
  cJSON *e = cJSON_CreateObject();
  nrd_json_add_str(e, "key", "HF_TOKEN");
  nrd_json_add_str(e, "value", " s3cr3t = \"quoted\" ünï ");
  cJSON_AddItemToArray(envs, e);
  cJSON *mounts = cJSON_AddArrayToObject(inst, "volumeMounts");
  cJSON *m = cJSON_CreateObject();
  nrd_json_add_str(m, "type", "network");
  nrd_json_add_str(m, "id", "ns-9");
  nrd_json_add_str(m, "mountPath", "/data");
  cJSON_AddItemToArray(mounts, m);
  m = cJSON_CreateObject();
  nrd_json_add_str(m, "type", "local");
  nrd_json_add_str(m, "id", "lv-1");
  nrd_json_add_str(m, "mountPath", "/scratch");
  cJSON_AddItemToArray(mounts, m);
  tu_add(sc, "instances", inst);
  tu_add(sc, "jobs", tu_job("job-full", "instanceMigrate", "i-full", now_s() - 60, "fail"));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  cJSON *cr = tu_sim_creates(s.sim);
  assert_int_equal(cJSON_GetArraySize(cr), 1);
  cJSON *req = cJSON_GetArrayItem(cr, 0);
  char why[256] = "";
  assert_true(tu_check_create_request(req, why, sizeof(why)));
  const char *nm = nrd_json_str(req, "name");
  assert_non_null(nm);
  assert_memory_equal(nm, "web-1-recreated-", 16); /* the older suffix is not stacked */
  assert_int_equal(strlen(nm), 16 + 13);
  assert_string_equal(nrd_json_str(req, "productId"), "prod-4090");
  assert_string_equal(nrd_json_str(req, "imageUrl"), "docker.io/acme/trainer:1.2");
  assert_string_equal(nrd_json_str(req, "imageAuthId"), "auth-77");
  assert_string_equal(nrd_json_str(req, "ports"), "8080/http, 22/tcp");
  assert_string_equal(nrd_json_str(req, "command"), "python serve.py --port 8080");
  assert_string_equal(nrd_json_str(req, "clusterId"), "c-hk");
  assert_string_equal(nrd_json_str(req, "kind"), "gpu");
  assert_string_equal(nrd_json_str(req, "billingMode"), "spot");
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(req, "gpuNum")));
  assert_int_equal(cJSON_GetObjectItem(req, "gpuNum")->valueint, 2);
  assert_int_equal(cJSON_GetObjectItem(req, "rootfsSize")->valueint, 80);
  const cJSON *env0 = cJSON_GetArrayItem(cJSON_GetObjectItem(req, "envs"), 0);
  assert_string_equal(nrd_json_str(env0, "key"), "HF_TOKEN");
  assert_string_equal(nrd_json_str(env0, "value"), " s3cr3t = \"quoted\" ünï ");
  const cJSON *ns = cJSON_GetObjectItem(req, "networkStorages");
  assert_int_equal(cJSON_GetArraySize(ns), 1);
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(ns, 0), "Id"), "ns-9");
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(ns, 0), "mountPoint"), "/data");
  cJSON_Delete(cr);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* Without productId: the cheapest available spot product in the instance's
 * region, skipping unavailable, zero-priced and other-region ones; the
 * product list is fetched once per name and region. Defaults fill gaps. */
static void test_product_fallback_and_defaults(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  for (int i = 0; i < 3; i++) {
    char id[16], jid[16];
    snprintf(id, sizeof(id), "i-p%d", i);
    snprintf(jid, sizeof(jid), "job-p%d", i);
    cJSON *inst = tu_instance(id, id, "migrating");
    cJSON_DeleteItemFromObject(inst, "productId");
    cJSON_DeleteItemFromObject(inst, "gpuNum");
    cJSON_DeleteItemFromObject(inst, "rootfsSize");
    cJSON_DeleteItemFromObject(inst, "kind");
    cJSON_DeleteItemFromObject(inst, "billingMode");
    tu_add(sc, "instances", inst);
    tu_add(sc, "jobs", tu_job(jid, "autoInstanceMigrate", id, now_s() - 60, "fail"));
  }
  tu_add(sc, "products", tu_product("p-expensive", "CN-HK-01 (Hong Kong)", "40000", true));
  tu_add(sc, "products", tu_product("p-cheapest", "CN-HK-01 (Hong Kong)", "30000", true));
  tu_add(sc, "products", tu_product("p-unavailable", "CN-HK-01 (Hong Kong)", "10000", false));
  tu_add(sc, "products", tu_product("p-free", "CN-HK-01 (Hong Kong)", "0", true));
  tu_add(sc, "products", tu_product("p-elsewhere", "US-CA-01 (California)", "5000", true));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 3);
  /* Once per run each: the fallback's look-up by (name, region) and the
   * capacity check's by (name, cluster) before the first delete. */
  assert_int_equal(nrd_sim_count(s.sim, "GET", "/v1/products"), 2);
  cJSON *cr = tu_sim_creates(s.sim);
  assert_int_equal(cJSON_GetArraySize(cr), 3);
  const cJSON *req;
  cJSON_ArrayForEach(req, cr) {
    char why[256] = "";
    assert_true(tu_check_create_request(req, why, sizeof(why)));
    assert_string_equal(nrd_json_str(req, "productId"), "p-cheapest");
    assert_int_equal(cJSON_GetObjectItem(req, "gpuNum")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(req, "rootfsSize")->valueint, 50);
    assert_string_equal(nrd_json_str(req, "kind"), "gpu");
    assert_string_equal(nrd_json_str(req, "billingMode"), "spot");
    assert_null(cJSON_GetObjectItem(req, "ports"));
    assert_null(cJSON_GetObjectItem(req, "envs"));
  }
  cJSON_Delete(cr);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* Check before delete: no imageUrl, or no product to be found, fails the row
 * and leaves the old instance alone. */
static void test_unbuildable_rows_delete_nothing(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  cJSON *inst = tu_instance("i-noimage", "web-f", "migrating");
  cJSON_DeleteItemFromObject(inst, "imageUrl");
  tu_add(sc, "instances", inst);
  tu_add(sc, "jobs", tu_job("job-noimage", "instanceMigrate", "i-noimage", now_s() - 60, "fail"));
  inst = tu_instance("i-noproduct", "web-g", "migrating");
  cJSON_DeleteItemFromObject(inst, "productId");
  tu_add(sc, "instances", inst);
  tu_add(sc, "jobs",
         tu_job("job-noproduct", "instanceMigrate", "i-noproduct", now_s() - 60, "fail"));
  tu_add(sc, "products", tu_product("p-elsewhere", "US-CA-01 (California)", "5000", true));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "errors"), 2);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 0);
  const cJSON *o = tu_outcome_for(rep, "i-noimage");
  assert_string_equal(nrd_json_str(o, "action"), "failed");
  assert_non_null(strstr(nrd_json_str(o, "reason"), "no imageUrl"));
  o = tu_outcome_for(rep, "i-noproduct");
  assert_string_equal(nrd_json_str(o, "action"), "failed");
  assert_non_null(strstr(nrd_json_str(o, "reason"), "left untouched"));
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 0);
  assert_int_equal(nrd_sim_instance_count(s.sim), 2);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* A dry run reports the exact request, redacted, and sends no delete or create. */
static void test_dry_run_sends_nothing(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  cJSON *inst = tu_instance("i-dry", "dry-1", "migrating");
  cJSON *envs = cJSON_AddArrayToObject(inst, "envs");
  cJSON *e = cJSON_CreateObject();
  nrd_json_add_str(e, "key", "DB_PASSWORD");
  nrd_json_add_str(e, "value", "very-secret-value");
  cJSON_AddItemToArray(envs, e);
  tu_add(sc, "instances", inst);
  tu_add(sc, "jobs", tu_job("job-dry", "instanceMigrate", "i-dry", now_s() - 60, "fail"));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true,\"dryRun\":true}", &status);
  assert_int_equal(status, 200);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "result"), "dryRun")));
  const cJSON *o = tu_outcome_for(rep, "i-dry");
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "planned");
  const cJSON *req = cJSON_GetObjectItem(o, "request");
  assert_string_equal(nrd_json_str(req, "imageUrl"), "docker.io/acme/trainer:1.2");
  const cJSON *env0 = cJSON_GetArrayItem(cJSON_GetObjectItem(req, "envs"), 0);
  assert_string_equal(nrd_json_str(env0, "key"), "DB_PASSWORD");
  assert_string_equal(nrd_json_str(env0, "value"), "***");
  char *text = nrd_json_print(rep);
  assert_null(strstr(text, "very-secret-value"));
  assert_null(strstr(text, "hunter2-ssh"));
  free(text);
  assert_int_equal(nrd_sim_count(s.sim, "POST", NULL), 0);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* Without immediate: 202 with a jobId that runs/{id} shows through to done. */
static void test_background_run(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  tu_add(sc, "instances", tu_instance("i-bg", "bg-1", "migrating"));
  tu_add(sc, "jobs", tu_job("job-bg", "instanceMigrate", "i-bg", now_s() - 60, "fail"));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  nrd_sim_set_latency(s.sim, 100);
  tu_stack_start(&s);

  long status = 0;
  cJSON *acc = tu_stack_check_failed(&s, NULL, &status);
  assert_int_equal(status, 202);
  const char *id = nrd_json_str(acc, "jobId");
  assert_non_null(id);
  assert_string_equal(id, nrd_json_str(acc, "runId"));
  char path[160];
  snprintf(path, sizeof(path), "/api/instances/migration/runs/%s", id);
  cJSON *run = tu_stack_request(&s, "GET", path, NULL, &status);
  assert_int_equal(status, 200);
  assert_string_equal(nrd_json_str(run, "state"), "running");
  assert_string_equal(nrd_json_str(run, "trigger"), "api");
  for (int i = 0; i < 200 && !strcmp(nrd_json_str(run, "state"), "running"); i++) {
    nrd_sleep_ms(50);
    cJSON_Delete(run);
    run = tu_stack_request(&s, "GET", path, NULL, &status);
  }
  assert_string_equal(nrd_json_str(run, "state"), "done");
  const cJSON *res = cJSON_GetObjectItem(run, "result");
  int64_t n = 0;
  assert_true(nrd_json_i64(res, "instancesRecreated", &n));
  assert_int_equal(n, 1);
  cJSON_Delete(run);
  cJSON_Delete(acc);
  tu_stack_cleanup(&s);
}

/* A run queued behind another (a dry run behind a real one) is not yet
 * recorded: the coordinator records a run when it takes it, so the POST's
 * thread never writes. runs/{id} shows it all the same, running, at once. */
static void test_queued_run_is_shown(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  tu_add(sc, "instances", tu_instance("i-q", "q-1", "migrating"));
  tu_add(sc, "jobs", tu_job("job-q", "instanceMigrate", "i-q", now_s() - 60, "fail"));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  nrd_sim_set_latency(s.sim, 500); /* the first run takes seconds */
  tu_stack_start(&s);

  long status = 0;
  cJSON *first = tu_stack_check_failed(&s, NULL, &status);
  assert_int_equal(status, 202);
  cJSON *second = tu_stack_check_failed(&s, "{\"dryRun\":true}", &status);
  assert_int_equal(status, 202);
  const char *id = nrd_json_str(second, "runId");
  assert_non_null(id);
  assert_string_not_equal(id, nrd_json_str(first, "runId"));
  char path[160];
  snprintf(path, sizeof(path), "/api/instances/migration/runs/%s", id);
  cJSON *run = tu_stack_request(&s, "GET", path, NULL, &status);
  assert_int_equal(status, 200);
  assert_string_equal(nrd_json_str(run, "state"), "running");
  assert_string_equal(nrd_json_str(run, "trigger"), "api");
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(run, "dryRun")));
  for (int i = 0; i < 400 && !strcmp(nrd_json_str(run, "state"), "running"); i++) {
    nrd_sleep_ms(50);
    cJSON_Delete(run);
    run = tu_stack_request(&s, "GET", path, NULL, &status);
  }
  assert_string_equal(nrd_json_str(run, "state"), "done");
  cJSON_Delete(run);
  cJSON_Delete(second);
  cJSON_Delete(first);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fleet_recovers_exactly_the_failed),
    cmocka_unit_test(test_create_request_carries_the_configuration),
    cmocka_unit_test(test_product_fallback_and_defaults),
    cmocka_unit_test(test_unbuildable_rows_delete_nothing),
    cmocka_unit_test(test_dry_run_sends_nothing),
    cmocka_unit_test(test_background_run),
    cmocka_unit_test(test_queued_run_is_shown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
