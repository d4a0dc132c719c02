/* The Novita client against the in-process simulator: paging (page base 0
 * and 1, a server page cap), keys per host, not-found, create never retried,
 * retries with Retry-After, hostile bodies, circuit breaker, token bucket. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/novita.h"
#include "nrd/sim.h"
#include "nrd/util.h"
#include "testutil.h"

#define PUBLIC_KEY "pk-test-0123456789"
#define INTERNAL_KEY "ik-test-9876543210"
#define FLEET 250

struct fix {
  struct nrd_sim *sim;
  struct nrd_novita *nv;
  struct nrd_novita_conn *c;
  char base[128], internal[128];
};

/* 250 instances i-0.., 250 failed migration jobs j-0.. (one per instance). */
static char *scenario(int64_t now_s)
{
  cJSON *root = cJSON_CreateObject();
  cJSON *insts = cJSON_AddArrayToObject(root, "instances");
  cJSON *jobs = cJSON_AddArrayToObject(root, "jobs");
  cJSON_AddArrayToObject(root, "products");
  for (int i = 0; i < FLEET; i++) {
    char id[32], name[32];
    snprintf(id, sizeof id, "i-%d", i);
    snprintf(name, sizeof name, "node-%d", i);
    cJSON *in = cJSON_CreateObject();
    nrd_json_add_str(in, "id", id);
    nrd_json_add_str(in, "name", name);
    nrd_json_add_str(in, "status", i % 2 ? "running" : "migrating");
    nrd_json_add_str(in, "gpuNum", "1");
    nrd_json_add_str(in, "imageUrl", "img:1");
    nrd_json_add_str(in, "sshPassword", "hunter2");
    cJSON_AddItemToArray(insts, in);

    char jid[32];
    snprintf(jid, sizeof jid, "j-%d", i);
    cJSON *j = cJSON_CreateObject();
    nrd_json_add_str(j, "Id", jid);
    nrd_json_add_str(j, "type", "instanceMigrate");
    nrd_json_add_str(j, "instanceId", id);
    nrd_json_add_num(j, "createdAt", (double)(now_s - 60 - i));
    cJSON *st = cJSON_AddObjectToObject(j, "state");
    nrd_json_add_str(st, "state", "fail");
    nrd_json_add_str(st, "error", "MIGRATE_FAILED");
    cJSON_AddItemToArray(jobs, j);
  }
  /* A job of another type and one outside the window: filtered by the server. */
  cJSON *other = cJSON_CreateObject();
  nrd_json_add_str(other, "Id", "j-other");
  nrd_json_add_str(other, "type", "saveImage");
  nrd_json_add_num(other, "createdAt", (double)now_s);
  cJSON_AddItemToArray(jobs, other);
  char *text = nrd_json_print(root);
  cJSON_Delete(root);
  return text;
}

static struct nrd_novita_options default_opts(const struct fix *f)
{
  return (struct nrd_novita_options){
    .base_url = f->base,
    .api_key = PUBLIC_KEY,
    .page_size = 100,
    .request_timeout_ms = 5000,
    .max_retry_attempts = 3,
    .backoff_base_ms = 5,
    .backoff_cap_ms = 20,
  };
}

/* Starts the simulator (with so) and a client (with o; NULL: defaults). */
static void fix_start(struct fix *f, const struct nrd_sim_options *so,
                      const struct nrd_novita_options *o)
{
  char err[256] = "";
  memset(f, 0, sizeof *f);
  f->sim = nrd_sim_start(so, err, sizeof err);
  if (!f->sim)
    fail_msg("simulator: %s", err);
  nrd_sim_base_url(f->sim, f->base);
  nrd_sim_internal_base_url(f->sim, f->internal);
  char *sc = scenario(nrd_now_ms() / 1000);
  assert_int_equal(nrd_sim_load(f->sim, sc), 0);
  free(sc);
  struct nrd_novita_options d = default_opts(f);
  if (o) {
    d = *o;
    d.base_url = f->base;
  }
  f->nv = nrd_novita_create(&d);
  assert_non_null(f->nv);
  f->c = nrd_novita_conn_create(f->nv);
  assert_non_null(f->c);
  nrd_metrics_reset();
}

static void fix_stop(struct fix *f)
{
  nrd_novita_conn_destroy(f->c);
  nrd_novita_destroy(f->nv);
  nrd_sim_stop(f->sim);
}

static const struct nrd_sim_options keyed = { .api_key = PUBLIC_KEY,
                                              .internal_api_key = INTERNAL_KEY };

struct seen {
  int count[FLEET];
  size_t pages, unusable_pages, items;
  bool bad;    /* an id outside i-0..i-249 */
  bool leaked; /* a password in raw_json */
};

static int collect(void *ud, struct nrd_instance *items, size_t n)
{
  struct seen *s = ud;
  for (size_t i = 0; i < n; i++) {
    int k = -1;
    if (!items[i].id || sscanf(items[i].id, "i-%d", &k) != 1 || k < 0 || k >= FLEET) {
      s->bad = true;
      continue;
    }
    s->count[k]++;
    s->items++;
    if (items[i].raw_json && strstr(items[i].raw_json, "hunter2"))
      s->leaked = true;
  }
  return 0;
}

static void count_page(void *ud, bool usable)
{
  struct seen *s = ud;
  s->pages++;
  if (!usable)
    s->unusable_pages++;
}

static void check_all_once(const struct seen *s)
{
  assert_false(s->bad);
  assert_false(s->leaked);
  assert_int_equal(s->items, FLEET);
  for (int i = 0; i < FLEET; i++)
    assert_int_equal(s->count[i], 1);
}

