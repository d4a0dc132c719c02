/* Novita decoders against hostile input: truncated, wrong types, nested,
 * empty, huge numbers, passwords that must not survive into raw_json. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/novita.h"
#include "nrd/util.h"

static int decode_inst(const char *body, struct nrd_instance **items, size_t *n, int64_t *total)
{
  return nrd_nv_decode_instances(body, body ? strlen(body) : 0, items, n, total);
}

static void free_insts(struct nrd_instance *items, size_t n)
{
  for (size_t i = 0; i < n; i++)
    nrd_instance_cleanup(&items[i]);
  free(items);
}

static void test_instances_full(void **state)
{
  const char *body =
      "{\"instances\":[{\"id\":\"i-1\",\"name\":\"trainer\",\"status\":\"migrating\","
      "\"clusterId\":\"c1\",\"clusterName\":\"CN-HK-01 (Hong Kong)\",\"productId\":\"p1\","
      "\"productName\":\"RTX 4090\",\"imageUrl\":\"img:1\",\"imageAuthId\":\"auth1\","
      "\"command\":\"run.sh\",\"gpuNum\":\"2\",\"rootfsSize\":60,\"kind\":\"gpu\","
      "\"billingMode\":\"spot\",\"createdAt\":\"1764345600\","
      "\"portMappings\":[{\"port\":8080,\"type\":\"http\",\"endpoint\":\"x\"},7,{\"port\":\"22\"}],"
      "\"envs\":[{\"key\":\"A\",\"value\":\"secret-a\"},{\"key\":\"B\",\"value\":5}],"
      "\"volumeMounts\":[{\"type\":\"network\",\"id\":\"nfs-1\",\"mountPath\":\"/data\"}],"
      "\"sshPassword\":\"hunter2\",\"connectComponentSSH\":{\"cmd\":\"ssh root@x\"},"
      "\"connectComponents\":[1],\"nested\":{\"rootPASSWORD\":\"p\",\"list\":[{\"password\":\"q\","
      "\"keep\":1}]}}],\"total\":1}";
  struct nrd_instance *items;
  size_t n;
  int64_t total;
  assert_int_equal(decode_inst(body, &items, &n, &total), 0);
  assert_int_equal(n, 1);
  assert_int_equal(total, 1);
  const struct nrd_instance *in = &items[0];
  assert_string_equal(in->id, "i-1");
  assert_string_equal(in->name, "trainer");
  assert_string_equal(in->status, "migrating");
  assert_string_equal(in->cluster_name, "CN-HK-01 (Hong Kong)");
  assert_string_equal(in->product_id, "p1");
  assert_string_equal(in->image_url, "img:1");
  assert_string_equal(in->image_auth_id, "auth1");
  assert_string_equal(in->command, "run.sh");
  assert_string_equal(in->gpu_num, "2");
  assert_string_equal(in->rootfs_size, "60");
  assert_string_equal(in->kind, "gpu");
  assert_string_equal(in->billing_mode, "spot");
  assert_int_equal(in->created_at, 1764345600);
  assert_true(in->ports_present);
  assert_int_equal(in->n_ports, 2); /* the 7 is skipped */
  assert_string_equal(in->ports[0].port, "8080");
  assert_string_equal(in->ports[0].type, "http");
  assert_string_equal(in->ports[1].port, "22");
  assert_null(in->ports[1].type);
  assert_true(in->envs_present);
  assert_int_equal(in->n_envs, 2);
  assert_string_equal(in->envs[0].value, "secret-a");
  assert_string_equal(in->envs[1].value, "5");
  assert_true(in->mounts_present);
  assert_int_equal(in->n_mounts, 1);
  assert_string_equal(in->mounts[0].type, "network");
  assert_string_equal(in->mounts[0].id, "nfs-1");
  assert_string_equal(in->mounts[0].mount_path, "/data");

  assert_non_null(in->raw_json);
  assert_null(strstr(in->raw_json, "hunter2"));
  assert_null(strstr(in->raw_json, "Password"));
  assert_null(strstr(in->raw_json, "PASSWORD"));
  assert_null(strstr(in->raw_json, "password"));
  assert_null(strstr(in->raw_json, "connect"));
  assert_null(strstr(in->raw_json, "ssh root"));
  assert_non_null(strstr(in->raw_json, "\"keep\":1"));
  assert_non_null(strstr(in->raw_json, "\"imageUrl\":\"img:1\""));
  cJSON *raw = nrd_json_parse(in->raw_json, strlen(in->raw_json));
  assert_non_null(raw);
  cJSON_Delete(raw);
  free_insts(items, n);
}

