/* A sample fleet for the demo, the tests and the benchmark. */

#include <stdio.h>
#include <stdlib.h>

#include "nrd/json.h"
#include "nrd/sim.h"

#define REGION_HK "CN-HK-01 (Hong Kong)"
#define PRODUCT_NAME "RTX 4090 24GB"

static void add_text(cJSON *o, const char *key, long long v)
{
  char buf[24];
  snprintf(buf, sizeof buf, "%lld", v);
  nrd_json_add_str(o, key, buf);
}

static cJSON *product(const char *id, const char *region, const cJSON *spot_price, bool available)
{
  cJSON *p = nrd_json_object();
  cJSON *regions = nrd_json_array();
  cJSON *methods = nrd_json_array();

  nrd_json_add_str(p, "id", id);
  nrd_json_add_str(p, "name", PRODUCT_NAME);
  nrd_json_add_num(p, "cpuPerGpu", 16);
  nrd_json_add_num(p, "memoryPerGpu", 62);
  nrd_json_add_num(p, "diskPerGpu", 200);
  nrd_json_add_bool(p, "availableDeploy", available);
  nrd_json_add_num(p, "minRootFS", 10);
  nrd_json_add_num(p, "maxRootFS", 1000);
  nrd_json_add_num(p, "minLocalStorage", 0);
  nrd_json_add_num(p, "maxLocalStorage", 1000);
  cJSON_AddItemToArray(regions, nrd_json_checked(cJSON_CreateString(region)));
  cJSON_AddItemToObject(p, "regions", regions);
  nrd_json_add_num(p, "price", 69000);
  cJSON_AddItemToObject(p, "monthlyPrice", nrd_json_array());
  cJSON_AddItemToArray(methods, nrd_json_checked(cJSON_CreateString("onDemand")));
  cJSON_AddItemToArray(methods, nrd_json_checked(cJSON_CreateString("spot")));
  cJSON_AddItemToObject(p, "billingMethods", methods);
  cJSON_AddItemToObject(p, "spotPrice", nrd_json_checked(cJSON_Duplicate(spot_price, true)));
  nrd_json_add_str(p, "inventoryState", available ? "normal" : "none");
  return p;
}

/* The products of the fleet. With productName "RTX 4090 24GB" in CN-HK-01 the
 * right choice is prod-4090-hk-b: hk-c is cheaper but not deployable, hk-free
 * has a zero spot price, prod-4090-us is cheaper but in another region.
 * Spot prices come both as numbers and as numeric strings. */
static cJSON *products(void)
{
  cJSON *arr = nrd_json_array();
  cJSON *n35 = nrd_json_checked(cJSON_CreateString("35000")),
        *n29 = nrd_json_checked(cJSON_CreateNumber(29000));
  cJSON *n20 = nrd_json_checked(cJSON_CreateNumber(20000)),
        *n0 = nrd_json_checked(cJSON_CreateString("0"));
  cJSON *n10 = nrd_json_checked(cJSON_CreateNumber(10000));

  cJSON_AddItemToArray(arr, product("prod-4090-hk-a", REGION_HK, n35, true));
  cJSON_AddItemToArray(arr, product("prod-4090-hk-b", REGION_HK, n29, true));
  cJSON_AddItemToArray(arr, product("prod-4090-hk-c", REGION_HK, n20, false));
  cJSON_AddItemToArray(arr, product("prod-4090-hk-free", REGION_HK, n0, true));
  cJSON_AddItemToArray(arr, product("prod-4090-us", "US-CA-01 (California)", n10, true));
  cJSON_Delete(n35);
  cJSON_Delete(n29);
  cJSON_Delete(n20);
  cJSON_Delete(n0);
  cJSON_Delete(n10);
  return arr;
}

static cJSON *kv(const char *k1, const char *v1, const char *k2, const char *v2)
{
  cJSON *o = nrd_json_object();
  nrd_json_add_str(o, k1, v1);
  nrd_json_add_str(o, k2, v2);
  return o;
}

