/* The replacement is the same instance (issue 14): every field Novita lets
 * a create set is carried, byte for byte, for GPU and CPU instances; the
 * reserved ports are left out and named; a local volume is said to be lost.
 * End to end: real HTTP into the service, real libcurl out to the simulator,
 * which refuses what Novita's create refuses. */
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

#define ENTRYPOINT "/bin/sh -c 'exec \"$0\" \"$@\"' --"
#define VPC "vpc-550e8400-e29b-41d4-a716-446655440000"

static cJSON *obj_in(cJSON *array)
{
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToArray(array, o);
  return o;
}

static void add_port(cJSON *ports, double port, const char *type)
{
  cJSON *p = obj_in(ports);
  nrd_json_add_num(p, "port", port);
  if (type)
    nrd_json_add_str(p, "type", type);
}

static void add_mount(cJSON *mounts, const char *type, const char *id, const char *path)
{
  cJSON *m = obj_in(mounts);
  nrd_json_add_str(m, "type", type);
  nrd_json_add_str(m, "id", id);
  nrd_json_add_str(m, "mountPath", path);
}

/* A GPU instance as Novita's get shows one: entrypoint, network {id, ip},
 * minCudaVersion and tools, a reserved port, a local volume. */
static cJSON *gpu_instance(void)
{
  cJSON *inst = tu_instance("i-gpu", "gpu-1", "migrating");
  nrd_json_add_str(inst, "entrypoint", ENTRYPOINT);
  cJSON *net = cJSON_AddObjectToObject(inst, "network");
  nrd_json_add_str(net, "id", VPC);
  nrd_json_add_str(net, "ip", "10.2.1.1");
  nrd_json_add_str(inst, "minCudaVersion", "12.4");
  cJSON *tools = cJSON_AddArrayToObject(inst, "tools");
  cJSON *t = obj_in(tools);
  nrd_json_add_str(t, "name", "Jupyter");
  nrd_json_add_str(t, "port", "8888");
  nrd_json_add_str(t, "type", "http");
  cJSON *ports = cJSON_AddArrayToObject(inst, "portMappings");
  add_port(ports, 8080, "http");
  add_port(ports, 2222, "tcp");
  add_port(ports, 22, "tcp");
  cJSON *mounts = cJSON_AddArrayToObject(inst, "volumeMounts");
  add_mount(mounts, "local", "", "/scratch");
  add_mount(mounts, "network", "ns-1", "/data");
  return inst;
}

static void expect_gpu_request(const cJSON *req)
{
  assert_string_equal(nrd_json_str(req, "entrypoint"), ENTRYPOINT);
  assert_string_equal(nrd_json_str(req, "networkId"), VPC);
  assert_string_equal(nrd_json_str(req, "minCudaVersion"), "12.4");
  const cJSON *tools = cJSON_GetObjectItem(req, "tools");
  assert_int_equal(cJSON_GetArraySize(tools), 1);
  char *text = nrd_json_print(tools);
  assert_string_equal(text, "[{\"name\":\"Jupyter\",\"port\":\"8888\",\"type\":\"http\"}]");
  free(text);
  assert_string_equal(nrd_json_str(req, "ports"), "8080/http, 22/tcp");
  assert_null(cJSON_GetObjectItem(req, "localStorageMountPoint"));
  assert_int_equal(cJSON_GetObjectItem(req, "gpuNum")->valueint, 2);
  assert_int_equal(cJSON_GetObjectItem(req, "rootfsSize")->valueint, 80);
}

static void expect_notes(const cJSON *o, const char *local)
{
  const cJSON *dropped = cJSON_GetObjectItem(o, "droppedPorts");
  assert_int_equal(cJSON_GetArraySize(dropped), 1);
  assert_int_equal(cJSON_GetArrayItem(dropped, 0)->valueint, 2222);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "localStorageLost")));
  assert_string_equal(nrd_json_str(o, "localStorageMountPath"), local);
}

