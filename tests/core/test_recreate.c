/* Unit tests for the recreation rule (src/core/recreate.c). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nrd/json.h"
#include "nrd/model.h"
#include "nrd/recreate.h"
#include "nrd/util.h"

#define TAIL "; instance left untouched"

/* ---- snapshot builders ---- */

static void set(char **field, const char *v)
{
  free(*field);
  *field = nrd_xstrdup(v);
}

/* The smallest buildable snapshot: id, name, imageUrl, productId, productName. */
static void snap_init(struct nrd_instance *s)
{
  memset(s, 0, sizeof *s);
  set(&s->id, "i-1");
  set(&s->name, "trainer");
  set(&s->image_url, "registry.example/app:1");
  set(&s->product_id, "p-4090");
  set(&s->product_name, "RTX 4090 24GB");
}

static void add_port(struct nrd_instance *s, const char *port, const char *type)
{
  s->ports = nrd_xrealloc(s->ports, (s->n_ports + 1) * sizeof *s->ports);
  s->ports[s->n_ports].port = nrd_xstrdup(port);
  s->ports[s->n_ports].type = nrd_xstrdup(type);
  s->n_ports++;
  s->ports_present = true;
}

static void add_env(struct nrd_instance *s, const char *key, const char *value)
{
  s->envs = nrd_xrealloc(s->envs, (s->n_envs + 1) * sizeof *s->envs);
  s->envs[s->n_envs].key = nrd_xstrdup(key);
  s->envs[s->n_envs].value = nrd_xstrdup(value);
  s->n_envs++;
  s->envs_present = true;
}

static void add_tool(struct nrd_instance *s, const char *name, const char *port, const char *type)
{
  s->tools = nrd_xrealloc(s->tools, (s->n_tools + 1) * sizeof *s->tools);
  s->tools[s->n_tools].name = nrd_xstrdup(name);
  s->tools[s->n_tools].port = nrd_xstrdup(port);
  s->tools[s->n_tools].type = nrd_xstrdup(type);
  s->n_tools++;
  s->tools_present = true;
}

static void add_mount(struct nrd_instance *s, const char *type, const char *id, const char *path)
{
  s->mounts = nrd_xrealloc(s->mounts, (s->n_mounts + 1) * sizeof *s->mounts);
  s->mounts[s->n_mounts].type = nrd_xstrdup(type);
  s->mounts[s->n_mounts].id = nrd_xstrdup(id);
  s->mounts[s->n_mounts].mount_path = nrd_xstrdup(path);
  s->n_mounts++;
  s->mounts_present = true;
}