static cJSON *port(int number, const char *endpoint, const char *type)
{
  cJSON *o = nrd_json_object();
  nrd_json_add_num(o, "port", number);
  nrd_json_add_str(o, "endpoint", endpoint);
  nrd_json_add_str(o, "type", type);
  return o;
}

static cJSON *mount(const char *type, const char *size, const char *id, const char *path)
{
  cJSON *o = nrd_json_object();
  nrd_json_add_str(o, "type", type);
  nrd_json_add_str(o, "size", size);
  nrd_json_add_str(o, "id", id);
  nrd_json_add_str(o, "mountPath", path);
  return o;
}

/* Instance i: every fifth has no productId (the product fallback runs),
 * every third a network volume; all carry passwords to be stripped. */
static cJSON *instance(size_t i, bool failed, int64_t now_s)
{
  cJSON *o = nrd_json_object();
  cJSON *ports = nrd_json_array(), *envs = nrd_json_array();
  cJSON *mounts = nrd_json_array(), *ssh, *jupyter;
  char buf[128], id[32], secret[64];

  snprintf(id, sizeof id, "i-%zu", i);
  nrd_json_add_str(o, "id", id);
  snprintf(buf, sizeof buf, "worker-%04zu", i);
  nrd_json_add_str(o, "name", buf);
  nrd_json_add_str(o, "clusterId", "cl-hk-01");
  nrd_json_add_str(o, "clusterName", REGION_HK);
  nrd_json_add_str(o, "status", failed ? "migrating" : "running");
  nrd_json_add_str(o, "imageUrl", "ghcr.io/example/worker:1.4.2");
  nrd_json_add_str(o, "imageAuthId", i % 4 == 1 ? "auth-registry-1" : "");
  nrd_json_add_str(o, "command", "python serve.py --port 8080");
  nrd_json_add_str(o, "cpuNum", "16");
  nrd_json_add_str(o, "memory", "62");
  nrd_json_add_str(o, "gpuNum", "1");
  if (i % 5 != 4)
    nrd_json_add_str(o, "productId", "prod-4090-hk-a");
  nrd_json_add_str(o, "productName", PRODUCT_NAME);
  nrd_json_add_num(o, "rootfsSize", 50);
  snprintf(buf, sizeof buf, "%s-8080.sim.example:443", id);
  cJSON_AddItemToArray(ports, port(8080, buf, "http"));
  snprintf(buf, sizeof buf, "%s-22.sim.example:30022", id);
  cJSON_AddItemToArray(ports, port(22, buf, "tcp"));
  cJSON_AddItemToObject(o, "portMappings", ports);
  cJSON_AddItemToArray(envs, kv("key", "MODEL", "value", "llama-3-8b"));
  snprintf(secret, sizeof secret, "hf_sim_secret_%zu", i);
  cJSON_AddItemToArray(envs, kv("key", "HF_TOKEN", "value", secret));
  cJSON_AddItemToObject(o, "envs", envs);
  cJSON_AddItemToArray(mounts, mount("local", "100", "", "/data"));
  if (i % 3 == 0) {
    snprintf(buf, sizeof buf, "ns-%zu", i);
    cJSON_AddItemToArray(mounts, mount("network", "200", buf, "/mnt/shared"));
  }
  cJSON_AddItemToObject(o, "volumeMounts", mounts);
  nrd_json_add_str(o, "kind", "gpu");
  nrd_json_add_str(o, "billingMode", "spot");
  nrd_json_add_str(o, "spotStatus", failed ? "reclaiming" : "running");
  add_text(o, "spotReclaimTime", failed ? (long long)(now_s - 3600) : 0);
  add_text(o, "createdAt", (long long)(now_s - 86400 * 7));
  snprintf(secret, sizeof secret, "sim-ssh-pass-%zu", i);
  nrd_json_add_str(o, "sshPassword", secret);
  ssh = nrd_json_object();
  nrd_json_add_str(ssh, "user", "root");
  nrd_json_add_str(ssh, "password", secret);
  nrd_json_add_str(ssh, "command", "ssh root@127.0.0.1 -p 30022");
  cJSON_AddItemToObject(o, "connectComponentSSH", ssh);
  jupyter = nrd_json_object();
  nrd_json_add_str(jupyter, "url", "https://jupyter.sim.example");
  snprintf(secret, sizeof secret, "sim-jupyter-token-%zu", i);
  nrd_json_add_str(jupyter, "token", secret);
  cJSON_AddItemToObject(o, "connectComponentJupyter", jupyter);
  return o;
}