static void check_jobs(struct nrd_job *jobs, size_t n)
{
  int count[FLEET] = { 0 };
  assert_int_equal(n, FLEET);
  for (size_t i = 0; i < n; i++) {
    int k = -1;
    assert_int_equal(sscanf(jobs[i].id, "j-%d", &k), 1);
    assert_true(k >= 0 && k < FLEET);
    count[k]++;
    assert_string_equal(jobs[i].state, "fail");
    assert_string_equal(jobs[i].error, "MIGRATE_FAILED");
  }
  for (int i = 0; i < FLEET; i++)
    assert_int_equal(count[i], 1);
}

/* Every logged request to a path ending with suffix carried auth. */
static size_t check_auth(struct nrd_sim *sim, const char *suffix, const char *auth)
{
  struct nrd_sim_request *r;
  size_t n = nrd_sim_requests(sim, &r), hits = 0;
  for (size_t i = 0; i < n; i++) {
    size_t pl = strlen(r[i].path), sl = strlen(suffix);
    if (pl < sl || strcmp(r[i].path + pl - sl, suffix) != 0)
      continue;
    hits++;
    assert_non_null(r[i].authorization);
    assert_string_equal(r[i].authorization, auth);
  }
  nrd_sim_requests_free(r, n);
  return hits;
}

static void paging_case(int base, unsigned cap, bool internal)
{
  struct fix f;
  struct nrd_sim_options so = keyed;
  so.page_base = base;
  so.page_base_set = true;
  so.page_cap = cap;
  struct nrd_novita_options o = { .api_key = PUBLIC_KEY,
                                  .page_size = 100,
                                  .request_timeout_ms = 5000 };
  char internal_base[128];
  fix_start(&f, &so, NULL);
  if (internal) {
    nrd_novita_conn_destroy(f.c);
    nrd_novita_destroy(f.nv);
    nrd_sim_internal_base_url(f.sim, internal_base);
    o.base_url = f.base;
    o.internal_base_url = internal_base;
    o.internal_api_key = INTERNAL_KEY;
    f.nv = nrd_novita_create(&o);
    f.c = nrd_novita_conn_create(f.nv);
  }

  struct seen s = { 0 };

  const struct nrd_nv_instance_sink sink = { collect, count_page, &s };
  size_t total_seen = 0;
  struct nrd_nv_error err;
  assert_int_equal(nrd_nv_list_instances(f.c, NULL, &sink, &total_seen, &err), NRD_NV_OK);
  assert_int_equal(total_seen, FLEET);
  check_all_once(&s);
  size_t pages = nrd_sim_count(f.sim, "GET", "/v1/gpu/instances");
  /* ceil(250/size) pages, plus at most the empty page and the page-0 round. */
  unsigned size = cap && cap < 100 ? cap : 100;
  assert_true(pages >= (FLEET + size - 1) / size);
  assert_true(pages <= (FLEET + size - 1) / size + 3);
  assert_int_equal(s.pages, pages); /* every page read is ended once */
  assert_int_equal(s.unusable_pages, 0);

  struct nrd_job *jobs;
  size_t n;
  int64_t now = nrd_now_ms() / 1000;
  assert_int_equal(nrd_nv_list_jobs(f.c, "instanceMigrate", now - 3600, now, &jobs, &n, &err),
                   NRD_NV_OK);
  check_jobs(jobs, n);
  nrd_jobs_free(jobs, n);

  assert_true(check_auth(f.sim, "/v1/gpu/instances", "Bearer " PUBLIC_KEY) > 0);
  if (internal) {
    assert_true(check_auth(f.sim, "/api/v1/jobs", "Bearer " INTERNAL_KEY) > 0);
    assert_int_equal(
        nrd_sim_count(f.sim, "GET", "/v1/jobs") - nrd_sim_count(f.sim, "GET", "/api/v1/jobs"), 0);
  } else {
    assert_true(check_auth(f.sim, "/v1/jobs", "Bearer " PUBLIC_KEY) > 0);
    assert_int_equal(nrd_sim_count(f.sim, "GET", "/api/v1/jobs"), 0);
  }
  /* The job query carries the window and the type. */
  struct nrd_sim_request *r;
  size_t nr = nrd_sim_requests(f.sim, &r);
  bool saw_query = false;
  for (size_t i = 0; i < nr; i++) {
    if (strstr(r[i].path, "/jobs") && strstr(r[i].query, "type=instanceMigrate") &&
        strstr(r[i].query, "startTime=") && strstr(r[i].query, "endTime="))
      saw_query = true;
  }
  nrd_sim_requests_free(r, nr);
  assert_true(saw_query);
  fix_stop(&f);
}

static void test_paging_base1(void **state)
{
  paging_case(1, 30, false);
}
static void test_paging_base0(void **state)
{
  paging_case(0, 30, false);
}
static void test_paging_base0_internal_jobs(void **state)
{
  paging_case(0, 64, true);
}
static void test_paging_base1_internal_jobs(void **state)
{
  paging_case(1, 0, true);
}

static void test_wrong_key_is_final(void **state)
{
  struct fix f;
  struct nrd_novita_options o = {
    .api_key = "wrong-key", .page_size = 50, .request_timeout_ms = 5000, .max_retry_attempts = 3
  };
  fix_start(&f, &keyed, &o);
  struct seen s = { 0 };
  const struct nrd_nv_instance_sink sink = { collect, count_page, &s };
  struct nrd_nv_error err;
  assert_int_equal(nrd_nv_list_instances(f.c, NULL, &sink, NULL, &err), NRD_NV_FINAL);
  assert_int_equal(err.http_status, 401);
  assert_int_equal(nrd_sim_count(f.sim, NULL, "/v1/gpu/instances"), 1); /* not retried */
  fix_stop(&f);
}

