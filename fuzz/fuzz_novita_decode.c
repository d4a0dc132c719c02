/* The Novita response decoders on arbitrary bytes. Every decoder sees every
 * input (instances, jobs, products and clusters read different keys of one object, so
 * one seed can exercise all of them), and the decoded structs are checked:
 * the raw JSON kept for a snapshot holds no password or connect field, list
 * counts agree with their flags, error codes are clean identifiers and
 * messages carry no control characters. */

#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include "fuzz_util.h"
#include "nrd/json.h"
#include "nrd/model.h"
#include "nrd/novita.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int secret_key(const char *k)
{
  if (strncasecmp(k, "connect", 7) == 0)
    return 1;
  for (const char *p = k; *p; p++) {
    if (strncasecmp(p, "password", 8) == 0)
      return 1;
  }
  return 0;
}

static void check_instance(const struct nrd_instance *in)
{
  FUZZ_CHECK(in->ports_present || in->n_ports == 0, "ports without the list");
  FUZZ_CHECK(in->envs_present || in->n_envs == 0, "envs without the list");
  FUZZ_CHECK(in->mounts_present || in->n_mounts == 0, "mounts without the list");
  FUZZ_CHECK(in->created_at >= 0, "negative createdAt %lld", (long long)in->created_at);
  if (in->raw_json) {
    cJSON *raw = nrd_json_parse(in->raw_json, strlen(in->raw_json));
    FUZZ_CHECK(cJSON_IsObject(raw), "raw JSON does not parse back: %.200s", in->raw_json);
    FUZZ_CHECK(!fuzz_any_key(raw, secret_key), "raw JSON keeps a secret: %.300s", in->raw_json);
    cJSON_Delete(raw);
  }
}

static void decode_instances(const char *body, size_t len)
{
  struct nrd_instance *items = NULL;
  size_t n = 99;
  int64_t total = 99;

  if (nrd_nv_decode_instances(body, len, &items, &n, &total) != 0) {
    FUZZ_CHECK(!items && n == 0 && total == -1, "failure left results");
    return;
  }
  FUZZ_CHECK(items != NULL, "success without an array");
  FUZZ_CHECK(total >= -1, "total %lld", (long long)total);
  for (size_t i = 0; i < n; i++) {
    check_instance(&items[i]);
    nrd_instance_cleanup(&items[i]);
  }
  free(items);
}

static void decode_jobs(const char *body, size_t len)
{
  struct nrd_job *jobs = NULL;
  size_t n = 99;
  int64_t total = 99;

  if (nrd_nv_decode_jobs(body, len, &jobs, &n, &total) != 0) {
    FUZZ_CHECK(!jobs && n == 0 && total == -1, "failure left results");
    return;
  }
  FUZZ_CHECK(jobs != NULL, "success without an array");
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(jobs[i].created_at >= 0, "negative createdAt");
    FUZZ_CHECK(!jobs[i].error || jobs[i].error[0], "empty error kept");
  }
  nrd_jobs_free(jobs, n);
}

static void decode_products(const char *body, size_t len)
{
  struct nrd_product *p = NULL;
  size_t n = 99;

  if (nrd_nv_decode_products(body, len, &p, &n) != 0) {
    FUZZ_CHECK(!p && n == 0, "failure left results");
    return;
  }
  FUZZ_CHECK(p != NULL, "success without an array");
  for (size_t i = 0; i < n; i++) {
    FUZZ_CHECK(p[i].has_spot_price || p[i].spot_price == 0.0, "price without a price");
    for (size_t r = 0; r < p[i].n_regions; r++)
      FUZZ_CHECK(p[i].regions[r] != NULL, "NULL region %zu", r);
  }
  nrd_products_free(p, n);
}

static void decode_clusters(const char *body, size_t len)
{
  struct nrd_cluster *c = NULL;
  size_t n = 99;

  if (nrd_nv_decode_clusters(body, len, &c, &n) != 0) {
    FUZZ_CHECK(!c && n == 0, "failure left results");
    return;
  }
  FUZZ_CHECK(c != NULL, "success without an array");
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK(c[i].id && c[i].id[0], "cluster %zu without an id", i);
  nrd_clusters_free(c, n);
}

static void decode_error(const char *body, size_t len, int status)
{
  struct nrd_nv_error err;

  nrd_nv_decode_error(body, len, status, &err);
  FUZZ_CHECK(err.http_status == status, "status %d", err.http_status);
  FUZZ_CHECK(memchr(err.code, '\0', sizeof err.code), "code not terminated");
  FUZZ_CHECK(memchr(err.message, '\0', sizeof err.message), "message not terminated");
  for (const char *c = err.code; *c; c++)
    FUZZ_CHECK(*c > 0x20 && *c < 0x7f && *c != '"' && *c != '\\', "code byte 0x%02x",
               (unsigned char)*c);
  for (const char *m = err.message; *m; m++)
    FUZZ_CHECK((unsigned char)*m >= 0x20 && *m != 0x7f, "message byte 0x%02x", (unsigned char)*m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *body = (const char *)data;

  decode_instances(body, size);
  decode_jobs(body, size);
  decode_products(body, size);
  decode_clusters(body, size);
  decode_error(body, size, 400);
  decode_error(size ? body : NULL, size, 0);
  return 0;
}