static cJSON *job(const char *job_id, const char *type, const char *instance_id, int64_t created_s,
                  const char *state, const char *error, const char *message)
{
  cJSON *o = nrd_json_object();
  cJSON *st = nrd_json_object();
  nrd_json_add_str(o, "Id", job_id);
  nrd_json_add_str(o, "user", "u-sim");
  nrd_json_add_str(o, "type", type);
  nrd_json_add_str(o, "instanceId", instance_id);
  add_text(o, "createdAt", (long long)created_s);
  nrd_json_add_str(st, "state", state);
  nrd_json_add_str(st, "error", error);
  nrd_json_add_str(st, "message", message);
  cJSON_AddItemToObject(o, "state", st);
  nrd_json_add_str(o, "logAddress", "");
  return o;
}

/* Each failed instance has a failed migration job within the last hour
 * (autoInstanceMigrate and instanceMigrate alternate) and an older one that
 * succeeded, so only the newest job decides; the first running instance has
 * a successful migration. */
static cJSON *jobs(size_t fleet, size_t failed, int64_t now_s)
{
  cJSON *arr = nrd_json_array();
  char id[48], inst[32];

  for (size_t i = 0; i < failed; i++) {
    snprintf(inst, sizeof inst, "i-%zu", i);
    snprintf(id, sizeof id, "job-old-%zu", i);
    cJSON_AddItemToArray(arr, job(id, "instanceMigrate", inst, now_s - 7200 - (int64_t)(i % 600),
                                  "success", "", ""));
    snprintf(id, sizeof id, "job-%zu", i);
    cJSON_AddItemToArray(arr, job(id, i % 2 ? "instanceMigrate" : "autoInstanceMigrate", inst,
                                  now_s - 60 - (int64_t)(i % 3000), "fail", "MIGRATE_FAILED",
                                  "migration failed: no capacity on target"));
  }
  if (failed < fleet) {
    snprintf(inst, sizeof inst, "i-%zu", failed);
    cJSON_AddItemToArray(
        arr, job("job-ok", "autoInstanceMigrate", inst, now_s - 1800, "success", "", ""));
  }
  return arr;
}

/* GET /v1/clusters: the fleet's cluster and one in another region. */
static cJSON *clusters(void)
{
  static const char *const list[][2] = { { "cl-hk-01", REGION_HK },
                                         { "cl-us-01", "US-CA-01 (California)" } };
  cJSON *arr = nrd_json_array();
  for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
    cJSON *c = nrd_json_object();
    nrd_json_add_str(c, "id", list[i][0]);
    nrd_json_add_str(c, "name", list[i][1]);
    cJSON *gpus = nrd_json_array();
    cJSON_AddItemToArray(gpus, nrd_json_checked(cJSON_CreateString(PRODUCT_NAME)));
    cJSON_AddItemToObject(c, "availableGpuType", gpus);
    nrd_json_add_bool(c, "supportNetworkStorage", true);
    nrd_json_add_bool(c, "supportInstanceNetwork", false);
    cJSON_AddItemToArray(arr, c);
  }
  return arr;
}

cJSON *nrd_sim_make_fleet(size_t fleet, size_t failed, int64_t now_s)
{
  cJSON *sc = nrd_json_object();
  cJSON *inst = nrd_json_array();

  if (failed > fleet)
    failed = fleet;
  for (size_t i = 0; i < fleet; i++)
    cJSON_AddItemToArray(inst, instance(i, i < failed, now_s));
  cJSON_AddItemToObject(sc, "instances", inst);
  cJSON_AddItemToObject(sc, "jobs", jobs(fleet, failed, now_s));
  cJSON_AddItemToObject(sc, "products", products());
  cJSON_AddItemToObject(sc, "clusters", clusters());
  return sc;
}