static void test_delete(void **state)
{
  struct fix f;
  struct nrd_nv_error err;
  fix_start(&f, &keyed, NULL);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-7", &err), NRD_NV_OK);
  assert_int_equal(nrd_sim_instance_count(f.sim), FLEET - 1);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-7", &err), NRD_NV_NOT_FOUND);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-does-not-exist", &err), NRD_NV_NOT_FOUND);
  assert_int_equal(nrd_sim_count(f.sim, "POST", "/v1/gpu/instance/delete"), 3);

  struct nrd_sim_request *r;
  size_t n = nrd_sim_requests(f.sim, &r);
  assert_int_equal(n, 3);
  assert_string_equal(r[0].body, "{\"instanceId\":\"i-7\"}");
  nrd_sim_requests_free(r, n);

  /* A 404 without a body is not-found too. */
  struct nrd_sim_fault nf = {
    .kind = NRD_SIM_STATUS, .match = "delete", .status = 404, .body = "", .count = 1
  };
  nrd_sim_add_fault(f.sim, &nf);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-8", &err), NRD_NV_NOT_FOUND);
  assert_int_equal(err.http_status, 404);
  fix_stop(&f);
}

static cJSON *create_request(const char *name)
{
  cJSON *req = cJSON_CreateObject();
  nrd_json_add_str(req, "name", name);
  nrd_json_add_str(req, "productId", "p-1");
  nrd_json_add_num(req, "gpuNum", 1);
  nrd_json_add_num(req, "rootfsSize", 50);
  nrd_json_add_str(req, "imageUrl", "img:1");
  nrd_json_add_str(req, "kind", "gpu");
  nrd_json_add_str(req, "billingMode", "spot");
  return req;
}

static void test_create_not_retried(void **state)
{
  struct fix f;
  struct nrd_nv_error err;
  char *id = NULL;
  fix_start(&f, &keyed, NULL);
  cJSON *req = create_request("node-1-recreated-1764345600123");

  assert_int_equal(nrd_nv_create_instance(f.c, req, &id, &err), NRD_NV_OK);
  assert_non_null(id);
  assert_int_equal(nrd_sim_count_by_name(f.sim, "node-1-recreated-1764345600123"), 1);
  char *found = NULL;
  assert_int_equal(nrd_nv_find_by_name(f.c, "node-1-recreated-1764345600123", &found, &err),
                   NRD_NV_OK);
  assert_non_null(found);
  assert_string_equal(found, id);
  free(found);
  free(id);
  /* Exact match only: "node-1" matches node-1, node-10.. fuzzily. */
  assert_int_equal(nrd_nv_find_by_name(f.c, "node-1", &found, &err), NRD_NV_OK);
  assert_string_equal(found, "i-1");
  free(found);
  assert_int_equal(nrd_nv_find_by_name(f.c, "node-99999", &found, &err), NRD_NV_OK);
  assert_null(found);

  /* 500: Novita may have created it -> ambiguous, one request. */
  struct nrd_sim_fault e500 = {
    .kind = NRD_SIM_STATUS, .match = "create", .status = 500, .count = 1
  };
  nrd_sim_clear_requests(f.sim);
  nrd_sim_add_fault(f.sim, &e500);
  assert_int_equal(nrd_nv_create_instance(f.c, req, &id, &err), NRD_NV_AMBIGUOUS);
  assert_null(id);
  assert_int_equal(nrd_sim_count(f.sim, "POST", "/v1/gpu/instance/create"), 1);

  /* Connection reset after the request went out -> ambiguous, one request. */
  struct nrd_sim_fault reset = { .kind = NRD_SIM_RESET, .match = "create", .count = 1 };
  nrd_sim_clear_requests(f.sim);
  nrd_sim_add_fault(f.sim, &reset);
  assert_int_equal(nrd_nv_create_instance(f.c, req, &id, &err), NRD_NV_AMBIGUOUS);
  assert_int_equal(nrd_sim_count(f.sim, "POST", "/v1/gpu/instance/create"), 1);

  /* Applied, then too slow for the timeout -> ambiguous; the instance exists. */
  nrd_novita_conn_destroy(f.c);
  nrd_novita_destroy(f.nv);
  struct nrd_novita_options o = default_opts(&f);
  o.request_timeout_ms = 300;
  f.nv = nrd_novita_create(&o);
  f.c = nrd_novita_conn_create(f.nv);
  cJSON *req2 = create_request("slow-create");
  struct nrd_sim_fault slow = {
    .kind = NRD_SIM_APPLY_THEN_DELAY, .match = "create", .delay_ms = 1500, .count = 1
  };
  nrd_sim_clear_requests(f.sim);
  nrd_sim_add_fault(f.sim, &slow);
  assert_int_equal(nrd_nv_create_instance(f.c, req2, &id, &err), NRD_NV_AMBIGUOUS);
  assert_int_equal(nrd_sim_count(f.sim, "POST", "/v1/gpu/instance/create"), 1);
  assert_int_equal(nrd_sim_count_by_name(f.sim, "slow-create"), 1);

  /* A 400 refusal is final, one request. */
  cJSON *bad = cJSON_CreateObject();
  nrd_json_add_str(bad, "name", "x");
  nrd_sim_clear_requests(f.sim);
  assert_int_equal(nrd_nv_create_instance(f.c, bad, &id, &err), NRD_NV_FINAL);
  assert_int_equal(err.http_status, 400);
  assert_true(strlen(err.message) > 0);
  assert_int_equal(nrd_sim_count(f.sim, "POST", "/v1/gpu/instance/create"), 1);

  /* 200 without an id: the instance may exist -> ambiguous. */
  struct nrd_sim_fault noid = {
    .kind = NRD_SIM_STATUS, .match = "create", .status = 200, .body = "{}", .count = 1
  };
  nrd_sim_add_fault(f.sim, &noid);
  assert_int_equal(nrd_nv_create_instance(f.c, req, &id, &err), NRD_NV_AMBIGUOUS);

  /* Nothing listening: refused before sending -> transient, not ambiguous. */
  fix_stop(&f);
  struct nrd_novita_options o2 = {
    .base_url = f.base, .api_key = PUBLIC_KEY, .request_timeout_ms = 2000, .max_retry_attempts = 3
  };
  struct nrd_novita *nv = nrd_novita_create(&o2);
  struct nrd_novita_conn *c = nrd_novita_conn_create(nv);
  assert_int_equal(nrd_nv_create_instance(c, req, &id, &err), NRD_NV_TRANSIENT);
  assert_int_equal(err.http_status, 0);
  assert_int_equal(nrd_novita_calls(nv), 1);
  nrd_novita_conn_destroy(c);
  nrd_novita_destroy(nv);
  cJSON_Delete(bad);
  cJSON_Delete(req2);
  cJSON_Delete(req);
}