static char *repeat(char c, size_t n)
{
  char *s = nrd_xmalloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* ---- check helpers ---- */

static void expect_ok(const struct nrd_instance *s)
{
  char reason[NRD_REASON_MAX] = "unset";
  bool needs = true;
  bool ok = nrd_recreate_check(s, &needs, reason);
  if (!ok)
    fail_msg("expected buildable, got: %s", reason);
  assert_string_equal(reason, "");
}

/* The check fails, the reason contains what and ends with TAIL. */
static void expect_fail(const struct nrd_instance *s, const char *what)
{
  char reason[NRD_REASON_MAX] = "";
  bool needs = false;
  assert_false(nrd_recreate_check(s, &needs, reason));
  if (!strstr(reason, what))
    fail_msg("reason \"%s\" lacks \"%s\"", reason, what);
  size_t n = strlen(reason), t = strlen(TAIL);
  assert_true(n > t);
  assert_string_equal(reason + n - t, TAIL);
}

/* Builds after a successful check; caller deletes. */
static cJSON *build(const struct nrd_instance *s)
{
  expect_ok(s);
  return nrd_recreate_build(s, s->product_id ? s->product_id : "p-fallback", "new-name");
}

static const cJSON *field(const cJSON *req, const char *key)
{
  return cJSON_GetObjectItemCaseSensitive(req, key);
}

static void assert_str_field(const cJSON *req, const char *key, const char *want)
{
  const cJSON *f = field(req, key);
  if (!cJSON_IsString(f))
    fail_msg("%s is not a string", key);
  assert_string_equal(f->valuestring, want);
}

/* An integer-valued JSON number that prints without a fraction. */
static void assert_int_field(const cJSON *req, const char *key, int want)
{
  const cJSON *f = field(req, key);
  if (!cJSON_IsNumber(f))
    fail_msg("%s is not a number", key);
  assert_int_equal(f->valueint, want);
  assert_true(f->valuedouble == (double)want);
  char *txt = cJSON_PrintUnformatted(f);
  char want_txt[16];
  snprintf(want_txt, sizeof want_txt, "%d", want);
  assert_string_equal(txt, want_txt);
  cJSON_free(txt);
}

static void assert_keys(const cJSON *req, const char *const *keys, size_t n)
{
  size_t i = 0;
  const cJSON *c;
  cJSON_ArrayForEach(c, req) {
    if (i >= n)
      fail_msg("unexpected extra key %s", c->string);
    assert_string_equal(c->string, keys[i]);
    i++;
  }
  assert_int_equal(i, n);
}

/* The built integer for gpuNum or rootfsSize given a raw snapshot text. */
static int built_count(const char *key, const char *raw)
{
  struct nrd_instance s;
  snap_init(&s);
  set(strcmp(key, "gpuNum") == 0 ? &s.gpu_num : &s.rootfs_size, raw);
  cJSON *req = build(&s);
  const cJSON *f = field(req, key);
  assert_true(cJSON_IsNumber(f));
  int v = f->valueint;
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
  return v;
}

/* ---- defaults, order, full snapshot ---- */

static void test_minimal_defaults_and_order(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  cJSON *req = build(&s);
  static const char *const keys[] = { "name",     "productId", "gpuNum",     "rootfsSize",
                                      "imageUrl", "kind",      "billingMode" };
  assert_keys(req, keys, sizeof keys / sizeof keys[0]);
  assert_str_field(req, "name", "new-name");
  assert_str_field(req, "productId", "p-4090");
  assert_int_field(req, "gpuNum", 1);
  assert_int_field(req, "rootfsSize", 50);
  assert_str_field(req, "imageUrl", "registry.example/app:1");
  assert_str_field(req, "kind", "gpu");
  assert_str_field(req, "billingMode", "spot");
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void fill_full(struct nrd_instance *s)
{
  snap_init(s);
  set(&s->image_auth_id, "auth-7");
  set(&s->gpu_num, "2");
  set(&s->rootfs_size, "100");
  add_port(s, "8080", "http");
  add_port(s, "22", "tcp");
  add_env(s, "HF_TOKEN", "hf_secret");
  set(&s->command, "python serve.py --port 8080");
  set(&s->cluster_id, "cl-9");
  set(&s->cluster_name, "CN-HK-01 (Hong Kong)");
  add_mount(s, "network", "nv-1", "/data");
  set(&s->kind, "gpu");
  set(&s->billing_mode, "onDemand");
  add_tool(s, "Jupyter", "8888", "http");
  set(&s->entrypoint, "/entry.sh");
  set(&s->network_id, "vpc-1");
  set(&s->min_cuda_version, "12.4");
}

static void test_full_snapshot_order_and_values(void **state)
{
  (void)state;
  struct nrd_instance s;
  fill_full(&s);
  cJSON *req = build(&s);
  static const char *const keys[] = { "name",
                                      "productId",
                                      "gpuNum",
                                      "rootfsSize",
                                      "imageUrl",
                                      "imageAuthId",
                                      "ports",
                                      "envs",
                                      "tools",
                                      "command",
                                      "entrypoint",
                                      "clusterId",
                                      "networkStorages",
                                      "networkId",
                                      "minCudaVersion",
                                      "kind",
                                      "billingMode" };
  assert_keys(req, keys, sizeof keys / sizeof keys[0]);
  assert_int_field(req, "gpuNum", 2);
  assert_int_field(req, "rootfsSize", 100);
  assert_str_field(req, "imageAuthId", "auth-7");
  assert_str_field(req, "ports", "8080/http, 22/tcp");
  assert_str_field(req, "command", "python serve.py --port 8080");
  assert_str_field(req, "entrypoint", "/entry.sh");
  assert_str_field(req, "clusterId", "cl-9");
  assert_str_field(req, "networkId", "vpc-1");
  assert_str_field(req, "minCudaVersion", "12.4");
  assert_str_field(req, "kind", "gpu");
  assert_str_field(req, "billingMode", "onDemand");
  char *txt = nrd_json_print(field(req, "envs"));
  assert_string_equal(txt, "[{\"key\":\"HF_TOKEN\",\"value\":\"hf_secret\"}]");
  free(txt);
  txt = nrd_json_print(field(req, "networkStorages"));
  assert_string_equal(txt, "[{\"Id\":\"nv-1\",\"mountPoint\":\"/data\"}]");
  free(txt);
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_product_id_comes_from_argument(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.product_id, NULL);
  bool needs = false;
  char reason[NRD_REASON_MAX];
  assert_true(nrd_recreate_check(&s, &needs, reason));
  assert_true(needs);
  cJSON *req = nrd_recreate_build(&s, "p-cheap", "n");
  assert_str_field(req, "productId", "p-cheap");
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

/* ---- imageUrl and product ---- */

static void test_image_url_absent(void **state)
{
  (void)state;
  const char *forms[] = { NULL, "" };
  for (size_t i = 0; i < 2; i++) {
    struct nrd_instance s;
    snap_init(&s);
    set(&s.image_url, forms[i]);
    char reason[NRD_REASON_MAX];
    bool needs;
    assert_false(nrd_recreate_check(&s, &needs, reason));
    assert_string_equal(reason, "snapshot has no imageUrl; instance left untouched");
    nrd_instance_cleanup(&s);
  }
}

/* *field (a string of s) of max bytes passes the rule, of max + 1 does not,
 * the reason naming name. */
static void expect_length_bound(struct nrd_instance *s, char **field, size_t max, const char *name)
{
  free(*field);
  *field = repeat('a', max);
  expect_ok(s);
  free(*field);
  *field = repeat('a', max + 1);
  expect_fail(s, name);
}

static void test_image_url_length(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  expect_length_bound(&s, &s.image_url, 500, "imageUrl");
  nrd_instance_cleanup(&s);
}

/* Found by fuzz_recreate: a productId over Novita's 255 passed the rule, so
 * the instance would have been deleted and its create refused. */
static void test_product_id_length(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  expect_length_bound(&s, &s.product_id, 255, "productId");
  nrd_instance_cleanup(&s);
}

static void test_product_absent_forms(void **state)
{
  (void)state;
  const char *forms[] = { NULL, "" };
  for (size_t i = 0; i < 2; i++) {
    for (size_t j = 0; j < 2; j++) {
      struct nrd_instance s;
      snap_init(&s);
      set(&s.product_id, forms[i]);
      set(&s.product_name, forms[j]);
      char reason[NRD_REASON_MAX];
      bool needs = false;
      assert_false(nrd_recreate_check(&s, &needs, reason));
      assert_true(needs);
      assert_string_equal(
          reason, "snapshot has neither productId nor productName; instance left untouched");
      nrd_instance_cleanup(&s);
    }
  }
}

static void test_product_id_present_needs_no_lookup(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.product_name, NULL); /* productId alone is enough */
  bool needs = true;
  char reason[NRD_REASON_MAX];
  assert_true(nrd_recreate_check(&s, &needs, reason));
  assert_false(needs);
  set(&s.product_id, "");
  set(&s.product_name, "RTX 4090 24GB");
  assert_true(nrd_recreate_check(&s, &needs, reason));
  assert_true(needs);
  nrd_instance_cleanup(&s);
}

static void test_check_tolerates_null_outputs(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  assert_true(nrd_recreate_check(&s, NULL, NULL));
  set(&s.image_url, NULL);
  assert_false(nrd_recreate_check(&s, NULL, NULL));
  nrd_instance_cleanup(&s);
}

/* ---- gpuNum and rootfsSize ---- */

static void test_gpu_num_absent_forms_default_to_one(void **state)
{
  (void)state;
  const char *forms[] = { NULL, "", "0", "0.0", "-0", "00" };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
    assert_int_equal(built_count("gpuNum", forms[i]), 1);
}

static void test_gpu_num_valid(void **state)
{
  (void)state;
  assert_int_equal(built_count("gpuNum", "1"), 1);
  assert_int_equal(built_count("gpuNum", "4"), 4);
  assert_int_equal(built_count("gpuNum", "8"), 8);
}

static void test_gpu_num_invalid(void **state)
{
  (void)state;
  const char *forms[] = { "9", "-1", "16", "abc", "1.5", "2.0", " 2", "2 ", "0x2", "1e0" };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    struct nrd_instance s;
    snap_init(&s);
    set(&s.gpu_num, forms[i]);
    expect_fail(&s, "gpuNum");
    nrd_instance_cleanup(&s);
  }
}

static void test_gpu_num_reason_shows_value(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.gpu_num, "16");
  char reason[NRD_REASON_MAX];
  assert_false(nrd_recreate_check(&s, NULL, reason));
  assert_string_equal(reason, "gpuNum \"16\" is not an integer 1-8; instance left untouched");
  nrd_instance_cleanup(&s);
}

