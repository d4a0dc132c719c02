/* The Novita simulator over real HTTP on 127.0.0.1: pagination (base 0/1,
 * server cap), filters, auth, create validation, delete, every fault kind,
 * the request log and the control endpoints. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/sim.h"
#include "nrd/util.h"
#include "testutil.h"

#define KEY "k-test"
#define INTERNAL_KEY "k-internal"

static const char *const AUTH[] = { "Authorization: Bearer " KEY, NULL };

struct fx {
  struct nrd_sim *sim;
  char base[128];
  char root[128];
};

static struct fx *start(const struct nrd_sim_options *opt, size_t fleet, size_t failed)
{
  struct fx *f = nrd_xcalloc(1, sizeof *f);
  struct nrd_sim_options defaults = { .api_key = KEY, .internal_api_key = INTERNAL_KEY };
  char err[128];
  cJSON *sc;
  char *text;

  f->sim = nrd_sim_start(opt ? opt : &defaults, err, sizeof err);
  assert_non_null(f->sim);
  assert_true(nrd_sim_port(f->sim) > 0);
  nrd_sim_base_url(f->sim, f->base);
  nrd_sim_internal_base_url(f->sim, f->root);
  sc = nrd_sim_make_fleet(fleet, failed, nrd_now_ms() / 1000);
  text = nrd_json_print(sc);
  assert_int_equal(nrd_sim_load(f->sim, text), 0);
  free(text);
  cJSON_Delete(sc);
  return f;
}

static void stop(struct fx *f)
{
  nrd_sim_stop(f->sim);
  free(f);
}

/* GET/POST {base}{path} with the API key; the parsed body (may be NULL). */
static cJSON *call(struct fx *f, const char *method, const char *path, const char *body,
                   long *status)
{
  char url[512];
  struct tu_resp r;
  cJSON *j;

  snprintf(url, sizeof url, "%s%s", f->base, path);
  assert_int_equal(tu_http(method, url, AUTH, body, &r), 0);
  *status = r.status;
  j = nrd_json_parse(r.body, r.body_len);
  tu_resp_cleanup(&r);
  return j;
}

static const char *first_id(const cJSON *list, const char *key)
{
  return nrd_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(list, key), 0), "id");
}

static int list_len(const cJSON *j, const char *key)
{
  const cJSON *a = cJSON_GetObjectItem(j, key);
  assert_true(cJSON_IsArray(a));
  return cJSON_GetArraySize(a);
}

static void test_pagination_base1(void **state)
{
  struct fx *f = start(NULL, 25, 0);
  long st;
  int64_t total;
  cJSON *j = call(f, "GET", "/v1/gpu/instances?pageNum=1&pageSize=10", NULL, &st);

  assert_int_equal(st, 200);
  assert_int_equal(list_len(j, "instances"), 10);
  assert_string_equal(first_id(j, "instances"), "i-0");
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 25);
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/gpu/instances?pageNum=3&pageSize=10", NULL, &st);
  assert_int_equal(list_len(j, "instances"), 5);
  assert_string_equal(first_id(j, "instances"), "i-20");
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/gpu/instances?pageNum=4&pageSize=10", NULL, &st);
  assert_int_equal(list_len(j, "instances"), 0);
  cJSON_Delete(j);
  /* below the base: an empty page, not the first one */
  j = call(f, "GET", "/v1/gpu/instances?pageNum=0&pageSize=10", NULL, &st);
  assert_int_equal(st, 200);
  assert_int_equal(list_len(j, "instances"), 0);
  cJSON_Delete(j);
  /* defaults: page 1 of 10 */
  j = call(f, "GET", "/v1/gpu/instances", NULL, &st);
  assert_int_equal(list_len(j, "instances"), 10);
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/gpu/instances?pageSize=abc", NULL, &st);
  assert_int_equal(st, 400);
  assert_string_equal(nrd_json_str(j, "reason"), "VALIDATOR_PARAM");
  cJSON_Delete(j);
  stop(f);
}

static void test_pagination_base0_cap(void **state)
{
  struct nrd_sim_options o = {
    .api_key = KEY, .page_base = 0, .page_base_set = true, .page_cap = 7
  };
  struct fx *f = start(&o, 25, 0);
  long st;
  cJSON *j = call(f, "GET", "/v1/gpu/instances?pageNum=0&pageSize=10", NULL, &st);

  assert_int_equal(list_len(j, "instances"), 7);
  assert_string_equal(first_id(j, "instances"), "i-0");
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/gpu/instances?pageNum=3&pageSize=10", NULL, &st);
  assert_int_equal(list_len(j, "instances"), 4);
  assert_string_equal(first_id(j, "instances"), "i-21");
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/gpu/instances?pageNum=1&pageSize=5", NULL, &st);
  assert_int_equal(list_len(j, "instances"), 5);
  assert_string_equal(first_id(j, "instances"), "i-5");
  cJSON_Delete(j);
  stop(f);
}