/* Novita's reasons, classified by the one table: account-wide and prepaid
 * get their own results, CLUSTER_STATUS on a create is transient (not a
 * final refusal), the reason wins over a string code, and a 200 whose body
 * is Novita's error shape is classified like a 4xx, never taken as success. */
static void test_reasons(void **state)
{
  struct fix f;
  struct nrd_nv_error err;
  char *id = NULL;
  fix_start(&f, &keyed, NULL);
  cJSON *req = create_request("node-1-recreated-1764345600999");
  static const struct {
    int status;
    const char *body;
    enum nrd_nv_rc rc;
    const char *code;
  } cases[] = {
    { 400,
      "{\"code\":403,\"reason\":\"BALANCE_NOT_ENOUGH\",\"message\":\"top up\",\"metadata\":{}}",
      NRD_NV_ACCOUNT, "BALANCE_NOT_ENOUGH" },
    { 400, "{\"code\":400,\"reason\":\"CREATE_GPU_NUM_LIMIT\",\"message\":\"quota\"}",
      NRD_NV_ACCOUNT, "CREATE_GPU_NUM_LIMIT" },
    { 400, "{\"code\":400,\"reason\":\"CLUSTER_STATUS\",\"message\":\"not ready\"}",
      NRD_NV_TRANSIENT, "CLUSTER_STATUS" },
    { 400, "{\"code\":\"SOMETHING\",\"reason\":\"INSUFFICIENT_RESOURCE\",\"message\":\"full\"}",
      NRD_NV_TRANSIENT, "INSUFFICIENT_RESOURCE" },
    { 400, "{\"code\":\"CUDA_VERSION_INCOMPATIBLE\",\"message\":\"cuda\"}", NRD_NV_FINAL,
      "CUDA_VERSION_INCOMPATIBLE" },
    { 200,
      "{\"code\":400,\"reason\":\"VALIDATOR_PARAM\",\"message\":\"bad field\",\"metadata\":{}}",
      NRD_NV_FINAL, "VALIDATOR_PARAM" },
    { 200, "{\"code\":403,\"reason\":\"DE_BALANCE_NOT_ENOUGH\",\"message\":\"owed\"}",
      NRD_NV_ACCOUNT, "DE_BALANCE_NOT_ENOUGH" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct nrd_sim_fault fl = { .kind = NRD_SIM_STATUS,
                                .match = "create",
                                .status = cases[i].status,
                                .body = cases[i].body,
                                .count = 1 };
    nrd_sim_clear_faults(f.sim);
    nrd_sim_add_fault(f.sim, &fl);
    assert_int_equal(nrd_nv_create_instance(f.c, req, &id, &err), cases[i].rc);
    assert_null(id);
    assert_string_equal(err.code, cases[i].code);
  }
  /* Prepaid on delete; a 200 delete with an error body is not a delete. */
  struct nrd_sim_fault pre = {
    .kind = NRD_SIM_STATUS,
    .match = "delete",
    .status = 400,
    .count = 1,
    .body =
        "{\"code\":400,\"reason\":\"PREPAID_INSTANCE_NOT_SUPPORT_RELEASE\",\"message\":\"monthly\"}"
  };
  nrd_sim_clear_faults(f.sim);
  nrd_sim_add_fault(f.sim, &pre);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_PREPAID);
  pre.status = 200;
  nrd_sim_add_fault(f.sim, &pre);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_PREPAID);
  assert_int_equal(nrd_sim_count_by_name(f.sim, "node-1"), 1);
  cJSON_Delete(req);
  fix_stop(&f);
}

/* README prints the reason table: every row of the code's table is there
 * with its class, and README lists no reason the code does not know. */