/* The fields a create carries (issue 14): entrypoint, network.id,
 * minCudaVersion, tools (objects only; a bare string is skipped). Through
 * both readers: a page, and one instance (get). */
static void check_carried(const struct nrd_instance *in)
{
  assert_string_equal(in->entrypoint, "/e \"x\"");
  assert_string_equal(in->network_id, "vpc-1");
  assert_string_equal(in->min_cuda_version, "12.4");
  assert_true(in->tools_present);
  assert_int_equal(in->n_tools, 1);
  assert_string_equal(in->tools[0].name, "Jupyter");
  assert_string_equal(in->tools[0].port, "8888");
  assert_string_equal(in->tools[0].type, "http");
  assert_string_equal(in->status, "running"); /* read after the nested object */
}

static void test_instances_carried_fields(void **state)
{
  (void)state;
  const char *one =
      "{\"id\":\"i-1\",\"entrypoint\":\"/e \\\"x\\\"\",\"network\":{\"ip\":\"10.0.0.2\","
      "\"id\":\"vpc-1\",\"password\":\"p\"},\"minCudaVersion\":\"12.4\","
      "\"tools\":[\"ssh\",{\"name\":\"Jupyter\",\"port\":8888,\"type\":\"http\"}],"
      "\"status\":\"running\"}";
  char body[512];
  snprintf(body, sizeof body, "{\"instances\":[%s]}", one);
  struct nrd_instance *items;
  size_t n;
  int64_t total;
  assert_int_equal(decode_inst(body, &items, &n, &total), 0);
  assert_int_equal(n, 1);
  check_carried(&items[0]);
  assert_null(strstr(items[0].raw_json, "password"));
  assert_non_null(strstr(items[0].raw_json, "\"network\":{\"ip\":\"10.0.0.2\",\"id\":\"vpc-1\"}"));
  free_insts(items, n);

  cJSON *obj = nrd_json_parse(one, strlen(one));
  struct nrd_instance in;
  nrd_nv_decode_instance(obj, &in);
  check_carried(&in);
  nrd_instance_cleanup(&in);
  cJSON_Delete(obj);
}

static void test_instances_wrong_types(void **state)
{
  /* Numbers where strings go, strings where lists go, nulls, objects. */
  const char *body =
      "{\"instances\":[{\"id\":123,\"name\":7,\"status\":null,\"gpuNum\":4,\"rootfsSize\":\"x\","
      "\"portMappings\":\"80/tcp\",\"envs\":null,\"volumeMounts\":{},\"createdAt\":\"soon\","
      "\"imageUrl\":[\"a\"],\"kind\":{\"k\":1}},\"junk\",null,42,[],{}],\"total\":\"2\"}";
  struct nrd_instance *items;
  size_t n;
  int64_t total;
  assert_int_equal(decode_inst(body, &items, &n, &total), 0);
  assert_int_equal(n, 2);     /* only objects */
  assert_int_equal(total, 2); /* numeric string accepted */
  assert_string_equal(items[0].id, "123");
  assert_null(items[0].name);
  assert_null(items[0].status);
  assert_string_equal(items[0].gpu_num, "4");
  assert_string_equal(items[0].rootfs_size, "x"); /* kept raw: the rule refuses it */
  assert_false(items[0].ports_present);
  assert_false(items[0].envs_present);
  assert_false(items[0].mounts_present);
  assert_int_equal(items[0].created_at, 0);
  assert_null(items[0].image_url);
  assert_null(items[0].kind);
  assert_null(items[1].id);
  free_insts(items, n);

  /* Present empty lists are present. */
  assert_int_equal(decode_inst("{\"instances\":[{\"id\":\"a\",\"envs\":[],\"portMappings\":[]}]}",
                               &items, &n, &total),
                   0);
  assert_int_equal(n, 1);
  assert_int_equal(total, -1); /* missing total: unknown */
  assert_true(items[0].envs_present);
  assert_int_equal(items[0].n_envs, 0);
  assert_true(items[0].ports_present);
  free_insts(items, n);
}