static void test_instance_shape_and_filters(void **state)
{
  struct fx *f = start(NULL, 30, 4);
  long st;
  int64_t total;
  const cJSON *inst;
  cJSON *j = call(f, "GET", "/v1/gpu/instances?pageSize=100&name=WORKER-000", NULL, &st);

  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 10);
  inst = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "instances"), 0);
  assert_string_equal(nrd_json_str(inst, "name"), "worker-0000");
  assert_string_equal(nrd_json_str(inst, "status"), "migrating");
  assert_true(cJSON_IsString(cJSON_GetObjectItem(inst, "gpuNum")));
  assert_true(cJSON_IsString(cJSON_GetObjectItem(inst, "cpuNum")));
  assert_true(cJSON_IsString(cJSON_GetObjectItem(inst, "memory")));
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(inst, "rootfsSize")));
  assert_non_null(nrd_json_str(inst, "sshPassword"));
  assert_non_null(cJSON_GetObjectItem(inst, "connectComponentSSH"));
  assert_true(cJSON_IsArray(cJSON_GetObjectItem(inst, "portMappings")));
  assert_true(cJSON_IsArray(cJSON_GetObjectItem(inst, "envs")));
  assert_non_null(nrd_json_str(inst, "imageUrl"));
  assert_string_equal(nrd_json_str(inst, "clusterName"), "CN-HK-01 (Hong Kong)");
  /* every fifth instance lacks productId */
  assert_null(
      cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "instances"), 4), "productId"));
  cJSON_Delete(j);

  j = call(f, "GET", "/v1/gpu/instances?pageSize=100&status=migrating", NULL, &st);
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 4);
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/gpu/instances?name=worker-0029", NULL, &st);
  assert_int_equal(list_len(j, "instances"), 1);
  assert_string_equal(first_id(j, "instances"), "i-29");
  cJSON_Delete(j);
  stop(f);
}

static void test_auth(void **state)
{
  struct fx *f = start(NULL, 3, 1);
  const char *const wrong[] = { "Authorization: Bearer nope", NULL };
  const char *const internal[] = { "Authorization: Bearer " INTERNAL_KEY, NULL };
  char url[256];
  struct tu_resp r;
  cJSON *j;

  snprintf(url, sizeof url, "%s/v1/gpu/instances", f->base);
  assert_int_equal(tu_http("GET", url, NULL, NULL, &r), 0);
  assert_int_equal(r.status, 401);
  j = nrd_json_parse(r.body, r.body_len);
  assert_string_equal(nrd_json_str(j, "reason"), "UNAUTHORIZED");
  cJSON_Delete(j);
  tu_resp_cleanup(&r);
  assert_int_equal(tu_http("GET", url, wrong, NULL, &r), 0);
  assert_int_equal(r.status, 401);
  tu_resp_cleanup(&r);
  assert_int_equal(tu_http("GET", url, AUTH, NULL, &r), 0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);

  /* the internal jobs host takes only the internal key */
  snprintf(url, sizeof url, "%s/api/v1/jobs?type=autoInstanceMigrate", f->root);
  assert_int_equal(tu_http("GET", url, AUTH, NULL, &r), 0);
  assert_int_equal(r.status, 401);
  tu_resp_cleanup(&r);
  assert_int_equal(tu_http("GET", url, internal, NULL, &r), 0);
  assert_int_equal(r.status, 200);
  j = nrd_json_parse(r.body, r.body_len);
  assert_int_equal(list_len(j, "jobs"), 2);
  cJSON_Delete(j);
  tu_resp_cleanup(&r);
  stop(f);
}

static void test_jobs(void **state)
{
  struct fx *f = start(NULL, 10, 4);
  char path[128];
  int64_t now = nrd_now_ms() / 1000, total, created;
  long st;
  const cJSON *job;
  cJSON *j = call(f, "GET", "/v1/jobs?type=instanceMigrate&pageSize=50", NULL, &st);

  assert_int_equal(st, 200);
  /* 4 old successes + failures of i-1 and i-3 */
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 6);
  cJSON_Delete(j);

  snprintf(path, sizeof path, "/v1/jobs?type=autoInstanceMigrate&startTime=%lld&endTime=%lld",
           (long long)(now - 3600), (long long)now);
  j = call(f, "GET", path, NULL, &st);
  /* failures of i-0 and i-2, and i-4's success */
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 3);
  job = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "jobs"), 0);
  assert_string_equal(nrd_json_str(job, "Id"), "job-0");
  assert_string_equal(nrd_json_str(job, "instanceId"), "i-0");
  assert_string_equal(nrd_json_str(cJSON_GetObjectItem(job, "state"), "state"), "fail");
  assert_true(nrd_json_i64(job, "createdAt", &created));
  assert_true(created >= now - 3600 && created <= now);
  cJSON_Delete(j);

  snprintf(path, sizeof path, "/v1/jobs?startTime=%lld", (long long)(now + 10));
  j = call(f, "GET", path, NULL, &st);
  assert_int_equal(list_len(j, "jobs"), 0);
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/jobs?pageNum=2&pageSize=4", NULL, &st);
  assert_int_equal(list_len(j, "jobs"), 4);
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 9);
  cJSON_Delete(j);
  stop(f);
}

static int raw_list(struct fx *f, struct tu_resp *r);

/* Issue 15: the jobs list filtered by state, one instance by id, and a
 * migration started and failed at a chosen moment. */