static void test_readme_table(void **state)
{
  const char *dir = getenv("NRD_SOURCE_DIR");
  char path[1024];
  assert_non_null(dir);
  snprintf(path, sizeof path, "%s/README.md", dir);
  FILE *fp = fopen(path, "r");
  assert_non_null(fp);
  char line[512];
  size_t n, rows = 0;
  const struct nrd_nv_reason *t = nrd_nv_reasons(&n);
  bool *seen = calloc(n, sizeof *seen);
  bool in_table = false;
  while (fgets(line, sizeof line, fp)) {
    char reason[80], cls[40];
    if (strstr(line, "| reason | class |")) {
      in_table = true;
      continue;
    }
    if (in_table && !strchr(line, '|'))
      break;
    if (!in_table || sscanf(line, " | `%79[A-Z_]` | %39[a-z-] |", reason, cls) != 2)
      continue;
    const struct nrd_nv_reason *r = nrd_nv_reason_find(reason);
    if (!r)
      fail_msg("README lists %s, which the code's table does not know", reason);
    if (strcmp(cls, nrd_nv_class_name(r->cls)) != 0)
      fail_msg("README: %s is %s, the code says %s", reason, cls, nrd_nv_class_name(r->cls));
    seen[r - t] = true;
    rows++;
  }
  fclose(fp);
  for (size_t i = 0; i < n; i++) {
    if (!seen[i])
      fail_msg("README's reason table lacks %s", t[i].reason);
  }
  assert_int_equal(rows, n);
  free(seen);
}

static void test_retries(void **state)
{
  struct fix f;
  struct nrd_nv_error err;
  struct seen s = { 0 };
  const struct nrd_nv_instance_sink sink = { collect, count_page, &s };
  fix_start(&f, &keyed, NULL);

  /* 500 once, then success: two requests for the first page. */
  struct nrd_sim_fault e500 = {
    .kind = NRD_SIM_STATUS, .match = "/v1/products", .status = 500, .count = 1
  };
  nrd_sim_add_fault(f.sim, &e500);
  struct nrd_product *p;
  size_t n;
  assert_int_equal(nrd_nv_list_products(f.c, "RTX 4090", &p, &n, &err), NRD_NV_OK);
  nrd_products_free(p, n);
  assert_int_equal(nrd_sim_count(f.sim, "GET", "/v1/products"), 2);
  assert_true(nrd_metrics_novita_requests_total(NRD_EP_PRODUCTS) == 2.0);
  assert_int_equal(nrd_novita_calls(f.nv), 2);

  /* A transient 400 reason (Novita's way) is retried; a refusal is not. The
   * node case was once an invented CLUSTER_NODE_NOT_READY; Novita's own name
   * is NODE_STATUS. */
  struct nrd_sim_fault insuff = { .kind = NRD_SIM_STATUS,
                                  .match = "delete",
                                  .status = 400,
                                  .body = "{\"code\":\"MIGRATE_INSUFFICIENT_RESOURCE\","
                                          "\"message\":\"no capacity\"}",
                                  .count = 1 };
  nrd_sim_add_fault(f.sim, &insuff);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-3", &err), NRD_NV_OK);
  assert_int_equal(nrd_sim_count(f.sim, "POST", "/v1/gpu/instance/delete"), 2);
  struct nrd_sim_fault node = { .kind = NRD_SIM_STATUS,
                                .match = "delete",
                                .status = 400,
                                .body = "{\"code\":400,\"reason\":\"NODE_STATUS\","
                                        "\"message\":\"node not ready\",\"metadata\":{}}",
                                .count = 1 };
  nrd_sim_add_fault(f.sim, &node);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-4", &err), NRD_NV_OK);
  assert_int_equal(nrd_sim_count(f.sim, "POST", "/v1/gpu/instance/delete"), 4);
  struct nrd_sim_fault perm = { .kind = NRD_SIM_STATUS,
                                .match = "delete",
                                .status = 400,
                                .body = "{\"code\":\"INVALID_PARAMS\",\"message\":\"nope\"}",
                                .count = 1 };
  nrd_sim_add_fault(f.sim, &perm);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-5", &err), NRD_NV_FINAL);
  assert_string_equal(err.code, "INVALID_PARAMS");
  assert_string_equal(err.message, "nope");
  assert_int_equal(nrd_sim_count(f.sim, "POST", "/v1/gpu/instance/delete"), 5);

  /* Always 503: 1 + max_retry_attempts requests, then transient. */
  nrd_sim_clear_requests(f.sim);
  struct nrd_sim_fault e503 = { .kind = NRD_SIM_STATUS, .match = "instances", .status = 503 };
  nrd_sim_add_fault(f.sim, &e503);
  assert_int_equal(nrd_nv_list_instances(f.c, NULL, &sink, NULL, &err), NRD_NV_TRANSIENT);
  assert_int_equal(err.http_status, 503);
  assert_int_equal(nrd_sim_count(f.sim, "GET", "/v1/gpu/instances"), 4);
  nrd_sim_clear_faults(f.sim);

  /* 429 with Retry-After: 1 -> the retry waits at least a second. */
  struct nrd_sim_fault ra = {
    .kind = NRD_SIM_RETRY_AFTER, .match = "products", .retry_after = "1", .count = 1
  };
  nrd_sim_add_fault(f.sim, &ra);
  int64_t t0 = nrd_mono_ms();
  assert_int_equal(nrd_nv_list_products(f.c, "RTX 4090", &p, &n, &err), NRD_NV_OK);
  int64_t waited = nrd_mono_ms() - t0;
  nrd_products_free(p, n);
  assert_true(waited >= 1000);
  assert_true(waited < 10000);

  /* Retry-After as an HTTP date two seconds ahead (second resolution: >= 1 s). */
  char date[64];
  time_t when = time(NULL) + 2;
  struct tm tm;
  gmtime_r(&when, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  struct nrd_sim_fault rad = {
    .kind = NRD_SIM_RETRY_AFTER, .match = "products", .retry_after = date, .count = 1
  };
  nrd_sim_add_fault(f.sim, &rad);
  t0 = nrd_mono_ms();
  assert_int_equal(nrd_nv_list_products(f.c, "RTX 4090", &p, &n, &err), NRD_NV_OK);
  waited = nrd_mono_ms() - t0;
  nrd_products_free(p, n);
  assert_true(waited >= 900);
  assert_true(waited < 10000);
  fix_stop(&f);
}

static void test_deadline(void **state)
{
  struct fix f;
  struct nrd_nv_error err;
  fix_start(&f, &keyed, NULL);
  nrd_novita_conn_set_deadline(f.c, nrd_mono_ms() - 1);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_DEADLINE);
  assert_int_equal(nrd_sim_count(f.sim, NULL, "delete"), 0);

  /* A Retry-After beyond the deadline ends the call instead of sleeping. */
  nrd_novita_conn_set_deadline(f.c, nrd_mono_ms() + 500);
  struct nrd_sim_fault ra = {
    .kind = NRD_SIM_RETRY_AFTER, .match = "delete", .retry_after = "30", .count = 1
  };
  nrd_sim_add_fault(f.sim, &ra);
  int64_t t0 = nrd_mono_ms();
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_TRANSIENT);
  assert_true(nrd_mono_ms() - t0 < 2000);
  assert_int_equal(err.http_status, 429);
  nrd_novita_conn_set_deadline(f.c, 0);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_OK);
  fix_stop(&f);
}