static void test_rootfs_absent_forms_default_to_fifty(void **state)
{
  (void)state;
  const char *forms[] = { NULL, "", "0", "0.0", "-0" };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
    assert_int_equal(built_count("rootfsSize", forms[i]), 50);
}

static void test_rootfs_valid(void **state)
{
  (void)state;
  assert_int_equal(built_count("rootfsSize", "10"), 10);
  assert_int_equal(built_count("rootfsSize", "200"), 200);
  assert_int_equal(built_count("rootfsSize", "6144"), 6144);
}

static void test_rootfs_invalid(void **state)
{
  (void)state;
  const char *forms[] = { "9", "1", "-50", "6145", "abc", "50.5", "50GB" };
  for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
    struct nrd_instance s;
    snap_init(&s);
    set(&s.rootfs_size, forms[i]);
    expect_fail(&s, "rootfsSize");
    nrd_instance_cleanup(&s);
  }
}

/* ---- kind and billingMode ---- */

static void test_kind(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.kind, "");
  cJSON *req = build(&s);
  assert_str_field(req, "kind", "gpu");
  cJSON_Delete(req);
  set(&s.kind, "gpu");
  req = build(&s);
  assert_str_field(req, "kind", "gpu");
  cJSON_Delete(req);
  set(&s.kind, "cpu");
  req = build(&s);
  assert_str_field(req, "kind", "cpu");
  cJSON_Delete(req);
  const char *bad[] = { "tpu", "GPU", " gpu" };
  for (size_t i = 0; i < 3; i++) {
    set(&s.kind, bad[i]);
    expect_fail(&s, "kind");
  }
  nrd_instance_cleanup(&s);
}

static void test_billing_mode(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.billing_mode, "");
  cJSON *req = build(&s);
  assert_str_field(req, "billingMode", "spot");
  cJSON_Delete(req);
  const char *good[] = { "onDemand", "monthly", "spot" };
  for (size_t i = 0; i < 3; i++) {
    set(&s.billing_mode, good[i]);
    req = build(&s);
    assert_str_field(req, "billingMode", good[i]);
    cJSON_Delete(req);
  }
  const char *bad[] = { "ondemand", "weekly", "SPOT" };
  for (size_t i = 0; i < 3; i++) {
    set(&s.billing_mode, bad[i]);
    expect_fail(&s, "billingMode");
  }
  nrd_instance_cleanup(&s);
}

/* ---- optional strings ---- */

static void test_optional_strings_omitted_when_absent(void **state)
{
  (void)state;
  const char *forms[] = { NULL, "" };
  for (size_t i = 0; i < 2; i++) {
    struct nrd_instance s;
    snap_init(&s);
    set(&s.image_auth_id, forms[i]);
    set(&s.command, forms[i]);
    set(&s.cluster_id, forms[i]);
    cJSON *req = build(&s);
    assert_null(field(req, "imageAuthId"));
    assert_null(field(req, "command"));
    assert_null(field(req, "clusterId"));
    cJSON_Delete(req);
    nrd_instance_cleanup(&s);
  }
}

static void test_optional_strings_copied(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.image_auth_id, "auth-1");
  set(&s.command, "bash -c 'echo \"hi\" && sleep 1'");
  set(&s.cluster_id, "cluster-3");
  cJSON *req = build(&s);
  assert_str_field(req, "imageAuthId", "auth-1");
  assert_str_field(req, "command", "bash -c 'echo \"hi\" && sleep 1'");
  assert_str_field(req, "clusterId", "cluster-3");
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_command_length_limit(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  free(s.command);
  s.command = repeat('x', 2047);
  cJSON *req = build(&s);
  assert_int_equal(strlen(field(req, "command")->valuestring), 2047);
  cJSON_Delete(req);
  free(s.command);
  s.command = repeat('x', 2048);
  expect_fail(&s, "command");
  nrd_instance_cleanup(&s);
}

/* ---- ports ---- */