/* The stack serving gpu_instance(), whose migration job-gpu failed. */
static void start_gpu(struct tu_stack *s)
{
  tu_stack_init(s, NULL);
  cJSON *sc = tu_scenario();
  tu_add(sc, "instances", gpu_instance());
  tu_add(sc, "jobs", tu_job("job-gpu", "instanceMigrate", "i-gpu", now_s() - 60, "fail"));
  tu_stack_load(s, sc);
  cJSON_Delete(sc);
  tu_stack_start(s);
}

/* GPU: entrypoint, networkId (from network.id), minCudaVersion and tools in
 * the create, byte for byte; 2222 left out and named; the local volume named
 * lost. The replacement, listed back, carries them too. */
static void test_gpu_fields_carried(void **state)
{
  (void)state;
  struct tu_stack s;
  start_gpu(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  cJSON *cr = tu_sim_creates(s.sim);
  assert_int_equal(cJSON_GetArraySize(cr), 1);
  const cJSON *req = cJSON_GetArrayItem(cr, 0);
  char why[256] = "";
  assert_true(tu_check_create_request(req, why, sizeof(why)));
  expect_gpu_request(req);
  const cJSON *o = tu_outcome_for(rep, "i-gpu");
  assert_string_equal(nrd_json_str(o, "action"), "recreated");
  expect_notes(o, "/scratch");

  /* Novita lists the replacement with what the create carried. */
  cJSON *all = nrd_sim_instances(s.sim);
  const cJSON *inst, *found = NULL;
  cJSON_ArrayForEach(inst, all) {
    if (!strcmp(nrd_json_str(inst, "id"), nrd_json_str(o, "newInstanceId")))
      found = inst;
  }
  assert_non_null(found);
  assert_string_equal(nrd_json_str(found, "entrypoint"), ENTRYPOINT);
  assert_string_equal(nrd_json_str(cJSON_GetObjectItem(found, "network"), "id"), VPC);
  assert_non_null(nrd_json_str(cJSON_GetObjectItem(found, "network"), "ip"));
  cJSON_Delete(all);
  cJSON_Delete(cr);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* A CPU instance without productId, as Novita lists one. */
static cJSON *cpu_instance(const char *id, int envs)
{
  cJSON *inst = tu_instance(id, id, "migrating");
  cJSON_DeleteItemFromObject(inst, "productId");
  cJSON_DeleteItemFromObject(inst, "gpuNum");
  cJSON_DeleteItemFromObject(inst, "rootfsSize");
  cJSON_ReplaceItemInObject(inst, "productName", cJSON_CreateString("CPU 8 vCPU 32GB"));
  cJSON_ReplaceItemInObject(inst, "kind", cJSON_CreateString("cpu"));
  nrd_json_add_str(inst, "entrypoint", ENTRYPOINT);
  cJSON *net = cJSON_AddObjectToObject(inst, "network");
  nrd_json_add_str(net, "id", VPC);
  nrd_json_add_str(inst, "minCudaVersion", "12.4"); /* a gpu field: not sent for cpu */
  cJSON *ports = cJSON_AddArrayToObject(inst, "portMappings");
  add_port(ports, 2223, "tcp");
  add_port(ports, 80, "http");
  cJSON *list = cJSON_AddArrayToObject(inst, "envs");
  for (int i = 0; i < envs; i++) {
    char key[16];
    snprintf(key, sizeof(key), "K%02d", i);
    cJSON *e = obj_in(list);
    nrd_json_add_str(e, "key", key);
    nrd_json_add_str(e, "value", "v = \"ü\"");
  }
  cJSON *mounts = cJSON_AddArrayToObject(inst, "volumeMounts");
  add_mount(mounts, "local", "", "/workspace");
  return inst;
}

static cJSON *cpu_product(const char *id, const char *spot)
{
  cJSON *p = tu_product(id, "CN-HK-01 (Hong Kong)", spot, true);
  cJSON_ReplaceItemInObject(p, "name", cJSON_CreateString("CPU 8 vCPU 32GB"));
  return p;
}

/* CPU: Novita's CPU create: no gpuNum, rootfsSize or minCudaVersion;
 * localStorageMountPoint from the local volume; the product fallback looks in
 * GET /v1/cpu/products; 30 envs pass, 31 fail before anything is deleted. */
static void test_cpu_fields_carried(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_scenario();
  tu_add(sc, "instances", cpu_instance("i-cpu", 30));
  tu_add(sc, "jobs", tu_job("job-cpu", "instanceMigrate", "i-cpu", now_s() - 60, "fail"));
  tu_add(sc, "instances", cpu_instance("i-cpu-31", 31));
  tu_add(sc, "jobs", tu_job("job-cpu-31", "instanceMigrate", "i-cpu-31", now_s() - 60, "fail"));
  cJSON *cpu = cJSON_AddArrayToObject(sc, "cpuProducts");
  cJSON_AddItemToArray(cpu, cpu_product("cpu-dear", "9000"));
  cJSON_AddItemToArray(cpu, cpu_product("cpu-cheap", "3000"));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  assert_true(nrd_sim_count(s.sim, "GET", "/v1/cpu/products") >= 1);
  /* Novita's CPU product list documents productName and clusterId only. */
  struct nrd_sim_request *log = NULL;
  size_t n_log = nrd_sim_requests(s.sim, &log);
  for (size_t i = 0; i < n_log; i++)
    if (strstr(log[i].path, "/v1/cpu/products"))
      assert_null(strstr(log[i].query ? log[i].query : "", "billingMethod"));
  nrd_sim_requests_free(log, n_log);
  cJSON *cr = tu_sim_creates(s.sim);
  assert_int_equal(cJSON_GetArraySize(cr), 1);
  const cJSON *req = cJSON_GetArrayItem(cr, 0);
  char why[256] = "";
  assert_true(tu_check_create_request(req, why, sizeof(why)));
  assert_string_equal(nrd_json_str(req, "kind"), "cpu");
  assert_string_equal(nrd_json_str(req, "productId"), "cpu-cheap");
  assert_null(cJSON_GetObjectItem(req, "gpuNum"));
  assert_null(cJSON_GetObjectItem(req, "rootfsSize"));
  assert_null(cJSON_GetObjectItem(req, "minCudaVersion"));
  assert_string_equal(nrd_json_str(req, "localStorageMountPoint"), "/workspace");
  assert_string_equal(nrd_json_str(req, "entrypoint"), ENTRYPOINT);
  assert_string_equal(nrd_json_str(req, "networkId"), VPC);
  assert_string_equal(nrd_json_str(req, "ports"), "80/http");
  const cJSON *envs = cJSON_GetObjectItem(req, "envs");
  assert_int_equal(cJSON_GetArraySize(envs), 30);
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(envs, 29), "key"), "K29");
  assert_string_equal(nrd_json_str(cJSON_GetArrayItem(envs, 29), "value"), "v = \"ü\"");
  const cJSON *o = tu_outcome_for(rep, "i-cpu");
  assert_string_equal(nrd_json_str(o, "action"), "recreated");
  const cJSON *dropped = cJSON_GetObjectItem(o, "droppedPorts");
  assert_int_equal(cJSON_GetArrayItem(dropped, 0)->valueint, 2223);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "localStorageLost")));
  assert_string_equal(nrd_json_str(o, "localStorageMountPath"), "/workspace");

  o = tu_outcome_for(rep, "i-cpu-31");
  assert_string_equal(nrd_json_str(o, "action"), "failed");
  assert_non_null(strstr(nrd_json_str(o, "reason"), "at most 30"));
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 1);
  cJSON_Delete(cr);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

/* The dry run shows every carried field and the notes, sends nothing. */
static void test_dry_run_shows_carried_fields(void **state)
{
  (void)state;
  struct tu_stack s;
  start_gpu(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true,\"dryRun\":true}", &status);
  assert_int_equal(status, 200);
  const cJSON *o = tu_outcome_for(rep, "i-gpu");
  assert_string_equal(nrd_json_str(o, "action"), "planned");
  expect_gpu_request(cJSON_GetObjectItem(o, "request"));
  expect_notes(o, "/scratch");
  assert_int_equal(nrd_sim_count(s.sim, "POST", NULL), 0);
  cJSON_Delete(rep);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_gpu_fields_carried),
    cmocka_unit_test(test_cpu_fields_carried),
    cmocka_unit_test(test_dry_run_shows_carried_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