static void test_instances_unusable(void **state)
{
  static const char *const bad[] = {
    "",
    "{",
    "{\"instances\":[{\"id\":\"a\"}",
    "<html><body>502 Bad Gateway</body></html>",
    "[]",
    "null",
    "42",
    "\"instances\"",
    "{\"instances\":{}}",
    "{\"instances\":\"x\"}",
    "{\"total\":3}",
    "{not json",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct nrd_instance *items = (void *)1;
    size_t n = 99;
    int64_t total = 99;
    assert_int_equal(decode_inst(bad[i], &items, &n, &total), -1);
    assert_null(items);
    assert_int_equal(n, 0);
  }
  struct nrd_instance *items;
  size_t n;
  int64_t total;
  assert_int_equal(nrd_nv_decode_instances(NULL, 0, &items, &n, &total), -1);
  /* Not NUL-terminated: only len bytes are read. */
  char buf[] = {
    '{', '"', 'i', 'n', 's', 't', 'a', 'n', 'c', 'e', 's', '"', ':', '[', ']', '}', 'X'
  };
  assert_int_equal(nrd_nv_decode_instances(buf, sizeof buf - 1, &items, &n, &total), 0);
  assert_int_equal(n, 0);
  free(items);
  /* instances: null means no items. */
  assert_int_equal(decode_inst("{\"instances\":null,\"total\":0}", &items, &n, &total), 0);
  assert_int_equal(n, 0);
  assert_int_equal(total, 0);
  free(items);
}

static void test_deep_and_huge(void **state)
{
  /* 100k levels of nesting: refused without recursion. */
  size_t depth = 100000;
  char *deep = nrd_xmalloc(2 * depth + 32);
  size_t k = 0;
  k += (size_t)sprintf(deep, "{\"instances\":");
  for (size_t i = 0; i < depth; i++)
    deep[k++] = '[';
  for (size_t i = 0; i < depth; i++)
    deep[k++] = ']';
  deep[k++] = '}';
  struct nrd_instance *items;
  size_t n;
  int64_t total;
  assert_int_equal(nrd_nv_decode_instances(deep, k, &items, &n, &total), -1);
  struct nrd_job *jobs;
  assert_int_equal(nrd_nv_decode_jobs(deep, k, &jobs, &n, &total), -1);
  struct nrd_product *prods;
  assert_int_equal(nrd_nv_decode_products(deep, k, &prods, &n), -1);
  struct nrd_nv_error err;
  nrd_nv_decode_error(deep, k, 500, &err);
  assert_int_equal(err.http_status, 500);
  assert_true(strlen(err.message) > 0);
  free(deep);

  /* Huge numbers: total beyond int64, createdAt 1e300, gpuNum 1e308. */
  const char *body = "{\"instances\":[{\"id\":\"a\",\"createdAt\":1e300,\"gpuNum\":1e308,"
                     "\"rootfsSize\":-0.5}],\"total\":1e30}";
  assert_int_equal(decode_inst(body, &items, &n, &total), 0);
  assert_int_equal(total, -1);
  assert_int_equal(items[0].created_at, 0);
  assert_non_null(items[0].gpu_num);
  assert_string_equal(items[0].rootfs_size, "-0.5");
  free_insts(items, n);
  assert_int_equal(decode_inst("{\"instances\":[],\"total\":-5}", &items, &n, &total), 0);
  assert_int_equal(total, -1);
  free(items);
}