static void test_job_state_and_one_instance(void **state)
{
  struct fx *f = start(NULL, 6, 2);
  int64_t now = nrd_now_ms() / 1000, total;
  long st;
  cJSON *j = call(f, "GET", "/v1/jobs?type=autoInstanceMigrate&state=fail", NULL, &st);
  assert_int_equal(st, 200);
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 1); /* i-0's failure; i-4's success is not listed */
  cJSON_Delete(j);

  j = call(f, "GET", "/v1/gpu/instance?instanceId=i-5", NULL, &st);
  assert_int_equal(st, 200);
  assert_string_equal(nrd_json_str(j, "id"), "i-5");
  assert_string_equal(nrd_json_str(j, "status"), "running");
  cJSON_Delete(j);
  /* Unknown: Novita's reason, with the status its delete answers. */
  j = call(f, "GET", "/v1/gpu/instance?instanceId=i-nope", NULL, &st);
  assert_int_equal(st, 400);
  assert_string_equal(nrd_json_str(j, "reason"), "RESOURCE_NOT_FOUND");
  cJSON_Delete(j);

  assert_int_equal(nrd_sim_start_migration(f->sim, "i-5", "job-x", now - 30), 0);
  assert_int_equal(nrd_sim_start_migration(f->sim, "i-nope", "job-y", now), -1);
  j = call(f, "GET", "/v1/jobs?type=autoInstanceMigrate&state=running", NULL, &st);
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 1);
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/gpu/instance?instanceId=i-5", NULL, &st);
  assert_string_equal(nrd_json_str(j, "status"), "migrating");
  cJSON_Delete(j);
  assert_int_equal(nrd_sim_set_job_state(f->sim, "job-x", "fail"), 0);
  assert_int_equal(nrd_sim_set_job_state(f->sim, "job-nope", "fail"), -1);
  j = call(f, "GET", "/v1/jobs?type=autoInstanceMigrate&state=fail", NULL, &st);
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 2);
  cJSON_Delete(j);
  stop(f);
}

/* A server-side limit of R requests a second: the (R+1)th at once is 429
 * with Retry-After; 0 removes it. */
static void test_rate_limit(void **state)
{
  struct fx *f = start(NULL, 3, 0);
  long st;
  nrd_sim_set_rate_limit(f->sim, 3);
  for (int i = 0; i < 3; i++)
    cJSON_Delete(call(f, "GET", "/v1/gpu/instances", NULL, &st));
  assert_int_equal(st, 200);
  struct tu_resp r;
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 429);
  char *ra = tu_header(&r, "Retry-After");
  assert_string_equal(ra, "1");
  free(ra);
  tu_resp_cleanup(&r);
  assert_int_equal(nrd_sim_rate_refused(f->sim), 1);
  nrd_sim_set_rate_limit(f->sim, 0);
  cJSON_Delete(call(f, "GET", "/v1/gpu/instances", NULL, &st));
  assert_int_equal(st, 200);
  stop(f);
}

static void test_products(void **state)
{
  struct fx *f = start(NULL, 1, 0);
  long st;
  const cJSON *p, *data;
  cJSON *j = call(f, "GET", "/v1/products?productName=4090&billingMethod=spot", NULL, &st);

  assert_int_equal(st, 200);
  data = cJSON_GetObjectItem(j, "data");
  assert_int_equal(cJSON_GetArraySize(data), 5);
  p = cJSON_GetArrayItem(data, 0);
  assert_string_equal(nrd_json_str(p, "name"), "RTX 4090 24GB");
  assert_true(cJSON_IsArray(cJSON_GetObjectItem(p, "regions")));
  assert_non_null(cJSON_GetObjectItem(p, "spotPrice"));
  assert_true(cJSON_IsBool(cJSON_GetObjectItem(p, "availableDeploy")));
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/products?productName=H100", NULL, &st);
  assert_int_equal(list_len(j, "data"), 0);
  cJSON_Delete(j);
  stop(f);
}

/* GET /v1/clusters lists the scenario's clusters with Novita's fields; a
 * product with regions is listed under a clusterId only where that cluster's
 * name is one of them; a create there shows that cluster's name. */
static void test_clusters_and_products_in_cluster(void **state)
{
  struct fx *f = start(NULL, 0, 0);
  long st;
  (void)state;
  assert_int_equal(
      nrd_sim_load(
          f->sim,
          "{\"clusters\":[{\"id\":\"c-hk\",\"name\":\"CN-HK-01 (Hong Kong)\"},"
          "{\"id\":\"c-us\",\"name\":\"US-CA-01 (California)\",\"supportNetworkStorage\":false}],"
          "\"products\":[{\"id\":\"p-hk\",\"name\":\"RTX 4090 24GB\",\"availableDeploy\":true,"
          "\"regions\":[\"CN-HK-01 (Hong Kong)\"]},{\"id\":\"p-any\",\"name\":\"H100\","
          "\"availableDeploy\":true,\"regions\":[]}]}"),
      0);
  cJSON *j = call(f, "GET", "/v1/clusters", NULL, &st);
  assert_int_equal(st, 200);
  const cJSON *data = cJSON_GetObjectItem(j, "data");
  assert_int_equal(cJSON_GetArraySize(data), 2);
  const cJSON *us = cJSON_GetArrayItem(data, 1);
  assert_string_equal(nrd_json_str(us, "id"), "c-us");
  assert_string_equal(nrd_json_str(us, "name"), "US-CA-01 (California)");
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(us, "supportNetworkStorage")));
  assert_true(cJSON_IsArray(cJSON_GetObjectItem(us, "availableGpuType")));
  assert_true(cJSON_IsBool(cJSON_GetObjectItem(us, "supportInstanceNetwork")));
  cJSON_Delete(j);

  j = call(f, "GET", "/v1/products?clusterId=c-hk", NULL, &st);
  assert_int_equal(list_len(j, "data"), 2);
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/products?clusterId=c-us", NULL, &st);
  assert_int_equal(list_len(j, "data"), 1); /* p-hk is not offered there */
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0), "id"),
                      "p-any");
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/products?clusterId=c-unknown", NULL, &st);
  assert_int_equal(list_len(j, "data"), 2); /* a cluster not listed filters nothing */
  cJSON_Delete(j);
  stop(f);
}