struct hostile {
  enum nrd_sim_fault_kind kind;
  size_t size;
  unsigned delay_ms;
};

static void test_hostile_bodies(void **state)
{
  static const struct hostile cases[] = {
    { NRD_SIM_HTML, 0, 0 },        { NRD_SIM_TRUNCATED, 0, 0 },
    { NRD_SIM_MALFORMED, 0, 0 },   { NRD_SIM_OVERSIZED, 1 << 20, 0 },
    { NRD_SIM_DEEP, 100000, 0 },   { NRD_SIM_EMPTY, 0, 0 },
    { NRD_SIM_WRONG_TYPES, 0, 0 }, { NRD_SIM_DROP_FIELDS, 0, 0 },
    { NRD_SIM_SLOW_DRIP, 0, 200 }, { NRD_SIM_RESET, 0, 0 },
  };
  static const char *const targets[] = { "instances", "jobs", "products", "delete", "create" };
  struct fix f;
  struct nrd_novita_options o = { .api_key = PUBLIC_KEY,
                                  .page_size = 100,
                                  .request_timeout_ms = 600,
                                  .max_retry_attempts = 0,
                                  .max_response_bytes = 64 * 1024 };
  fix_start(&f, &keyed, &o);
  cJSON *req = create_request("hostile");

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
      struct nrd_sim_fault flt = { .kind = cases[i].kind,
                                   .match = targets[t],
                                   .size = cases[i].size,
                                   .delay_ms = cases[i].delay_ms,
                                   .count = 1 };
      struct nrd_nv_error err;
      enum nrd_nv_rc rc;
      nrd_sim_clear_faults(f.sim);
      nrd_sim_add_fault(f.sim, &flt);
      int64_t t0 = nrd_mono_ms();
      if (t == 0) {
        struct seen s = { 0 };
        const struct nrd_nv_instance_sink sink = { collect, count_page, &s };
        rc = nrd_nv_list_instances(f.c, NULL, &sink, NULL, &err);
        assert_false(s.leaked);
      } else if (t == 1) {
        struct nrd_job *jobs = NULL;
        size_t n = 0;
        rc = nrd_nv_list_jobs(f.c, "instanceMigrate", 0, 0, &jobs, &n, &err);
        nrd_jobs_free(jobs, n);
      } else if (t == 2) {
        struct nrd_product *p = NULL;
        size_t n = 0;
        rc = nrd_nv_list_products(f.c, "RTX", &p, &n, &err);
        nrd_products_free(p, n);
      } else if (t == 3) {
        rc = nrd_nv_delete_instance(f.c, "i-0", &err);
        if (rc == NRD_NV_NOT_FOUND)
          rc = NRD_NV_OK; /* an earlier round's faulted delete was applied */
      } else {
        char *id = NULL;
        rc = nrd_nv_create_instance(f.c, req, &id, &err);
        free(id);
      }
      int64_t took = nrd_mono_ms() - t0;
      print_message("fault %d on %s: %s (%s) in %lld ms\n", (int)cases[i].kind, targets[t],
                    nrd_nv_rc_name(rc), err.message, (long long)took);
      assert_true(took < 5000);
      /* Bodies a body-less answer may tolerate ({} for delete, dropped or
       * retyped fields in tolerant decoders) can be OK; the rest must fail. */
      bool may_pass =
          cases[i].kind == NRD_SIM_WRONG_TYPES || cases[i].kind == NRD_SIM_DROP_FIELDS || t == 3;
      if (!may_pass) {
        assert_int_not_equal(rc, NRD_NV_OK);
        assert_true(strlen(err.message) > 0);
      }
      if (t == 4 && rc != NRD_NV_OK)
        assert_true(rc == NRD_NV_AMBIGUOUS || rc == NRD_NV_FINAL);
    }
  }
  cJSON_Delete(req);
  fix_stop(&f);
}