static void test_ports_absent(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  cJSON *req = build(&s);
  assert_null(field(req, "ports"));
  cJSON_Delete(req);
  s.ports_present = true; /* present and empty */
  req = build(&s);
  assert_null(field(req, "ports"));
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_ports_single_and_types(void **state)
{
  (void)state;
  struct {
    const char *port, *type, *want;
  } rows[] = {
    { "8080", "http", "8080/http" }, { "22", "tcp", "22/tcp" },       { "22", NULL, "22/tcp" },
    { "22", "", "22/tcp" },          { "80", "HTTP", "80/http" },     { "443", "Tcp", "443/tcp" },
    { "1", "tcp", "1/tcp" },         { "65535", "tcp", "65535/tcp" },
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    struct nrd_instance s;
    snap_init(&s);
    add_port(&s, rows[i].port, rows[i].type);
    cJSON *req = build(&s);
    assert_str_field(req, "ports", rows[i].want);
    cJSON_Delete(req);
    nrd_instance_cleanup(&s);
  }
}

static void test_ports_several_joined(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  add_port(&s, "8080", "http");
  add_port(&s, "22", NULL);
  add_port(&s, "3306", "tcp");
  cJSON *req = build(&s);
  assert_str_field(req, "ports", "8080/http, 22/tcp, 3306/tcp");
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_ports_invalid(void **state)
{
  (void)state;
  struct {
    const char *port, *type, *what;
  } rows[] = {
    { "0", "tcp", "port 1" },    { "65536", "tcp", "port 1" }, { "-1", "tcp", "port 1" },
    { "abc", "tcp", "port 1" },  { NULL, "tcp", "port 1" },    { "", "tcp", "port 1" },
    { "80.5", "tcp", "port 1" }, { "80", "udp", "udp" },       { "80", "sctp", "port 1" },
    { "80", "http ", "port 1" },
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    struct nrd_instance s;
    snap_init(&s);
    add_port(&s, rows[i].port, rows[i].type);
    expect_fail(&s, rows[i].what);
    nrd_instance_cleanup(&s);
  }
}

static void test_ports_invalid_second_named(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  add_port(&s, "80", "http");
  add_port(&s, "81", "udp");
  char reason[NRD_REASON_MAX];
  assert_false(nrd_recreate_check(&s, NULL, reason));
  assert_string_equal(reason, "port 2 has type \"udp\", not tcp or http; instance left untouched");
  nrd_instance_cleanup(&s);
}

static void test_ports_fifteen_vs_sixteen(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  char num[8];
  for (int i = 0; i < 15; i++) {
    snprintf(num, sizeof num, "%d", 8000 + i);
    add_port(&s, num, "tcp");
  }
  cJSON *req = build(&s);
  const char *ports = field(req, "ports")->valuestring;
  size_t commas = 0;
  for (const char *p = ports; *p; p++)
    commas += *p == ',';
  assert_int_equal(commas, 14);
  assert_non_null(strstr(ports, "8000/tcp, 8001/tcp"));
  assert_non_null(strstr(ports, "8014/tcp"));
  cJSON_Delete(req);
  add_port(&s, "9000", "tcp");
  expect_fail(&s, "16 ports");
  nrd_instance_cleanup(&s);
}

/* ---- envs ---- */

static void test_envs_absent(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  cJSON *req = build(&s);
  assert_null(field(req, "envs"));
  cJSON_Delete(req);
  s.envs_present = true;
  req = build(&s);
  assert_null(field(req, "envs"));
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_envs_byte_for_byte(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  const char *pairs[][2] = {
    { "PLAIN", "value" }, { " SPACED KEY ", "  leading and trailing  " },
    { "EQ", "a=b=c" },    { "UNICODE_\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80" },
    { "EMPTY", "" },      { "QUOTES", "\"quoted\" \\ back\tslash\nnewline" },
  };
  size_t n = sizeof pairs / sizeof pairs[0];
  for (size_t i = 0; i < n; i++)
    add_env(&s, pairs[i][0], pairs[i][1]);
  add_env(&s, "NULLVAL", NULL);
  cJSON *req = build(&s);
  const cJSON *envs = field(req, "envs");
  assert_true(cJSON_IsArray(envs));
  assert_int_equal(cJSON_GetArraySize(envs), n + 1);
  for (size_t i = 0; i < n; i++) {
    const cJSON *e = cJSON_GetArrayItem(envs, (int)i);
    assert_str_field(e, "key", pairs[i][0]);
    assert_str_field(e, "value", pairs[i][1]);
  }
  const cJSON *last = cJSON_GetArrayItem(envs, (int)n);
  assert_str_field(last, "key", "NULLVAL");
  assert_str_field(last, "value", "");
  /* The bytes survive a print and parse round trip. */
  char *txt = nrd_json_print(req);
  cJSON *back = nrd_json_parse(txt, strlen(txt));
  assert_non_null(back);
  assert_true(cJSON_Compare(back, req, 1));
  cJSON_Delete(back);
  free(txt);
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_envs_hundred_vs_hundred_one(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  char key[16];
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "K%d", i);
    add_env(&s, key, "v");
  }
  cJSON *req = build(&s);
  assert_int_equal(cJSON_GetArraySize(field(req, "envs")), 100);
  cJSON_Delete(req);
  add_env(&s, "K100", "v");
  expect_fail(&s, "101 envs");
  nrd_instance_cleanup(&s);
}

static void test_envs_empty_key(void **state)
{
  (void)state;
  const char *keys[] = { NULL, "" };
  for (size_t i = 0; i < 2; i++) {
    struct nrd_instance s;
    snap_init(&s);
    add_env(&s, "OK", "fine");
    add_env(&s, keys[i], "s3cret-value");
    char reason[NRD_REASON_MAX];
    assert_false(nrd_recreate_check(&s, NULL, reason));
    assert_string_equal(reason, "env 2 has an empty key; instance left untouched");
    assert_null(strstr(reason, "s3cret"));
    nrd_instance_cleanup(&s);
  }
}

/* ---- mounts ---- */

static void test_mounts_network_carried(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  add_mount(&s, "local", "lv-1", "/scratch");
  add_mount(&s, "network", "nv-1", "/data");
  add_mount(&s, "network", NULL, "/noid");
  add_mount(&s, "network", "", "/emptyid");
  add_mount(&s, "network", "nv-nopath", NULL);
  add_mount(&s, NULL, "x", "/notype");
  add_mount(&s, "network", "nv-2", "/models");
  cJSON *req = build(&s);
  char *txt = nrd_json_print(field(req, "networkStorages"));
  assert_string_equal(txt, "[{\"Id\":\"nv-1\",\"mountPoint\":\"/data\"},"
                           "{\"Id\":\"nv-2\",\"mountPoint\":\"/models\"}]");
  free(txt);
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_mounts_only_local_omitted(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  s.mounts_present = true; /* present, empty */
  cJSON *req = build(&s);
  assert_null(field(req, "networkStorages"));
  cJSON_Delete(req);
  add_mount(&s, "local", "lv-1", "/scratch");
  add_mount(&s, "network", NULL, "/noid");
  req = build(&s);
  assert_null(field(req, "networkStorages"));
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_mounts_thirty_vs_thirty_one(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  char id[16];
  for (int i = 0; i < 30; i++) {
    snprintf(id, sizeof id, "nv-%d", i);
    add_mount(&s, "network", id, "/m");
  }
  add_mount(&s, "local", "lv", "/l"); /* local mounts do not count */
  cJSON *req = build(&s);
  assert_int_equal(cJSON_GetArraySize(field(req, "networkStorages")), 30);
  cJSON_Delete(req);
  add_mount(&s, "network", "nv-30", "/m");
  expect_fail(&s, "network storages");
  nrd_instance_cleanup(&s);
}

/* ---- name ---- */

static void name_is(const char *old, const char *id, int64_t ms, const char *want)
{
  char out[NRD_NAME_MAX + 1];
  memset(out, 'Z', sizeof out);
  nrd_recreate_name(old, id, ms, out);
  assert_string_equal(out, want);
}

static void test_name_plain(void **state)
{
  (void)state;
  name_is("trainer-a", "i-1", 1764345600123, "trainer-a-recreated-1764345600123");
  name_is("with space ü", "i-1", 1764345600123, "with space ü-recreated-1764345600123");
}

static void test_name_absent_uses_id(void **state)
{
  (void)state;
  name_is(NULL, "i-abc", 1764345600123, "i-abc-recreated-1764345600123");
  name_is("", "i-abc", 1764345600123, "i-abc-recreated-1764345600123");
  name_is("-recreated-1700000000000", "i-abc", 1764345600123, "i-abc-recreated-1764345600123");
}

static void test_name_suffix_stripped(void **state)
{
  (void)state;
  name_is("trainer-recreated-1700000000000", "i-1", 1764345600123,
          "trainer-recreated-1764345600123");
  name_is("trainer-recreated-1700000000000-recreated-1710000000000-recreated-1720000000000", "i-1",
          1764345600123, "trainer-recreated-1764345600123");
}

static void test_name_other_suffixes_kept(void **state)
{
  (void)state;
  /* 12 and 14 digits are not our suffix. */
  name_is("t-recreated-170000000000", "i-1", 1764345600123,
          "t-recreated-170000000000-recreated-1764345600123");
  name_is("t-recreated-17000000000000", "i-1", 1764345600123,
          "t-recreated-17000000000000-recreated-1764345600123");
  /* Not at the end, or not digits. */
  name_is("t-recreated-1700000000000-v2", "i-1", 1764345600123,
          "t-recreated-1700000000000-v2-recreated-1764345600123");
  name_is("t-recreated-17000000000x0", "i-1", 1764345600123,
          "t-recreated-17000000000x0-recreated-1764345600123");
  name_is("t_recreated-1700000000000", "i-1", 1764345600123,
          "t_recreated-1700000000000-recreated-1764345600123");
  /* A 14-digit suffix stops the stripping even with ours before it. */
  name_is("t-recreated-1700000000000-recreated-17000000000000", "i-1", 1764345600123,
          "t-recreated-1700000000000-recreated-17000000000000-recreated-1764345600123");
}

static void test_name_ms_printed_as_is(void **state)
{
  (void)state;
  name_is("a", "i-1", 0, "a-recreated-0");
  name_is("a", "i-1", 99999999999999, "a-recreated-99999999999999");
}

static bool valid_utf8(const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
    if (n == 0)
      return false;
    for (size_t i = 1; i < n; i++) {
      if ((p[i] & 0xC0) != 0x80)
        return false;
    }
    p += n;
  }
  return true;
}

static void test_name_cut_ascii(void **state)
{
  (void)state;
  char *old = repeat('n', 400);
  char out[NRD_NAME_MAX + 1];
  nrd_recreate_name(old, "i-1", 1764345600123, out);
  assert_int_equal(strlen(out), 255);
  assert_string_equal(out + 255 - 24, "-recreated-1764345600123");
  assert_int_equal(strspn(out, "n"), 255 - 24);
  /* Exactly fitting: 231 bytes of base stay whole. */
  old[231] = '\0';
  nrd_recreate_name(old, "i-1", 1764345600123, out);
  assert_int_equal(strlen(out), 255);
  assert_int_equal(strspn(out, "n"), 231);
  free(old);
}

/* A base of multi-byte characters (each of width w bytes) cut without
 * splitting one: the base keeps the most whole characters that fit. */
static void check_utf8_cut(const char *ch, size_t prefix)
{
  size_t w = strlen(ch);
  struct nrd_buf b;
  nrd_buf_init(&b);
  for (size_t i = 0; i < prefix; i++)
    nrd_buf_puts(&b, "a");
  for (int i = 0; i < 200; i++)
    nrd_buf_puts(&b, ch);
  nrd_buf_puts(&b, "-recreated-1700000000000");
  char out[NRD_NAME_MAX + 1];
  nrd_recreate_name(b.data, "i-1", 1764345600123, out);
  size_t base_len = strlen(out) - 24;
  size_t want = prefix + (231 - prefix) / w * w;
  assert_int_equal(base_len, want);
  assert_true(strlen(out) <= 255);
  assert_true(valid_utf8(out));
  assert_memory_equal(out, b.data, base_len);
  assert_string_equal(out + base_len, "-recreated-1764345600123");
  nrd_buf_cleanup(&b);
}

static void test_name_cut_utf8(void **state)
{
  (void)state;
  for (size_t prefix = 0; prefix < 4; prefix++) {
    check_utf8_cut("\xc3\xa9", prefix);         /* é, 2 bytes */
    check_utf8_cut("\xe6\x97\xa5", prefix);     /* 日, 3 bytes */
    check_utf8_cut("\xf0\x9f\x9a\x80", prefix); /* rocket, 4 bytes */
  }
}

/* ---- region ---- */

static void region_is(const char *cluster_name, const char *dflt, const char *want)
{
  struct nrd_instance s;
  snap_init(&s);
  set(&s.cluster_name, cluster_name);
  char out[64];
  memset(out, 'Z', sizeof out);
  nrd_recreate_region(&s, dflt, out);
  assert_string_equal(out, want);
  nrd_instance_cleanup(&s);
}

static void test_region(void **state)
{
  (void)state;
  region_is("CN-HK-01 (Hong Kong)", "CN-HK-01", "CN-HK-01");
  region_is("US-CA-06 (California)", "CN-HK-01", "US-CA-06");
  region_is("EU-DE-01", "CN-HK-01", "EU-DE-01");
  region_is("EU-DE-01 ", "CN-HK-01", "EU-DE-01");
  region_is(NULL, "CN-HK-01", "CN-HK-01");
  region_is("", "CN-HK-01", "CN-HK-01");
  region_is(" (no code)", "CN-HK-01", "CN-HK-01");
  region_is(NULL, "US-NY-02", "US-NY-02");
  region_is(NULL, NULL, "");
}

static void test_region_long_truncated(void **state)
{
  (void)state;
  char *longname = repeat('R', 100);
  struct nrd_instance s;
  snap_init(&s);
  s.cluster_name = longname;
  char out[64];
  nrd_recreate_region(&s, "CN-HK-01", out);
  assert_int_equal(strlen(out), 63);
  nrd_instance_cleanup(&s);
}

/* ---- product pick ---- */

struct pdef {
  const char *id, *name;
  const char *regions[3];
  bool available, has_price;
  double price;
};

static struct nrd_product *make_products(const struct pdef *defs, size_t n)
{
  struct nrd_product *p = nrd_xcalloc(n, sizeof *p);
  for (size_t i = 0; i < n; i++) {
    p[i].id = nrd_xstrdup(defs[i].id);
    p[i].name = nrd_xstrdup(defs[i].name);
    size_t r = 0;
    while (r < 3 && defs[i].regions[r])
      r++;
    p[i].regions = nrd_xcalloc(r ? r : 1, sizeof *p[i].regions);
    for (size_t j = 0; j < r; j++)
      p[i].regions[j] = nrd_xstrdup(defs[i].regions[j]);
    p[i].n_regions = r;
    p[i].available = defs[i].available;
    p[i].has_spot_price = defs[i].has_price;
    p[i].spot_price = defs[i].price;
  }
  return p;
}

static void free_products(struct nrd_product *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    nrd_product_cleanup(&p[i]);
  free(p);
}

#define NAME "RTX 4090 24GB"
#define HK "CN-HK-01 (Hong Kong)"

static long pick(const struct pdef *defs, size_t n, const char *name, const char *region)
{
  struct nrd_product *p = make_products(defs, n);
  long i = nrd_recreate_pick_product(p, n, name, region);
  free_products(p, n);
  return i;
}

static void test_pick_cheapest(void **state)
{
  (void)state;
  const struct pdef d[] = {
    { "p0", NAME, { HK }, true, true, 50000 },
    { "p1", NAME, { HK }, true, true, 35000 },
    { "p2", NAME, { HK }, true, true, 42000 },
  };
  assert_int_equal(pick(d, 3, NAME, "CN-HK-01"), 1);
}

static void test_pick_skips_unusable(void **state)
{
  (void)state;
  const struct pdef d[] = {
    { "p0", NAME, { HK }, false, true, 100 },                     /* not deployable */
    { "p1", NAME, { HK }, true, true, 0 },                        /* zero price */
    { "p2", NAME, { HK }, true, false, 0 },                       /* no price */
    { "p3", NAME, { "US-CA-06 (California)" }, true, true, 100 }, /* other region */
    { "p4", "RTX 4090", { HK }, true, true, 100 },                /* other name */
    { "p5", "rtx 4090 24gb", { HK }, true, true, 100 },           /* case differs */
    { "p6", NAME, { HK }, true, true, -5 },                       /* negative price */
    { "p7", NAME, { "CN-HK-011 (Elsewhere)" }, true, true, 100 }, /* code prefix */
    { NULL, NAME, { HK }, true, true, 100 },                      /* no id */
    { "p9", NAME, { HK }, true, true, 90000 },                    /* the only usable one */
  };
  assert_int_equal(pick(d, sizeof d / sizeof d[0], NAME, "CN-HK-01"), 9);
}

static void test_pick_none(void **state)
{
  (void)state;
  const struct pdef d[] = {
    { "p0", NAME, { HK }, false, true, 100 },
    { "p1", NAME, { "US-CA-06 (California)" }, true, true, 100 },
  };
  assert_int_equal(pick(d, 2, NAME, "CN-HK-01"), -1);
  assert_int_equal(pick(d, 0, NAME, "CN-HK-01"), -1);
  assert_int_equal(nrd_recreate_pick_product(NULL, 0, NAME, "CN-HK-01"), -1);
  const struct pdef ok[] = { { "p0", NAME, { HK }, true, true, 100 } };
  assert_int_equal(pick(ok, 1, NAME, "CN-HK-01"), 0);
  assert_int_equal(pick(ok, 1, NULL, "CN-HK-01"), -1);
  assert_int_equal(pick(ok, 1, "", "CN-HK-01"), -1);
  assert_int_equal(pick(ok, 1, NAME, ""), -1);
  assert_int_equal(pick(ok, 1, NAME, "CN-HK-0"), -1);
}

static void test_pick_ties_first(void **state)
{
  (void)state;
  const struct pdef d[] = {
    { "p0", NAME, { HK }, true, true, 60000 },
    { "p1", NAME, { HK }, true, true, 40000 },
    { "p2", NAME, { HK }, true, true, 40000 },
  };
  assert_int_equal(pick(d, 3, NAME, "CN-HK-01"), 1);
}

static void test_pick_region_among_several(void **state)
{
  (void)state;
  const struct pdef d[] = {
    { "p0", NAME, { "US-CA-06 (California)", "EU-DE-01 (Frankfurt)" }, true, true, 100 },
    { "p1", NAME, { "US-CA-06 (California)", "CN-HK-01 (Hong Kong)" }, true, true, 200 },
    { "p2", NAME, { "CN-HK-01" }, true, true, 150 }, /* code without a description */
  };
  assert_int_equal(pick(d, 3, NAME, "CN-HK-01"), 2);
  assert_int_equal(pick(d, 3, NAME, "EU-DE-01"), 0);
  assert_int_equal(pick(d, 3, NAME, "US-CA-06"), 0);
}

/* ---- redact ---- */

static void test_redact(void **state)
{
  (void)state;
  struct nrd_instance s;
  fill_full(&s);
  add_env(&s, "DB_PASSWORD", "hunter2");
  cJSON *req = build(&s);
  cJSON_AddStringToObject(req, "imageAuth", "user:pass");
  char *before = nrd_json_print(req);

  cJSON *red = nrd_recreate_redact(req);
  assert_non_null(red);
  assert_ptr_not_equal(red, req);
  char *after = nrd_json_print(req);
  assert_string_equal(before, after); /* the original is untouched */

  assert_str_field(red, "imageAuthId", "***");
  assert_str_field(red, "imageAuth", "***");
  const cJSON *envs = field(red, "envs");
  assert_int_equal(cJSON_GetArraySize(envs), 2);
  assert_str_field(cJSON_GetArrayItem(envs, 0), "key", "HF_TOKEN");
  assert_str_field(cJSON_GetArrayItem(envs, 0), "value", "***");
  assert_str_field(cJSON_GetArrayItem(envs, 1), "key", "DB_PASSWORD");
  assert_str_field(cJSON_GetArrayItem(envs, 1), "value", "***");
  char *red_txt = nrd_json_print(red);
  assert_null(strstr(red_txt, "hunter2"));
  assert_null(strstr(red_txt, "hf_secret"));
  assert_null(strstr(red_txt, "auth-7"));
  assert_null(strstr(red_txt, "user:pass"));
  /* Everything else is as it was, in the same order. */
  assert_str_field(red, "imageUrl", "registry.example/app:1");
  assert_str_field(red, "ports", "8080/http, 22/tcp");
  assert_int_field(red, "gpuNum", 2);
  assert_string_equal(cJSON_GetArrayItem(red, 5)->string, "imageAuthId");

  free(red_txt);
  free(before);
  free(after);
  cJSON_Delete(red);
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

static void test_redact_without_secrets_is_equal(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  cJSON *req = build(&s);
  cJSON *red = nrd_recreate_redact(req);
  assert_true(cJSON_Compare(req, red, 1));
  cJSON_Delete(red);
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
  assert_null(nrd_recreate_redact(NULL));
}

/* ---- structural check against CreateInstanceRequest ---- */

static bool is_int_in(const cJSON *v, double lo, double hi)
{
  return cJSON_IsNumber(v) && v->valuedouble == (double)(int64_t)v->valuedouble &&
         v->valuedouble >= lo && v->valuedouble <= hi;
}

static void assert_create_request_shape(const cJSON *req)
{
  static const char *const known[] = { "name",
                                       "productId",
                                       "gpuNum",
                                       "rootfsSize",
                                       "imageUrl",
                                       "imageAuthId",
                                       "ports",
                                       "envs",
                                       "tools",
                                       "command",
                                       "entrypoint",
                                       "clusterId",
                                       "localStorageMountPoint",
                                       "networkStorages",
                                       "networkId",
                                       "minCudaVersion",
                                       "kind",
                                       "billingMode" };
  const cJSON *c;
  cJSON_ArrayForEach(c, req) {
    bool found = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
      found = found || strcmp(c->string, known[i]) == 0;
    if (!found)
      fail_msg("unknown field %s", c->string);
  }
  const cJSON *name = field(req, "name");
  assert_true(!name || (cJSON_IsString(name) && strlen(name->valuestring) <= 255));
  const cJSON *pid = field(req, "productId");
  assert_true(cJSON_IsString(pid) && *pid->valuestring);
  bool cpu = cJSON_IsString(field(req, "kind")) && !strcmp(field(req, "kind")->valuestring, "cpu");
  assert_true(cpu ? !field(req, "gpuNum") : is_int_in(field(req, "gpuNum"), 1, 8));
  assert_true(cpu ? !field(req, "rootfsSize") : is_int_in(field(req, "rootfsSize"), 10, 6144));
  const cJSON *entry = field(req, "entrypoint");
  assert_true(!entry || (cJSON_IsString(entry) && strlen(entry->valuestring) <= 2047));
  const cJSON *img = field(req, "imageUrl");
  assert_true(cJSON_IsString(img) && *img->valuestring && strlen(img->valuestring) <= 500);
  const cJSON *kind = field(req, "kind");
  assert_true(cJSON_IsString(kind));
  assert_true(strcmp(kind->valuestring, "gpu") == 0 || strcmp(kind->valuestring, "cpu") == 0);
  const cJSON *bm = field(req, "billingMode");
  assert_true(cJSON_IsString(bm));
  assert_true(strcmp(bm->valuestring, "onDemand") == 0 || strcmp(bm->valuestring, "monthly") == 0 ||
              strcmp(bm->valuestring, "spot") == 0);
  const cJSON *ports = field(req, "ports");
  assert_true(!ports || cJSON_IsString(ports));
  const cJSON *envs = field(req, "envs");
  if (envs) {
    assert_true(cJSON_IsArray(envs) && cJSON_GetArraySize(envs) <= 100);
    const cJSON *e;
    cJSON_ArrayForEach(e, envs) {
      assert_true(cJSON_IsString(field(e, "key")) && cJSON_IsString(field(e, "value")));
    }
  }
  const cJSON *cmd = field(req, "command");
  assert_true(!cmd || (cJSON_IsString(cmd) && strlen(cmd->valuestring) <= 2047));
  const cJSON *ns = field(req, "networkStorages");
  if (ns) {
    assert_true(cJSON_IsArray(ns) && cJSON_GetArraySize(ns) <= 30);
    const cJSON *m;
    cJSON_ArrayForEach(m, ns) {
      assert_true(cJSON_IsString(field(m, "Id")) && cJSON_IsString(field(m, "mountPoint")));
    }
  }
}

static void test_built_requests_fit_schema(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  cJSON *req = build(&s);
  assert_create_request_shape(req);
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);

  fill_full(&s);
  char name[NRD_NAME_MAX + 1];
  char *longname = repeat('x', 300);
  nrd_recreate_name(longname, s.id, 1764345600123, name);
  free(longname);
  expect_ok(&s);
  req = nrd_recreate_build(&s, s.product_id, name);
  assert_create_request_shape(req);
  char *txt = nrd_json_print(req);
  cJSON *back = nrd_json_parse(txt, strlen(txt));
  assert_create_request_shape(back);
  cJSON_Delete(back);
  free(txt);
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

/* ---- carried fields (issue 14) ---- */

static void test_entrypoint_network_cuda_carried(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.entrypoint, "/entry.sh");
  set(&s.network_id, "vpc-9");
  set(&s.min_cuda_version, "12.4");
  cJSON *req = build(&s);
  assert_string_equal(field(req, "entrypoint")->valuestring, "/entry.sh");
  assert_string_equal(field(req, "networkId")->valuestring, "vpc-9");
  assert_string_equal(field(req, "minCudaVersion")->valuestring, "12.4");
  cJSON_Delete(req);
  expect_length_bound(&s, &s.entrypoint, 2047, "entrypoint");
  free(s.entrypoint);
  s.entrypoint = repeat('x', 2047);
  free(s.min_cuda_version);
  s.min_cuda_version = repeat('1', 33);
  expect_fail(&s, "minCudaVersion");
  nrd_instance_cleanup(&s);
}

static void test_tools_carried_and_counted_with_ports(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  add_tool(&s, "Jupyter", "8888", "http");
  add_tool(&s, "ssh", NULL, NULL);
  cJSON *req = build(&s);
  char *text = nrd_json_print(field(req, "tools"));
  assert_string_equal(text, "[{\"name\":\"Jupyter\",\"port\":\"8888\",\"type\":\"http\"},"
                            "{\"name\":\"ssh\",\"type\":\"tcp\"}]");
  free(text);
  cJSON_Delete(req);
  char num[8];
  for (int i = 0; i < 13; i++) {
    snprintf(num, sizeof num, "%d", 8000 + i);
    add_port(&s, num, "tcp");
  }
  add_port(&s, "2222", "tcp"); /* reserved: not sent, not counted */
  expect_ok(&s);
  add_port(&s, "9000", "tcp");
  expect_fail(&s, "ports and tools");
  nrd_instance_cleanup(&s);

  snap_init(&s);
  add_tool(&s, "", "8888", "http");
  expect_fail(&s, "no name");
  nrd_instance_cleanup(&s);
  snap_init(&s);
  add_tool(&s, "x", "70000", "http");
  expect_fail(&s, "tool 1 has port");
  nrd_instance_cleanup(&s);
}

static void test_reserved_ports_dropped_and_named(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  add_port(&s, "2222", "tcp");
  add_port(&s, "80", "http");
  add_port(&s, "2224", "http");
  add_port(&s, "2225", "tcp");
  add_mount(&s, "local", "", "/data");
  cJSON *req = build(&s);
  assert_string_equal(field(req, "ports")->valuestring, "80/http, 2225/tcp");
  cJSON_Delete(req);
  cJSON *o = cJSON_CreateObject();
  nrd_recreate_notes(&s, o);
  char *text = nrd_json_print(o);
  assert_string_equal(text, "{\"droppedPorts\":[2222,2224],\"localStorageLost\":true,"
                            "\"localStorageMountPath\":\"/data\"}");
  free(text);
  cJSON_Delete(o);
  nrd_instance_cleanup(&s);

  snap_init(&s);
  o = cJSON_CreateObject();
  nrd_recreate_notes(&s, o);
  assert_null(o->child); /* nothing dropped, nothing lost */
  cJSON_Delete(o);
  nrd_instance_cleanup(&s);
}

static void test_cpu_create(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.kind, "cpu");
  set(&s.gpu_num, "2");
  set(&s.rootfs_size, "80");
  set(&s.min_cuda_version, "12.4");
  add_mount(&s, "local", "", "/workspace");
  char key[8];
  for (int i = 0; i < 30; i++) {
    snprintf(key, sizeof key, "K%d", i);
    add_env(&s, key, "v");
  }
  cJSON *req = build(&s);
  assert_null(field(req, "gpuNum"));
  assert_null(field(req, "rootfsSize"));
  assert_null(field(req, "minCudaVersion"));
  assert_string_equal(field(req, "localStorageMountPoint")->valuestring, "/workspace");
  assert_string_equal(field(req, "kind")->valuestring, "cpu");
  cJSON_Delete(req);
  add_env(&s, "K30", "v");
  expect_fail(&s, "at most 30 on a cpu instance");
  set(&s.kind, "gpu");
  expect_ok(&s); /* a gpu instance takes 100 */
  req = build(&s);
  assert_null(field(req, "localStorageMountPoint"));
  cJSON_Delete(req);
  nrd_instance_cleanup(&s);
}

/* A reason never carries unprintable or long junk from Novita. */
static void test_reason_hides_junk(void **state)
{
  (void)state;
  struct nrd_instance s;
  snap_init(&s);
  set(&s.kind, "g\"pu\n");
  char reason[NRD_REASON_MAX];
  assert_false(nrd_recreate_check(&s, NULL, reason));
  assert_string_equal(reason, "kind (value not shown) is not gpu or cpu; instance left untouched");
  free(s.kind);
  s.kind = repeat('k', 5000);
  assert_false(nrd_recreate_check(&s, NULL, reason));
  assert_true(strlen(reason) < 100);
  nrd_instance_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_entrypoint_network_cuda_carried),
    cmocka_unit_test(test_tools_carried_and_counted_with_ports),
    cmocka_unit_test(test_reserved_ports_dropped_and_named),
    cmocka_unit_test(test_cpu_create),
    cmocka_unit_test(test_minimal_defaults_and_order),
    cmocka_unit_test(test_full_snapshot_order_and_values),
    cmocka_unit_test(test_product_id_comes_from_argument),
    cmocka_unit_test(test_image_url_absent),
    cmocka_unit_test(test_image_url_length),
    cmocka_unit_test(test_product_id_length),
    cmocka_unit_test(test_product_absent_forms),
    cmocka_unit_test(test_product_id_present_needs_no_lookup),
    cmocka_unit_test(test_check_tolerates_null_outputs),
    cmocka_unit_test(test_gpu_num_absent_forms_default_to_one),
    cmocka_unit_test(test_gpu_num_valid),
    cmocka_unit_test(test_gpu_num_invalid),
    cmocka_unit_test(test_gpu_num_reason_shows_value),
    cmocka_unit_test(test_rootfs_absent_forms_default_to_fifty),
    cmocka_unit_test(test_rootfs_valid),
    cmocka_unit_test(test_rootfs_invalid),
    cmocka_unit_test(test_kind),
    cmocka_unit_test(test_billing_mode),
    cmocka_unit_test(test_optional_strings_omitted_when_absent),
    cmocka_unit_test(test_optional_strings_copied),
    cmocka_unit_test(test_command_length_limit),
    cmocka_unit_test(test_ports_absent),
    cmocka_unit_test(test_ports_single_and_types),
    cmocka_unit_test(test_ports_several_joined),
    cmocka_unit_test(test_ports_invalid),
    cmocka_unit_test(test_ports_invalid_second_named),
    cmocka_unit_test(test_ports_fifteen_vs_sixteen),
    cmocka_unit_test(test_envs_absent),
    cmocka_unit_test(test_envs_byte_for_byte),
    cmocka_unit_test(test_envs_hundred_vs_hundred_one),
    cmocka_unit_test(test_envs_empty_key),
    cmocka_unit_test(test_mounts_network_carried),
    cmocka_unit_test(test_mounts_only_local_omitted),
    cmocka_unit_test(test_mounts_thirty_vs_thirty_one),
    cmocka_unit_test(test_name_plain),
    cmocka_unit_test(test_name_absent_uses_id),
    cmocka_unit_test(test_name_suffix_stripped),
    cmocka_unit_test(test_name_other_suffixes_kept),
    cmocka_unit_test(test_name_ms_printed_as_is),
    cmocka_unit_test(test_name_cut_ascii),
    cmocka_unit_test(test_name_cut_utf8),
    cmocka_unit_test(test_region),
    cmocka_unit_test(test_region_long_truncated),
    cmocka_unit_test(test_pick_cheapest),
    cmocka_unit_test(test_pick_skips_unusable),
    cmocka_unit_test(test_pick_none),
    cmocka_unit_test(test_pick_ties_first),
    cmocka_unit_test(test_pick_region_among_several),
    cmocka_unit_test(test_redact),
    cmocka_unit_test(test_redact_without_secrets_is_equal),
    cmocka_unit_test(test_built_requests_fit_schema),
    cmocka_unit_test(test_reason_hides_junk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