static const char *const VALID_CREATE =
    "{\"name\":\"w-recreated-1764345600123\",\"productId\":\"prod-4090-hk-b\",\"gpuNum\":2,"
    "\"rootfsSize\":60,\"imageUrl\":\"ghcr.io/x/y:1\",\"kind\":\"gpu\","
    "\"ports\":\"8080/http, 22/tcp\",\"envs\":[{\"key\":\"A\",\"value\":\"b c\"}],"
    "\"command\":\"run\",\"clusterId\":\"cl-hk-01\",\"billingMode\":\"spot\","
    "\"networkStorages\":[{\"Id\":\"ns-1\",\"mountPoint\":\"/mnt\"}]}";

static void test_create(void **state)
{
  struct fx *f = start(NULL, 2, 0);
  long st;
  const char *id;
  cJSON *j = call(f, "POST", "/v1/gpu/instance/create", VALID_CREATE, &st), *all;
  const cJSON *inst = NULL, *it, *pm;

  assert_int_equal(st, 200);
  id = nrd_json_str(j, "id");
  assert_non_null(id);
  assert_int_equal(cJSON_GetArraySize(j), 1);
  assert_int_equal(nrd_sim_instance_count(f->sim), 3);
  assert_int_equal(nrd_sim_count_by_name(f->sim, "w-recreated-1764345600123"), 1);
  all = nrd_sim_instances(f->sim);
  cJSON_ArrayForEach(it, all) {
    if (strcmp(nrd_json_str(it, "id"), id) == 0)
      inst = it;
  }
  assert_non_null(inst);
  assert_string_equal(nrd_json_str(inst, "status"), "running");
  assert_string_equal(nrd_json_str(inst, "gpuNum"), "2");
  assert_string_equal(nrd_json_str(inst, "productName"), "RTX 4090 24GB");
  pm = cJSON_GetObjectItem(inst, "portMappings");
  assert_int_equal(cJSON_GetArraySize(pm), 2);
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(pm, 0), "port")->valueint, 8080);
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(pm, 0), "type"), "http");
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(pm, 1), "type"), "tcp");
  assert_string_equal(
      nrd_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(inst, "envs"), 0), "value"), "b c");
  assert_string_equal(
      nrd_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(inst, "volumeMounts"), 0), "id"), "ns-1");
  cJSON_Delete(all);
  cJSON_Delete(j);
  stop(f);
}

static void test_create_new_status(void **state)
{
  struct nrd_sim_options o = { .api_key = KEY, .new_status = "pulling" };
  struct fx *f = start(&o, 0, 0);
  long st;
  cJSON *j = call(f, "POST", "/v1/gpu/instance/create", VALID_CREATE, &st);

  assert_int_equal(st, 200);
  cJSON_Delete(j);
  j = call(f, "GET", "/v1/gpu/instances?status=pulling", NULL, &st);
  assert_int_equal(list_len(j, "instances"), 1);
  cJSON_Delete(j);
  stop(f);
}

static void test_create_invalid(void **state)
{
  static const char *const bad[] = {
    "{\"productId\":\"p\",\"gpuNum\":0,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\"}",
    "{\"productId\":\"p\",\"gpuNum\":9,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\"}",
    "{\"productId\":\"p\",\"gpuNum\":\"1\",\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\"}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":9,\"imageUrl\":\"x\",\"kind\":\"gpu\"}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":50,\"kind\":\"gpu\"}",
    "{\"productId\":\"\",\"gpuNum\":1,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\"}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"tpu\"}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\","
    "\"ports\":\"8080:http\"}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\","
    "\"ports\":[\"8080/http\"]}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\","
    "\"ports\":\"80/udp\"}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\","
    "\"dry_run\":true}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\","
    "\"envs\":[{\"key\":\"A\"}]}",
    "{\"productId\":\"p\",\"gpuNum\":1,\"rootfsSize\":50,\"imageUrl\":\"x\",\"kind\":\"gpu\","
    "\"billingMode\":\"free\"}",
    "[1]",
    "not json",
  };
  struct fx *f = start(NULL, 0, 0);
  long st;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cJSON *j = call(f, "POST", "/v1/gpu/instance/create", bad[i], &st);
    assert_int_equal(st, 400);
    assert_string_equal(nrd_json_str(j, "reason"), "VALIDATOR_PARAM");
    assert_non_null(nrd_json_str(j, "message"));
    cJSON_Delete(j);
  }
  assert_int_equal(nrd_sim_instance_count(f->sim), 0);
  stop(f);
}

static void test_check_create_request(void **state)
{
  cJSON *req = cJSON_Parse(VALID_CREATE), *envs;
  char why[128];

  assert_true(tu_check_create_request(req, why, sizeof why));
  envs = cJSON_GetObjectItem(req, "envs");
  for (int i = 0; i < 100; i++) {
    cJSON *e = cJSON_CreateObject();
    nrd_json_add_str(e, "key", "K");
    nrd_json_add_str(e, "value", "V");
    cJSON_AddItemToArray(envs, e);
  }
  assert_false(tu_check_create_request(req, why, sizeof why));
  assert_non_null(strstr(why, "envs"));
  cJSON_DeleteItemFromObject(req, "envs");
  cJSON_ReplaceItemInObject(
      req, "ports",
      cJSON_CreateString(
          "1/tcp,2/tcp,3/tcp,4/tcp,5/tcp,6/tcp,7/tcp,8/tcp,9/tcp,10/tcp,11/tcp,12/tcp,13/tcp,"
          "14/tcp,15/tcp,16/tcp"));
  assert_false(tu_check_create_request(req, why, sizeof why));
  cJSON_DeleteItemFromObject(req, "ports");
  cJSON_ReplaceItemInObject(req, "rootfsSize", cJSON_CreateNumber(6145));
  assert_false(tu_check_create_request(req, why, sizeof why));
  cJSON_ReplaceItemInObject(req, "rootfsSize", cJSON_CreateNumber(10));
  assert_true(tu_check_create_request(req, why, sizeof why));
  cJSON_Delete(req);
}