static void test_no_key_in_errors_or_logs(void **state)
{
  struct fix f;
  struct nrd_nv_error err;
  FILE *log = tmpfile();
  assert_non_null(log);
  int fd = fileno(log);
  nrd_log_set_fd(fd);
  fix_start(&f, &keyed, NULL);
  struct nrd_sim_fault echo = { .kind = NRD_SIM_STATUS,
                                .match = "delete",
                                .status = 400,
                                .body = "{\"message\":\"bad token Bearer " PUBLIC_KEY
                                        " rejected\",\"code\":\"AUTH\"}" };
  nrd_sim_add_fault(f.sim, &echo);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_FINAL);
  assert_null(strstr(err.message, PUBLIC_KEY));
  assert_non_null(strstr(err.message, "***"));
  nrd_log_set_fd(1);

  char buf[8192];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  assert_true(n > 0);
  buf[n] = '\0';
  assert_non_null(strstr(buf, "novita request failed"));
  assert_null(strstr(buf, PUBLIC_KEY));
  fclose(log);
  fix_stop(&f);
}

static void test_circuit(void **state)
{
  struct fix f;
  struct nrd_nv_error err;
  struct nrd_novita_options o = { .api_key = PUBLIC_KEY,
                                  .page_size = 100,
                                  .request_timeout_ms = 2000,
                                  .max_retry_attempts = 1,
                                  .backoff_base_ms = 1,
                                  .backoff_cap_ms = 2,
                                  .circuit_failure_threshold = 3,
                                  .circuit_cooldown_ms = 300 };
  fix_start(&f, &keyed, &o);
  struct nrd_sim_fault e500 = { .kind = NRD_SIM_STATUS, .match = "delete", .status = 500 };
  nrd_sim_add_fault(f.sim, &e500);

  /* Three failed calls (each of two attempts) open it. */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(nrd_novita_circuit_state(f.nv), 0);
    assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_TRANSIENT);
  }
  assert_int_equal(nrd_novita_circuit_state(f.nv), 1);
  size_t sent = nrd_sim_count(f.sim, NULL, "delete");
  assert_int_equal(sent, 3 * 2); /* three calls of two attempts; then refused unsent */

  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_CIRCUIT_OPEN);
  struct nrd_product *p;
  size_t n;
  assert_int_equal(nrd_nv_list_products(f.c, "x", &p, &n, &err), NRD_NV_CIRCUIT_OPEN);
  assert_int_equal(nrd_sim_count(f.sim, NULL, "delete"), sent);
  assert_int_equal(nrd_sim_count(f.sim, NULL, "products"), 0);

  /* After the cooldown: half-open; a failing probe opens it again at once. */
  nrd_sleep_ms(350);
  assert_int_equal(nrd_novita_circuit_state(f.nv), 2);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_TRANSIENT);
  assert_int_equal(nrd_sim_count(f.sim, NULL, "delete"), sent + 1); /* the probe: no retry */
  assert_int_equal(nrd_novita_circuit_state(f.nv), 1);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_CIRCUIT_OPEN);

  /* A succeeding probe closes it. */
  nrd_sim_clear_faults(f.sim);
  nrd_sleep_ms(350);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-1", &err), NRD_NV_OK);
  assert_int_equal(nrd_novita_circuit_state(f.nv), 0);

  /* Refusals (4xx) never open it. */
  for (int i = 0; i < 6; i++)
    assert_int_equal(nrd_nv_delete_instance(f.c, "missing", &err), NRD_NV_NOT_FOUND);
  assert_int_equal(nrd_novita_circuit_state(f.nv), 0);
  fix_stop(&f);
}

static void test_token_bucket(void **state)
{
  struct fix f;
  struct nrd_nv_error err;
  struct nrd_novita_options o = {
    .api_key = PUBLIC_KEY, .page_size = 100, .request_timeout_ms = 5000, .rate_limit_rps = 10
  };
  fix_start(&f, &keyed, &o);
  int64_t t0 = nrd_mono_ms();
  for (int i = 0; i < 20; i++) {
    struct nrd_product *p;
    size_t n;
    assert_int_equal(nrd_nv_list_products(f.c, "x", &p, &n, &err), NRD_NV_OK);
    nrd_products_free(p, n);
  }
  int64_t took = nrd_mono_ms() - t0;
  /* Burst of 5, then 15 more at 10 per second: about 1.5 s. */
  assert_true(took >= 1300);
  assert_true(took < 10000);
  assert_int_equal(nrd_sim_count(f.sim, "GET", "/v1/products"), 20);

  /* A deadline the bucket cannot meet ends the call unsent. */
  nrd_novita_conn_set_deadline(f.c, nrd_mono_ms() + 20);
  int refused = 0;
  for (int i = 0; i < 10; i++) {
    struct nrd_product *p;
    size_t n;
    enum nrd_nv_rc rc = nrd_nv_list_products(f.c, "x", &p, &n, &err);
    nrd_products_free(p, n);
    refused += rc == NRD_NV_DEADLINE;
  }
  assert_true(refused > 0);
  fix_stop(&f);
}

struct abort_call {
  struct nrd_novita_conn *c;
  bool create;
  enum nrd_nv_rc rc;
  int64_t took_ms;
};

static void *abort_call_main(void *arg)
{
  struct abort_call *a = arg;
  struct nrd_nv_error err;
  int64_t t0 = nrd_mono_ms();
  if (a->create) {
    cJSON *req = create_request("abort-create");
    char *id = NULL;
    a->rc = nrd_nv_create_instance(a->c, req, &id, &err);
    free(id);
    cJSON_Delete(req);
  } else {
    a->rc = nrd_nv_delete_instance(a->c, "i-2", &err);
  }
  a->took_ms = nrd_mono_ms() - t0;
  return NULL;
}

