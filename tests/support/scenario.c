#include "scenario.h"

#include <stdio.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"

cJSON *tu_instance(const char *id, const char *name, const char *status)
{
  cJSON *o = cJSON_CreateObject();
  nrd_json_add_str(o, "id", id);
  nrd_json_add_str(o, "name", name);
  nrd_json_add_str(o, "status", status);
  nrd_json_add_str(o, "clusterId", "c-hk");
  nrd_json_add_str(o, "clusterName", "CN-HK-01 (Hong Kong)");
  nrd_json_add_str(o, "productId", "prod-4090");
  nrd_json_add_str(o, "productName", "RTX 4090 24GB");
  nrd_json_add_str(o, "imageUrl", "docker.io/acme/trainer:1.2");
  nrd_json_add_str(o, "gpuNum", "2");
  nrd_json_add_num(o, "rootfsSize", 80);
  nrd_json_add_str(o, "kind", "gpu");
  nrd_json_add_str(o, "billingMode", "spot");
  nrd_json_add_str(o, "sshPassword", "hunter2-ssh");
  return o;
}

cJSON *tu_job(const char *id, const char *type, const char *instance_id, int64_t created,
              const char *state)
{
  cJSON *o = cJSON_CreateObject();
  nrd_json_add_str(o, "Id", id);
  nrd_json_add_str(o, "type", type);
  nrd_json_add_str(o, "instanceId", instance_id);
  nrd_json_add_num(o, "createdAt", (double)created);
  cJSON *st = cJSON_AddObjectToObject(o, "state");
  nrd_json_add_str(st, "state", state);
  nrd_json_add_str(st, "error", strcmp(state, "fail") ? "" : "no capacity on target node");
  return o;
}

cJSON *tu_product(const char *id, const char *region, const char *spot, bool available)
{
  cJSON *o = cJSON_CreateObject();
  nrd_json_add_str(o, "id", id);
  nrd_json_add_str(o, "name", "RTX 4090 24GB");
  cJSON *regions = cJSON_AddArrayToObject(o, "regions");
  cJSON_AddItemToArray(regions, cJSON_CreateString(region));
  nrd_json_add_str(o, "spotPrice", spot);
  nrd_json_add_str(o, "price", "69000");
  nrd_json_add_bool(o, "availableDeploy", available);
  return o;
}

cJSON *tu_scenario(void)
{
  cJSON *s = cJSON_CreateObject();
  cJSON_AddArrayToObject(s, "instances");
  cJSON_AddArrayToObject(s, "jobs");
  cJSON *products = cJSON_AddArrayToObject(s, "products");
  /* Novita lists the product every instance runs on: tu_instance's, offered
   * (the capacity check before a delete finds it). No region: the product
   * fallback of a test picks only among the products that test adds. */
  cJSON *p = tu_product("prod-4090", "", "99000", true);
  cJSON_DeleteItemFromObject(p, "regions");
  cJSON_AddArrayToObject(p, "regions");
  nrd_json_add_str(p, "inventoryState", "normal");
  cJSON_AddItemToArray(products, p);
  return s;
}

void tu_add(cJSON *scenario, const char *list, cJSON *item)
{
  cJSON_AddItemToArray(cJSON_GetObjectItem(scenario, list), item);
}

cJSON *tu_failed_fleet(int failed, int running)
{
  cJSON *sc = tu_scenario();
  char id[32], name[32], jid[32];
  int64_t t = nrd_now_ms() / 1000 - 60;
  for (int i = 0; i < failed + running; i++) {
    snprintf(id, sizeof(id), "i-%03d", i);
    snprintf(name, sizeof(name), "trainer-%03d", i);
    tu_add(sc, "instances", tu_instance(id, name, i < failed ? "migrating" : "running"));
    if (i < failed) {
      snprintf(jid, sizeof(jid), "job-%03d", i);
      tu_add(sc, "jobs",
             tu_job(jid, i % 2 ? "instanceMigrate" : "autoInstanceMigrate", id, t, "fail"));
    }
  }
  return sc;
}

const cJSON *tu_outcome_for(const cJSON *answer, const char *instance_id)
{
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(cJSON_GetObjectItem(answer, "result"), "outcomes")) {
    const char *id = nrd_json_str(o, "instanceId");
    if (id && !strcmp(id, instance_id))
      return o;
  }
  return NULL;
}

int64_t tu_result_int(const cJSON *answer, const char *key)
{
  int64_t v = -1;
  if (!nrd_json_i64(cJSON_GetObjectItem(answer, "result"), key, &v))
    return -1;
  return v;
}

cJSON *tu_sim_creates(struct nrd_sim *sim)
{
  struct nrd_sim_request *reqs = NULL;
  size_t n = nrd_sim_requests(sim, &reqs);
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(reqs[i].path);
    if (len >= 20 && !strcmp(reqs[i].path + len - 20, "/gpu/instance/create"))
      cJSON_AddItemToArray(arr, cJSON_Parse(reqs[i].body));
  }
  nrd_sim_requests_free(reqs, n);
  return arr;
}

static int count_prefix(const cJSON *all, const char *prefix)
{
  int found = 0;
  const cJSON *inst;
  cJSON_ArrayForEach(inst, all) {
    const char *name = nrd_json_str(inst, "name");
    if (name && !strncmp(name, prefix, strlen(prefix)))
      found++;
  }
  return found;
}

int tu_replacements_of(struct nrd_sim *sim, int i)
{
  char prefix[48];
  cJSON *all = nrd_sim_instances(sim);
  snprintf(prefix, sizeof(prefix), "trainer-%03d-recreated-", i);
  int found = count_prefix(all, prefix);
  cJSON_Delete(all);
  return found;
}

bool tu_one_replacement_each(struct nrd_sim *sim, int failed, int total, char *why, size_t whylen)
{
  bool ok = true;
  cJSON *all = nrd_sim_instances(sim);
  for (int i = 0; ok && i < failed; i++) {
    char prefix[48], old[16];
    const cJSON *inst;
    snprintf(prefix, sizeof(prefix), "trainer-%03d-recreated-", i);
    snprintf(old, sizeof(old), "i-%03d", i);
    int found = count_prefix(all, prefix);
    if (found != 1) {
      snprintf(why, whylen, "%s*: %d replacements", prefix, found);
      ok = false;
    }
    cJSON_ArrayForEach(inst, all) {
      const char *id = nrd_json_str(inst, "id");
      if (ok && id && !strcmp(id, old)) {
        snprintf(why, whylen, "%s was never deleted", old);
        ok = false;
      }
    }
  }
  if (ok && total >= 0 && cJSON_GetArraySize(all) != total) {
    snprintf(why, whylen, "%d instances, expected %d", cJSON_GetArraySize(all), total);
    ok = false;
  }
  cJSON_Delete(all);
  return ok;
}