static void test_delete(void **state)
{
  struct fx *f = start(NULL, 3, 0);
  long st;
  cJSON *j = call(f, "POST", "/v1/gpu/instance/delete", "{\"instanceId\":\"i-nope\"}", &st);

  assert_int_equal(st, 400);
  assert_string_equal(nrd_json_str(j, "reason"), "RESOURCE_NOT_FOUND");
  cJSON_Delete(j);
  j = call(f, "POST", "/v1/gpu/instance/delete", "{\"instanceId\":\"i-1\"}", &st);
  assert_int_equal(st, 200);
  assert_true(cJSON_IsObject(j));
  assert_int_equal(cJSON_GetArraySize(j), 0);
  cJSON_Delete(j);
  assert_int_equal(nrd_sim_instance_count(f->sim), 2);
  j = call(f, "POST", "/v1/gpu/instance/delete", "{\"instanceId\":\"i-1\"}", &st);
  assert_int_equal(st, 400);
  cJSON_Delete(j);
  j = call(f, "POST", "/v1/gpu/instance/delete", "{}", &st);
  assert_int_equal(st, 400);
  assert_string_equal(nrd_json_str(j, "reason"), "VALIDATOR_PARAM");
  cJSON_Delete(j);
  stop(f);
}

static void test_routes(void **state)
{
  struct fx *f = start(NULL, 1, 0);
  char url[256];
  struct tu_resp r;
  char *allow;

  snprintf(url, sizeof url, "%s/v1/gpu/instance/delete", f->base);
  assert_int_equal(tu_http("GET", url, AUTH, NULL, &r), 0);
  assert_int_equal(r.status, 405);
  allow = tu_header(&r, "allow");
  assert_string_equal(allow, "POST");
  free(allow);
  tu_resp_cleanup(&r);
  snprintf(url, sizeof url, "%s/v1/nothing", f->base);
  assert_int_equal(tu_http("GET", url, AUTH, NULL, &r), 0);
  assert_int_equal(r.status, 404);
  tu_resp_cleanup(&r);
  stop(f);
}

/* One request to the listing; the raw answer. */
static int raw_list(struct fx *f, struct tu_resp *r)
{
  char url[256];
  snprintf(url, sizeof url, "%s/v1/gpu/instances?pageSize=3", f->base);
  return tu_http("GET", url, AUTH, NULL, r);
}

static void test_fault_status_and_count(void **state)
{
  struct fx *f = start(NULL, 3, 0);
  struct nrd_sim_fault ft = {
    .kind = NRD_SIM_STATUS, .match = "instances", .status = 503, .count = 1
  };
  struct nrd_sim_fault other = { .kind = NRD_SIM_STATUS, .match = "delete", .status = 500 };
  struct nrd_sim_fault custom = {
    .kind = NRD_SIM_STATUS,
    .match = "jobs",
    .status = 400,
    .body =
        "{\"code\":400,\"reason\":\"INSUFFICIENT_RESOURCE\",\"message\":\"full\",\"metadata\":{}}"
  };
  struct tu_resp r;
  long st;
  cJSON *j;

  assert_int_equal(nrd_sim_add_fault(f->sim, &other), 0);
  assert_int_equal(nrd_sim_add_fault(f->sim, &ft), 0);
  assert_int_equal(nrd_sim_add_fault(f->sim, &custom), 0);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 503);
  j = nrd_json_parse(r.body, r.body_len);
  assert_string_equal(nrd_json_str(j, "reason"), "SERVICE_UNAVAILABLE");
  cJSON_Delete(j);
  tu_resp_cleanup(&r);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);
  j = call(f, "GET", "/v1/jobs", NULL, &st);
  assert_int_equal(st, 400);
  assert_string_equal(nrd_json_str(j, "reason"), "INSUFFICIENT_RESOURCE");
  cJSON_Delete(j);
  /* the failing delete did nothing */
  j = call(f, "POST", "/v1/gpu/instance/delete", "{\"instanceId\":\"i-0\"}", &st);
  assert_int_equal(st, 500);
  cJSON_Delete(j);
  assert_int_equal(nrd_sim_instance_count(f->sim), 3);
  nrd_sim_clear_faults(f->sim);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);
  stop(f);
}

static void test_fault_retry_after(void **state)
{
  struct fx *f = start(NULL, 3, 0);
  struct nrd_sim_fault ft = { .kind = NRD_SIM_RETRY_AFTER, .retry_after = "2" };
  struct tu_resp r;
  char *ra;
  cJSON *j;

  assert_int_equal(nrd_sim_add_fault(f->sim, &ft), 0);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 429);
  ra = tu_header(&r, "Retry-After");
  assert_string_equal(ra, "2");
  free(ra);
  j = nrd_json_parse(r.body, r.body_len);
  assert_string_equal(nrd_json_str(j, "reason"), "RATE_LIMIT_EXCEEDED");
  cJSON_Delete(j);
  tu_resp_cleanup(&r);
  stop(f);
}