static void test_jobs(void **state)
{
  const char *body =
      "{\"jobs\":[{\"Id\":\"j1\",\"type\":\"instanceMigrate\",\"instanceId\":\"i-1\","
      "\"createdAt\":\"1764345600\",\"state\":{\"state\":\"fail\",\"error\":\"E1\",\"message\":"
      "\"m\"}},"
      "{\"id\":\"j2\",\"type\":\"autoInstanceMigrate\",\"instanceId\":\"i-2\",\"createdAt\":"
      "1764345601,"
      "\"state\":{\"state\":\"fail\",\"error\":\"\",\"message\":\"only message\"}},"
      "{\"Id\":\"j3\",\"state\":{\"state\":\"fail\"},\"errorMessage\":\"legacy\","
      "\"createdAt\":1764345600123},"
      "{\"Id\":4,\"state\":\"running\",\"createdAt\":null},"
      "{\"state\":[1,2],\"type\":5},"
      "\"junk\",7],\"total\":5}";
  struct nrd_job *jobs;
  size_t n;
  int64_t total;
  assert_int_equal(nrd_nv_decode_jobs(body, strlen(body), &jobs, &n, &total), 0);
  assert_int_equal(n, 5);
  assert_int_equal(total, 5);
  assert_string_equal(jobs[0].id, "j1");
  assert_string_equal(jobs[0].type, "instanceMigrate");
  assert_string_equal(jobs[0].instance_id, "i-1");
  assert_string_equal(jobs[0].state, "fail");
  assert_string_equal(jobs[0].error, "E1");
  assert_int_equal(jobs[0].created_at, 1764345600);
  assert_ptr_equal(jobs[0].id, jobs[0].strings); /* one block per job */
  assert_ptr_equal(jobs[0].type, jobs[0].id + 3);
  assert_string_equal(jobs[1].id, "j2");
  assert_string_equal(jobs[1].error, "only message");
  assert_int_equal(jobs[1].created_at, 1764345601);
  assert_string_equal(jobs[2].error, "legacy");
  assert_int_equal(jobs[2].created_at, 1764345600); /* milliseconds brought to seconds */
  assert_string_equal(jobs[3].id, "4");
  assert_string_equal(jobs[3].state, "running");
  assert_int_equal(jobs[3].created_at, 0);
  assert_null(jobs[4].id);
  assert_null(jobs[4].state);
  assert_null(jobs[4].type);
  nrd_jobs_free(jobs, n);

  static const char *const bad[] = { "", "{", "[]", "{\"jobs\":{}}", "{\"total\":1}", "<html>" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(nrd_nv_decode_jobs(bad[i], strlen(bad[i]), &jobs, &n, &total), -1);
}

static void test_products(void **state)
{
  const char *body =
      "{\"data\":[{\"id\":\"p1\",\"name\":\"RTX 4090\",\"regions\":[\"CN-HK-01 (Hong "
      "Kong)\",5,null,"
      "\"US-01\"],\"availableDeploy\":true,\"spotPrice\":\"35000\",\"price\":70000},"
      "{\"id\":\"p2\",\"regions\":\"CN-HK-01\",\"availableDeploy\":\"true\",\"spotPrice\":12.5},"
      "{\"id\":\"p3\",\"spotPrice\":\"cheap\"},[1]]}";
  struct nrd_product *p;
  size_t n;
  assert_int_equal(nrd_nv_decode_products(body, strlen(body), &p, &n), 0);
  assert_int_equal(n, 3);
  assert_string_equal(p[0].id, "p1");
  assert_string_equal(p[0].name, "RTX 4090");
  assert_int_equal(p[0].n_regions, 2);
  assert_string_equal(p[0].regions[0], "CN-HK-01 (Hong Kong)");
  assert_string_equal(p[0].regions[1], "US-01");
  assert_true(p[0].available);
  assert_true(p[0].has_spot_price);
  assert_true(p[0].spot_price == 35000.0);
  assert_int_equal(p[1].n_regions, 0);
  assert_false(p[1].available); /* "true" as a string is not true */
  assert_true(p[1].spot_price == 12.5);
  assert_false(p[2].has_spot_price);
  nrd_products_free(p, n);

  static const char *const bad[] = { "", "{\"data\":5}", "{}", "<html>", "{\"data\":[" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(nrd_nv_decode_products(bad[i], strlen(bad[i]), &p, &n), -1);
}

static void test_clusters(void **state)
{
  (void)state;
  const char *body =
      "{\"data\":[{\"id\":\"c-hk\",\"name\":\"CN-HK-01 (Hong Kong)\",\"availableGpuType\":[],"
      "\"supportNetworkStorage\":true,\"supportInstanceNetwork\":false},"
      "{\"name\":\"no id\"},{\"id\":7,\"supportNetworkStorage\":\"true\"},[1],\"x\"]}";
  struct nrd_cluster *c;
  size_t n;
  assert_int_equal(nrd_nv_decode_clusters(body, strlen(body), &c, &n), 0);
  assert_int_equal(n, 2); /* the one without an id cannot be placed in */
  assert_string_equal(c[0].id, "c-hk");
  assert_string_equal(c[0].name, "CN-HK-01 (Hong Kong)");
  assert_true(c[0].network_storage);
  assert_string_equal(c[1].id, "7");
  assert_null(c[1].name);
  assert_false(c[1].network_storage); /* "true" as a string is not true */
  nrd_clusters_free(c, n);

  static const char *const bad[] = { "", "{\"data\":5}", "{}", "<html>", "{\"data\":[" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(nrd_nv_decode_clusters(bad[i], strlen(bad[i]), &c, &n), -1);
    assert_null(c);
    assert_int_equal(n, 0);
  }
}

static void test_errors(void **state)
{
  struct nrd_nv_error err;
  const char *b1 =
      "{\"code\":400,\"reason\":\"RESOURCE_NOT_FOUND\",\"message\":\"instance not found\"}";
  nrd_nv_decode_error(b1, strlen(b1), 400, &err);
  assert_int_equal(err.http_status, 400);
  assert_string_equal(err.code, "RESOURCE_NOT_FOUND");
  assert_string_equal(err.message, "instance not found");

  const char *b2 = "{\"error\":{\"code\":\"INSUFFICIENT_RESOURCE\",\"message\":\"no gpus\"}}";
  nrd_nv_decode_error(b2, strlen(b2), 400, &err);
  assert_string_equal(err.code, "INSUFFICIENT_RESOURCE");
  assert_string_equal(err.message, "no gpus");

  const char *b3 = "{\"error\":\"bad things\"}";
  nrd_nv_decode_error(b3, strlen(b3), 403, &err);
  assert_string_equal(err.code, "");
  assert_string_equal(err.message, "bad things");

  const char *b4 = "<html><body><h1>502 Bad Gateway</h1><script>x</script></body></html>";
  nrd_nv_decode_error(b4, strlen(b4), 502, &err);
  assert_string_equal(err.message, "non-JSON error body (HTTP 502)");
  assert_null(strstr(err.message, "<"));

  nrd_nv_decode_error("", 0, 503, &err);
  assert_string_equal(err.message, "empty error body (HTTP 503)");
  nrd_nv_decode_error(NULL, 0, 500, &err);
  assert_int_equal(err.http_status, 500);

  const char *b5 = "{\"code\":\"RATE_LIMIT_EXCEEDED\"}";
  nrd_nv_decode_error(b5, strlen(b5), 429, &err);
  assert_string_equal(err.code, "RATE_LIMIT_EXCEEDED");
  assert_non_null(strstr(err.message, "429"));

  /* Control characters flattened, long messages cut within the buffer. */
  char big[2000];
  int k = snprintf(big, sizeof big, "{\"message\":\"line1\\nline2\\u0000");
  for (int i = 0; i < 1500; i++)
    big[k++] = 'x';
  snprintf(big + k, sizeof big - (size_t)k, "\",\"code\":\"%s\"}",
           "A_VERY_LONG_CODE_THAT_GOES_ON_AND_ON_AND_ON_FOR_MORE_THAN_64_CHARACTERS_XXXX");
  nrd_nv_decode_error(big, strlen(big), 400, &err);
  assert_non_null(strstr(err.message, "line1 line2"));
  assert_true(strlen(err.message) < sizeof err.message);
  assert_true(strlen(err.code) < sizeof err.code);
  for (const char *p = err.message; *p; p++)
    assert_true((unsigned char)*p >= 0x20);

  /* Multi-byte UTF-8 cut at the limit leaves no partial sequence. */
  char utf[1200];
  k = snprintf(utf, sizeof utf, "{\"message\":\"");
  for (int i = 0; i < 300; i++)
    k += snprintf(utf + k, sizeof utf - (size_t)k, "\xc3\xa9");
  snprintf(utf + k, sizeof utf - (size_t)k, "\"}");
  nrd_nv_decode_error(utf, strlen(utf), 400, &err);
  size_t len = strlen(err.message);
  assert_true(len % 2 == 0);

  /* Wrong types everywhere. */
  const char *b6 = "{\"message\":5,\"code\":[1],\"error\":{\"message\":null},\"reason\":{}}";
  nrd_nv_decode_error(b6, strlen(b6), 400, &err);
  assert_non_null(strstr(err.message, "HTTP 400"));
  nrd_nv_decode_error("[1,2]", 5, 400, &err);
  assert_non_null(strstr(err.message, "HTTP 400"));
}

static void test_decode_instance_non_object(void **state)
{
  struct nrd_instance in;
  cJSON *arr = cJSON_CreateArray();
  nrd_nv_decode_instance(arr, &in);
  assert_null(in.id);
  assert_null(in.raw_json);
  nrd_instance_cleanup(&in);
  nrd_nv_decode_instance(NULL, &in);
  assert_null(in.id);
  cJSON_Delete(arr);

  /* One object, its strings replaced through nrd_instance_set_str (the
   * recreate fuzzer marks secrets that way): the others stay as they were,
   * and cleanup frees both kinds (ASan watches). */
  cJSON *obj = nrd_json_parse("{\"id\":\"i-1\",\"imageAuthId\":7,\"envs\":[{\"key\":\"K\","
                              "\"value\":\"v\"}]}",
                              61);
  assert_non_null(obj);
  nrd_nv_decode_instance(obj, &in);
  cJSON_Delete(obj);
  assert_string_equal(in.image_auth_id, "7");
  nrd_instance_set_str(&in, &in.image_auth_id, "marked");
  nrd_instance_set_str(&in, &in.envs[0].value, "marked");
  nrd_instance_set_str(&in, &in.name, NULL);
  assert_string_equal(in.image_auth_id, "marked");
  assert_string_equal(in.envs[0].value, "marked");
  assert_null(in.name);
  assert_string_equal(in.id, "i-1");
  assert_string_equal(in.envs[0].key, "K");
  assert_non_null(strstr(in.raw_json, "\"value\":\"v\""));
  nrd_instance_cleanup(&in);
}

/* The page read in runs: the same instances as the whole page, in order,
 * at most run_max at a time; a taken item is the taker's; a stop ends the
 * reading; a fault after some runs is still a fault. */
struct runs_seen {
  size_t runs, items, max_run, stop_after;
  struct nrd_instance taken[4];
  size_t n_taken;
  bool in_order;
};

static int on_run(void *ud, struct nrd_instance *items, size_t n)
{
  struct runs_seen *r = ud;
  for (size_t i = 0; i < n; i++) {
    char want[16];
    snprintf(want, sizeof want, "i-%zu", r->items + i);
    r->in_order = r->in_order && items[i].id && strcmp(items[i].id, want) == 0;
  }
  if (r->n_taken < 4) { /* the first item of each of the first runs is taken */
    r->taken[r->n_taken++] = items[0];
    memset(&items[0], 0, sizeof items[0]);
  }
  r->runs++;
  r->items += n;
  if (n > r->max_run)
    r->max_run = n;
  return r->stop_after && r->runs >= r->stop_after;
}

static char *page_of(size_t count)
{
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_puts(&b, "{\"instances\":[");
  for (size_t i = 0; i < count; i++)
    nrd_buf_printf(&b,
                   "%s{\"id\":\"i-%zu\",\"name\":\"n\",\"envs\":[{\"key\":\"K\","
                   "\"value\":\"v\"}],\"sshPassword\":\"x\"}",
                   i ? "," : "", i);
  nrd_buf_printf(&b, "],\"total\":%zu}", count);
  return nrd_buf_steal(&b);
}

static void release_taken(struct runs_seen *r)
{
  for (size_t i = 0; i < r->n_taken; i++) {
    assert_non_null(r->taken[i].id);
    assert_null(strstr(r->taken[i].raw_json, "sshPassword"));
    nrd_instance_cleanup(&r->taken[i]);
  }
}

static void test_instance_runs(void **state)
{
  char *body = page_of(150);
  size_t len = strlen(body);
  int64_t total = 0;

  struct runs_seen r = { .in_order = true };
  assert_int_equal(nrd_nv_decode_instance_runs(body, len, 64, on_run, &r, &total), 0);
  assert_int_equal(r.runs, 3); /* 64 + 64 + 22 */
  assert_int_equal(r.items, 150);
  assert_int_equal(r.max_run, 64);
  assert_true(r.in_order);
  assert_int_equal(total, 150);
  release_taken(&r);

  /* A stop after the second run: 1, and nothing more is read. */
  r = (struct runs_seen){ .in_order = true, .stop_after = 2 };
  assert_int_equal(nrd_nv_decode_instance_runs(body, len, 64, on_run, &r, &total), 1);
  assert_int_equal(r.runs, 2);
  assert_int_equal(r.items, 128);
  release_taken(&r);

  /* Cut after 100 instances: the first run was delivered, the page is
   * unusable all the same. */
  char *cut = strstr(body, "{\"id\":\"i-100\"");
  assert_non_null(cut);
  r = (struct runs_seen){ .in_order = true };
  assert_int_equal(
      nrd_nv_decode_instance_runs(body, (size_t)(cut - body) + 5, 64, on_run, &r, &total), -1);
  assert_int_equal(r.runs, 1);
  assert_int_equal(total, -1);
  release_taken(&r);

  /* An empty page: no run. */
  r = (struct runs_seen){ .in_order = true };
  assert_int_equal(nrd_nv_decode_instance_runs("{\"instances\":[]}", 16, 64, on_run, &r, &total),
                   0);
  assert_int_equal(r.runs, 0);
  free(body);
}

/* An instance's strings live in one block with its raw JSON; an instance
 * cut anywhere inside leaves nothing behind (ASan and valgrind watch). */
static void test_instance_strings_block(void **state)
{
  const char *body =
      "{\"instances\":[{\"id\":\"i-1\",\"name\":\"a\\u0000b\",\"rootfsSize\":60,"
      "\"portMappings\":[{\"port\":22,\"type\":\"tcp\"}],\"envs\":[{\"key\":\"K\","
      "\"value\":\"v\"}],\"volumeMounts\":[{\"type\":\"local\",\"mountPath\":\"/d\"}]}]}";
  struct nrd_instance *items;
  size_t n;
  int64_t total;
  assert_int_equal(decode_inst(body, &items, &n, &total), 0);
  assert_int_equal(n, 1);
  const struct nrd_instance *in = &items[0];
  assert_non_null(in->strings);
  assert_ptr_equal(in->id, in->strings);
  assert_string_equal(in->name, "a"); /* cut at the escaped NUL, as cJSON does */
  assert_string_equal(in->rootfs_size, "60");
  assert_string_equal(in->ports[0].port, "22");
  assert_string_equal(in->envs[0].value, "v");
  assert_string_equal(in->mounts[0].mount_path, "/d");
  assert_null(in->mounts[0].id);
  assert_non_null(strstr(in->raw_json, "\"mountPath\":\"/d\""));
  /* A page's instance takes a replaced string as any other does. */
  nrd_instance_set_str(&items[0], &items[0].envs[0].value, "w");
  assert_string_equal(items[0].envs[0].value, "w");
  assert_string_equal(items[0].envs[0].key, "K");
  assert_string_equal(items[0].mounts[0].mount_path, "/d");
  assert_non_null(strstr(items[0].raw_json, "\"value\":\"v\""));
  free_insts(items, n);

  size_t len = strlen(body);
  for (size_t cut = 1; cut < len; cut++) {
    int rc = nrd_nv_decode_instances(body, cut, &items, &n, &total);
    assert_int_equal(rc, -1);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_instances_full),
    cmocka_unit_test(test_instances_carried_fields),
    cmocka_unit_test(test_instances_wrong_types),
    cmocka_unit_test(test_instances_unusable),
    cmocka_unit_test(test_deep_and_huge),
    cmocka_unit_test(test_jobs),
    cmocka_unit_test(test_products),
    cmocka_unit_test(test_clusters),
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_decode_instance_non_object),
    cmocka_unit_test(test_instance_runs),
    cmocka_unit_test(test_instance_strings_block),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