/* Shutdown: transfers in flight end quickly (a create as ambiguous), calls
 * sleeping in backoff wake up, and nothing new is sent. */
static void test_abort(void **state)
{
  struct fix f;
  struct nrd_novita_options o = { .api_key = PUBLIC_KEY,
                                  .request_timeout_ms = 20000,
                                  .max_retry_attempts = 3 };
  fix_start(&f, &keyed, &o);
  struct nrd_novita_conn *c2 = nrd_novita_conn_create(f.nv);
  struct nrd_sim_fault slow = { .kind = NRD_SIM_DELAY, .match = "create", .delay_ms = 8000 };
  struct nrd_sim_fault ra = { .kind = NRD_SIM_RETRY_AFTER, .match = "delete", .retry_after = "60" };
  nrd_sim_add_fault(f.sim, &slow);
  nrd_sim_add_fault(f.sim, &ra);

  struct abort_call create = { .c = f.c, .create = true }, del = { .c = c2 };
  pthread_t t1, t2;
  /* The create is in flight before the delete goes: the delete's 429 and its
   * Retry-After hold back every call not yet sent, the create too. */
  assert_int_equal(pthread_create(&t1, NULL, abort_call_main, &create), 0);
  int64_t until = nrd_mono_ms() + 10000;
  while (nrd_sim_count(f.sim, "POST", "/create") < 1 && nrd_mono_ms() < until)
    nrd_sleep_ms(10);
  assert_int_equal(pthread_create(&t2, NULL, abort_call_main, &del), 0);
  while (nrd_sim_count(f.sim, "POST", "/delete") < 1 && nrd_mono_ms() < until)
    nrd_sleep_ms(10);
  nrd_sleep_ms(100);
  nrd_novita_abort(f.nv);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  assert_int_equal(create.rc, NRD_NV_AMBIGUOUS);
  assert_true(create.took_ms < 4000);
  assert_int_equal(del.rc, NRD_NV_TRANSIENT);
  assert_true(del.took_ms < 4000);

  struct nrd_nv_error err;
  size_t before = nrd_sim_count(f.sim, NULL, NULL);
  assert_int_equal(nrd_nv_delete_instance(f.c, "i-3", &err), NRD_NV_DEADLINE);
  assert_int_equal(nrd_sim_count(f.sim, NULL, NULL), before);
  nrd_novita_abort(NULL);
  nrd_novita_conn_destroy(c2);
  fix_stop(&f);
}

static int count_items(void *ud, struct nrd_instance *items, size_t n)
{
  *(size_t *)ud += n;
  return 0;
}

/* 100k instances: the id set and the paging scale. Page base 0 makes the
 * client walk every page, then come back for page 0. */
static void test_large_fleet(void **state)
{
  enum { BIG = 100000 };
  char err[256] = "", base[128];
  struct nrd_sim_options so = { .page_cap = 1000, .page_base = 0, .page_base_set = true };
  struct nrd_sim *sim = nrd_sim_start(&so, err, sizeof err);
  assert_non_null(sim);
  nrd_sim_base_url(sim, base);
  cJSON *root = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(root, "instances");
  for (int i = 0; i < BIG; i++) {
    char id[32];
    snprintf(id, sizeof id, "i-%d", i);
    cJSON *o = cJSON_CreateObject();
    nrd_json_add_str(o, "id", id);
    cJSON_AddItemToArray(arr, o);
  }
  char *text = nrd_json_print(root);
  cJSON_Delete(root);
  assert_int_equal(nrd_sim_load(sim, text), 0);
  free(text);

  struct nrd_novita_options o = {
    .base_url = base, .api_key = PUBLIC_KEY, .page_size = 1000, .request_timeout_ms = 30000
  };
  struct nrd_novita *nv = nrd_novita_create(&o);
  struct nrd_novita_conn *c = nrd_novita_conn_create(nv);
  size_t delivered = 0, seen = 0;
  struct nrd_nv_error e;
  assert_int_equal(
      nrd_nv_list_instances(
          c, NULL, &(struct nrd_nv_instance_sink){ count_items, NULL, &delivered }, &seen, &e),
      NRD_NV_OK);
  assert_int_equal(delivered, BIG);
  assert_int_equal(seen, BIG);
  /* Pages 1..99, the empty page 100, then page 0. */
  assert_int_equal(nrd_novita_calls(nv), 101);
  nrd_novita_conn_destroy(c);
  nrd_novita_destroy(nv);
  nrd_sim_stop(sim);
}

int main(void)
{
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_paging_base1),
    cmocka_unit_test(test_paging_base0),
    cmocka_unit_test(test_paging_base0_internal_jobs),
    cmocka_unit_test(test_paging_base1_internal_jobs),
    cmocka_unit_test(test_wrong_key_is_final),
    cmocka_unit_test(test_delete),
    cmocka_unit_test(test_create_not_retried),
    cmocka_unit_test(test_retries),
    cmocka_unit_test(test_reasons),
    cmocka_unit_test(test_readme_table),
    cmocka_unit_test(test_deadline),
    cmocka_unit_test(test_hostile_bodies),
    cmocka_unit_test(test_no_key_in_errors_or_logs),
    cmocka_unit_test(test_circuit),
    cmocka_unit_test(test_token_bucket),
    cmocka_unit_test(test_abort),
    cmocka_unit_test(test_large_fleet),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