static void test_fault_delays_and_latency(void **state)
{
  struct fx *f = start(NULL, 3, 0);
  struct nrd_sim_fault delay = {
    .kind = NRD_SIM_DELAY, .match = "instances", .delay_ms = 300, .count = 1
  };
  struct nrd_sim_fault apply = {
    .kind = NRD_SIM_APPLY_THEN_DELAY, .match = "delete", .delay_ms = 300, .count = 1
  };
  struct tu_resp r;
  int64_t t0;
  long st;
  cJSON *j;

  nrd_sim_add_fault(f->sim, &delay);
  nrd_sim_add_fault(f->sim, &apply);
  t0 = nrd_mono_ms();
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 200);
  assert_true(nrd_mono_ms() - t0 >= 300);
  tu_resp_cleanup(&r);

  /* a second instance is visible as deleted while the delete still waits */
  t0 = nrd_mono_ms();
  j = call(f, "POST", "/v1/gpu/instance/delete", "{\"instanceId\":\"i-2\"}", &st);
  assert_int_equal(st, 200);
  assert_true(nrd_mono_ms() - t0 >= 300);
  assert_int_equal(nrd_sim_instance_count(f->sim), 2);
  cJSON_Delete(j);

  nrd_sim_set_latency(f->sim, 200);
  t0 = nrd_mono_ms();
  assert_int_equal(raw_list(f, &r), 0);
  assert_true(nrd_mono_ms() - t0 >= 200);
  tu_resp_cleanup(&r);
  stop(f);
}

static void test_fault_bodies(void **state)
{
  struct fx *f = start(NULL, 3, 0);
  struct tu_resp normal, r;
  struct nrd_sim_fault ft = { .kind = NRD_SIM_HTML, .status = 502 };
  char *ct;
  cJSON *j;

  assert_int_equal(raw_list(f, &normal), 0);

  nrd_sim_add_fault(f->sim, &ft);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 502);
  ct = tu_header(&r, "Content-Type");
  assert_string_equal(ct, "text/html");
  free(ct);
  assert_non_null(strstr(r.body, "<html>"));
  tu_resp_cleanup(&r);
  nrd_sim_clear_faults(f->sim);

  ft = (struct nrd_sim_fault){ .kind = NRD_SIM_TRUNCATED };
  nrd_sim_add_fault(f->sim, &ft);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, normal.body_len / 2);
  assert_memory_equal(r.body, normal.body, r.body_len);
  assert_null(nrd_json_parse(r.body, r.body_len));
  tu_resp_cleanup(&r);
  nrd_sim_clear_faults(f->sim);

  ft = (struct nrd_sim_fault){ .kind = NRD_SIM_MALFORMED };
  nrd_sim_add_fault(f->sim, &ft);
  assert_int_equal(raw_list(f, &r), 0);
  assert_string_equal(r.body, "{not json");
  tu_resp_cleanup(&r);
  nrd_sim_clear_faults(f->sim);

  ft = (struct nrd_sim_fault){ .kind = NRD_SIM_EMPTY };
  nrd_sim_add_fault(f->sim, &ft);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 0);
  tu_resp_cleanup(&r);
  nrd_sim_clear_faults(f->sim);

  ft = (struct nrd_sim_fault){ .kind = NRD_SIM_OVERSIZED, .size = 3 * 1024 * 1024 + 7 };
  nrd_sim_add_fault(f->sim, &ft);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.body_len, 3 * 1024 * 1024 + 7);
  j = cJSON_ParseWithLength(r.body, r.body_len);
  assert_non_null(j);
  assert_true(cJSON_IsArray(cJSON_GetObjectItem(j, "instances")));
  cJSON_Delete(j);
  tu_resp_cleanup(&r);
  nrd_sim_clear_faults(f->sim);

  ft = (struct nrd_sim_fault){ .kind = NRD_SIM_DEEP, .size = 5000 };
  nrd_sim_add_fault(f->sim, &ft);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.body_len, 10000);
  assert_int_equal(r.body[0], '[');
  assert_int_equal(r.body[4999], '[');
  assert_int_equal(r.body[5000], ']');
  assert_null(nrd_json_parse(r.body, r.body_len));
  tu_resp_cleanup(&r);
  nrd_sim_clear_faults(f->sim);
  tu_resp_cleanup(&normal);
  stop(f);
}

static void test_fault_rewrites(void **state)
{
  struct fx *f = start(NULL, 3, 0);
  struct nrd_sim_fault ft = { .kind = NRD_SIM_WRONG_TYPES };
  const cJSON *inst;
  long st;
  cJSON *j;

  nrd_sim_add_fault(f->sim, &ft);
  j = call(f, "GET", "/v1/gpu/instances", NULL, &st);
  assert_int_equal(st, 200);
  assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "total")));
  inst = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "instances"), 0);
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(inst, "gpuNum")));
  assert_true(cJSON_IsString(cJSON_GetObjectItem(inst, "rootfsSize")));
  assert_true(cJSON_IsObject(cJSON_GetObjectItem(inst, "portMappings")));
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(inst, "id")));
  cJSON_Delete(j);
  nrd_sim_clear_faults(f->sim);

  ft = (struct nrd_sim_fault){ .kind = NRD_SIM_DROP_FIELDS, .match = "instances" };
  nrd_sim_add_fault(f->sim, &ft);
  j = call(f, "GET", "/v1/gpu/instances", NULL, &st);
  assert_null(cJSON_GetObjectItem(j, "total"));
  inst = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "instances"), 0);
  assert_string_equal(nrd_json_str(inst, "id"), "i-0");
  assert_int_equal(cJSON_GetArraySize(inst), 1);
  cJSON_Delete(j);
  stop(f);
}

static void test_fault_slow_drip_and_reset(void **state)
{
  struct fx *f = start(NULL, 0, 0);
  struct nrd_sim_fault ft = { .kind = NRD_SIM_SLOW_DRIP, .delay_ms = 20 };
  struct tu_resp r;
  int64_t t0;

  nrd_sim_add_fault(f->sim, &ft);
  t0 = nrd_mono_ms();
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "{\"instances\":[],\"total\":0}");
  assert_true(nrd_mono_ms() - t0 >= 20 * (int64_t)(r.body_len - 1));
  tu_resp_cleanup(&r);
  nrd_sim_clear_faults(f->sim);

  ft = (struct nrd_sim_fault){ .kind = NRD_SIM_RESET, .count = 1 };
  nrd_sim_add_fault(f->sim, &ft);
  assert_int_not_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 0);
  tu_resp_cleanup(&r);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);
  stop(f);
}

static void test_fault_probability(void **state)
{
  struct fx *f = start(NULL, 0, 0);
  struct nrd_sim_fault ft = {
    .kind = NRD_SIM_STATUS, .status = 500, .probability = 0.5, .seed = 42
  };
  struct tu_resp r;
  int failed = 0;

  nrd_sim_add_fault(f->sim, &ft);
  for (int i = 0; i < 60; i++) {
    assert_int_equal(raw_list(f, &r), 0);
    failed += r.status == 500;
    tu_resp_cleanup(&r);
  }
  assert_true(failed > 10 && failed < 50);
  ft.probability = 1.5;
  assert_int_equal(nrd_sim_add_fault(f->sim, &ft), -1);
  stop(f);
}

static void test_request_log(void **state)
{
  struct fx *f = start(NULL, 2, 0);
  struct nrd_sim_request *reqs;
  size_t n;
  long st;
  cJSON *j;

  j = call(f, "GET", "/v1/gpu/instances?pageNum=1&pageSize=5&name=worker", NULL, &st);
  cJSON_Delete(j);
  j = call(f, "POST", "/v1/gpu/instance/delete", "{\"instanceId\":\"i-0\"}", &st);
  cJSON_Delete(j);
  n = nrd_sim_requests(f->sim, &reqs);
  assert_int_equal(n, 2);
  assert_string_equal(reqs[0].method, "GET");
  assert_string_equal(reqs[0].path, "/gpu-instance/openapi/v1/gpu/instances");
  assert_string_equal(reqs[0].query, "pageNum=1&pageSize=5&name=worker");
  assert_string_equal(reqs[0].authorization, "Bearer " KEY);
  assert_string_equal(reqs[1].body, "{\"instanceId\":\"i-0\"}");
  assert_true(reqs[1].at_ms >= reqs[0].at_ms && reqs[0].at_ms > 0);
  nrd_sim_requests_free(reqs, n);
  assert_int_equal(nrd_sim_count(f->sim, "POST", "/instance/delete"), 1);
  assert_int_equal(nrd_sim_count(f->sim, NULL, "/instances"), 1);
  assert_int_equal(nrd_sim_count(f->sim, "GET", "/instance/delete"), 0);
  nrd_sim_clear_requests(f->sim);
  assert_int_equal(nrd_sim_count(f->sim, NULL, ""), 0);
  stop(f);
}

static void test_put_remove(void **state)
{
  struct fx *f = start(NULL, 2, 0);
  cJSON *inst = cJSON_Parse("{\"id\":\"i-x\",\"name\":\"extra\",\"status\":\"running\"}");

  assert_int_equal(nrd_sim_put_instance(f->sim, inst), 0);
  assert_int_equal(nrd_sim_put_instance(f->sim, inst), 0);
  assert_int_equal(nrd_sim_instance_count(f->sim), 3);
  assert_int_equal(nrd_sim_count_by_name(f->sim, "extra"), 1);
  assert_int_equal(nrd_sim_count_by_name(f->sim, "extr"), 0);
  assert_int_equal(nrd_sim_remove_instance(f->sim, "i-x"), 0);
  assert_int_equal(nrd_sim_remove_instance(f->sim, "i-x"), -1);
  assert_int_equal(nrd_sim_instance_count(f->sim), 2);
  assert_int_equal(nrd_sim_load(f->sim, "{\"instances\":{}}"), -1);
  assert_int_equal(nrd_sim_load(f->sim, "nope"), -1);
  assert_int_equal(nrd_sim_instance_count(f->sim), 2);
  cJSON_Delete(inst);
  stop(f);
}

static void test_control_endpoints(void **state)
{
  struct fx *f = start(NULL, 2, 0);
  char url[256];
  struct tu_resp r;
  cJSON *j;
  int64_t n;

  snprintf(url, sizeof url, "%s/__sim/scenario", f->root);
  assert_int_equal(
      tu_http("POST", url, NULL,
              "{\"instances\":[{\"id\":\"i-a\",\"name\":\"a\",\"status\":\"running\"}],"
              "\"jobs\":[],\"products\":[]}",
              &r),
      0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);
  assert_int_equal(nrd_sim_instance_count(f->sim), 1);
  assert_int_equal(tu_http("POST", url, NULL, "[", &r), 0);
  assert_int_equal(r.status, 400);
  tu_resp_cleanup(&r);

  snprintf(url, sizeof url, "%s/__sim/faults", f->root);
  assert_int_equal(tu_http("POST", url, NULL,
                           "{\"kind\":\"status\",\"match\":\"delete\",\"status\":500,\"count\":1}",
                           &r),
                   0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);
  assert_int_equal(tu_http("POST", url, NULL, "{\"kind\":\"bogus\"}", &r), 0);
  assert_int_equal(r.status, 400);
  tu_resp_cleanup(&r);
  j = call(f, "POST", "/v1/gpu/instance/delete", "{\"instanceId\":\"i-a\"}", &(long){ 0 });
  cJSON_Delete(j);
  assert_int_equal(nrd_sim_instance_count(f->sim), 1);
  assert_int_equal(tu_http("POST", url, NULL,
                           "[{\"kind\":\"retry_after\",\"retry_after\":3,\"match\":\"jobs\"}]", &r),
                   0);
  tu_resp_cleanup(&r);
  snprintf(url, sizeof url, "%s/v1/jobs", f->base);
  assert_int_equal(tu_http("GET", url, AUTH, NULL, &r), 0);
  assert_int_equal(r.status, 429);
  tu_resp_cleanup(&r);
  snprintf(url, sizeof url, "%s/__sim/faults", f->root);
  assert_int_equal(tu_http("POST", url, NULL, "{}", &r), 0);
  tu_resp_cleanup(&r);
  snprintf(url, sizeof url, "%s/v1/jobs", f->base);
  assert_int_equal(tu_http("GET", url, AUTH, NULL, &r), 0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);

  snprintf(url, sizeof url, "%s/__sim/state", f->root);
  assert_int_equal(tu_http("GET", url, NULL, NULL, &r), 0);
  j = nrd_json_parse(r.body, r.body_len);
  assert_int_equal(list_len(j, "instances"), 1);
  assert_true(nrd_json_i64(j, "requests", &n));
  assert_int_equal(n, 3); /* control calls are not logged */
  cJSON_Delete(j);
  tu_resp_cleanup(&r);
  snprintf(url, sizeof url, "%s/__sim/requests", f->root);
  assert_int_equal(tu_http("GET", url, NULL, NULL, &r), 0);
  j = nrd_json_parse(r.body, r.body_len);
  assert_int_equal(cJSON_GetArraySize(j), 3);
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(j, 0), "method"), "POST");
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(j, 0), "authorization"), "Bearer " KEY);
  cJSON_Delete(j);
  tu_resp_cleanup(&r);
  stop(f);
}

static void test_body_cap_and_threads(void **state)
{
  struct nrd_sim_options o = { .api_key = KEY, .threads = 2 };
  struct fx *f = start(&o, 2, 0);
  size_t big = 1024 * 1024 + 10;
  char *body = nrd_xmalloc(big + 1);
  char url[256];
  struct tu_resp r;

  memset(body, ' ', big);
  body[big] = '\0';
  snprintf(url, sizeof url, "%s/v1/gpu/instance/create", f->base);
  assert_int_equal(tu_http("POST", url, AUTH, body, &r), 0);
  assert_int_equal(r.status, 413);
  tu_resp_cleanup(&r);
  free(body);
  assert_int_equal(raw_list(f, &r), 0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);
  stop(f);
}

static void test_make_fleet(void **state)
{
  int64_t now = 1764345600;
  cJSON *sc = nrd_sim_make_fleet(10, 3, now);
  const cJSON *inst = cJSON_GetObjectItem(sc, "instances"), *it;
  int migrating = 0, failed_jobs = 0, no_product = 0;

  assert_int_equal(cJSON_GetArraySize(inst), 10);
  cJSON_ArrayForEach(it, inst) {
    migrating += strcmp(nrd_json_str(it, "status"), "migrating") == 0;
    no_product += cJSON_GetObjectItem(it, "productId") == NULL;
    assert_string_equal(nrd_json_str(it, "gpuNum"), "1");
  }
  assert_int_equal(migrating, 3);
  assert_true(no_product >= 1);
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(sc, "jobs")) {
    int64_t created;
    if (strcmp(nrd_json_str(cJSON_GetObjectItem(it, "state"), "state"), "fail") != 0)
      continue;
    failed_jobs++;
    assert_true(nrd_json_i64(it, "createdAt", &created));
    assert_true(created > now - 3600 && created <= now);
  }
  assert_int_equal(failed_jobs, 3);
  assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(sc, "products")) >= 3);
  cJSON_Delete(sc);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pagination_base1),
    cmocka_unit_test(test_pagination_base0_cap),
    cmocka_unit_test(test_instance_shape_and_filters),
    cmocka_unit_test(test_auth),
    cmocka_unit_test(test_jobs),
    cmocka_unit_test(test_job_state_and_one_instance),
    cmocka_unit_test(test_rate_limit),
    cmocka_unit_test(test_products),
    cmocka_unit_test(test_clusters_and_products_in_cluster),
    cmocka_unit_test(test_create),
    cmocka_unit_test(test_create_new_status),
    cmocka_unit_test(test_create_invalid),
    cmocka_unit_test(test_check_create_request),
    cmocka_unit_test(test_delete),
    cmocka_unit_test(test_routes),
    cmocka_unit_test(test_fault_status_and_count),
    cmocka_unit_test(test_fault_retry_after),
    cmocka_unit_test(test_fault_delays_and_latency),
    cmocka_unit_test(test_fault_bodies),
    cmocka_unit_test(test_fault_rewrites),
    cmocka_unit_test(test_fault_slow_drip_and_reset),
    cmocka_unit_test(test_fault_probability),
    cmocka_unit_test(test_request_log),
    cmocka_unit_test(test_put_remove),
    cmocka_unit_test(test_control_endpoints),
    cmocka_unit_test(test_body_cap_and_threads),
    cmocka_unit_test(test_make_fleet),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
