/* Decoders for Novita's answers (instance pages: instances.c). Every input is
 * untrusted: each field is type-checked where it is read, anything of the
 * wrong type counts as absent, non-object list items are skipped, and nothing
 * here can crash on any body. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nrd/json.h"
#include "nrd/novita.h"
#include "transport.h"

/* Timestamps above this are taken as milliseconds (seconds would be past
 * the year 5000), and brought back to seconds. */
#define NV_MS_THRESHOLD 100000000000LL

static char *dup_str(const cJSON *obj, const char *key)
{
  return nrd_xstrdup(nrd_json_str(obj, key));
}

static int64_t epoch_seconds(const cJSON *obj, const char *key)
{
  int64_t v = 0;
  if (!nrd_json_i64(obj, key, &v) || v < 0)
    return 0;
  return v > NV_MS_THRESHOLD ? v / 1000 : v;
}

/* The list under key: *arr set and true for an array; true with *arr NULL
 * for null (no items); false when the key is missing or of another type. */
static bool get_list(const cJSON *root, const char *key, const cJSON **arr)
{
  const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
  *arr = NULL;
  if (cJSON_IsNull(it))
    return true;
  if (!cJSON_IsArray(it))
    return false;
  *arr = it;
  return true;
}

/* Objects in arr (NULL: none). */
static size_t count_objects(const cJSON *arr)
{
  size_t n = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    if (cJSON_IsObject(it))
      n++;
  }
  return n;
}

/* `total` when it is a non-negative integer, else -1 (unknown). */
static int64_t read_total(const cJSON *root)
{
  int64_t t;
  if (!nrd_json_i64(root, "total", &t) || t < 0)
    return -1;
  return t;
}

/* ---- jobs ---- */

/* A job's five strings in one allocation: a run lists every migration job
 * of the look-back window (thousands), and one block each instead of five
 * lowers the sync's peak RSS (BENCHMARKS.md, "Figures behind the code"). */
static void decode_job(const cJSON *obj, struct nrd_job *out)
{
  char *id = nrd_json_scalar_text(obj, "Id");
  if (!id)
    id = nrd_json_scalar_text(obj, "id");
  char *instance_id = nrd_json_scalar_text(obj, "instanceId");
  const char *type = nrd_json_str(obj, "type"), *state = NULL, *error = NULL;
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(obj, "state");
  if (cJSON_IsObject(st)) {
    state = nrd_json_str(st, "state");
    error = nrd_json_str_nonempty(st, "error");
    if (!error)
      error = nrd_json_str_nonempty(st, "message");
  } else {
    state = nrd_json_str(obj, "state"); /* tolerated: a bare state string */
  }
  if (!error)
    error = nrd_json_str_nonempty(obj, "errorMessage");

  const char *src[5] = { id, type, instance_id, state, error };
  char **dst[5] = { &out->id, &out->type, &out->instance_id, &out->state, &out->error };
  size_t size = 1;
  for (int i = 0; i < 5; i++)
    size += src[i] ? strlen(src[i]) + 1 : 0;
  memset(out, 0, sizeof *out);
  char *block = nrd_xmalloc(size), *p = block;
  for (int i = 0; i < 5; i++) {
    if (!src[i])
      continue;
    size_t n = strlen(src[i]) + 1;
    memcpy(p, src[i], n);
    *dst[i] = p;
    p += n;
  }
  out->strings = block;
  out->created_at = epoch_seconds(obj, "createdAt");
  free(id);
  free(instance_id);
}

/* Reads one item of a list into out (zeroed); false leaves it out (out is
 * left zeroed). */
typedef bool (*list_item_fn)(const cJSON *obj, void *out);

/* The objects of the body's list at key, each read by fn into an array of
 * item_size slots (*items: heap, caller frees); *total (when not NULL) gets
 * the body's total (-1: none). 0, or -1 when the body is not an object
 * with that list. */
static int decode_list(const char *body, size_t len, const char *key, size_t item_size,
                       list_item_fn fn, void **items, size_t *n, int64_t *total)
{
  int rc = -1;
  const cJSON *arr, *it;
  char *slots;
  cJSON *root = nrd_json_parse(body, len);
  *items = NULL;
  *n = 0;
  if (total)
    *total = -1;
  if (!cJSON_IsObject(root) || !get_list(root, key, &arr))
    goto out;
  slots = nrd_xcalloc(count_objects(arr) + 1, item_size);
  cJSON_ArrayForEach(it, arr) {
    if (cJSON_IsObject(it) && fn(it, slots + *n * item_size))
      (*n)++;
  }
  *items = slots;
  if (total)
    *total = read_total(root);
  rc = 0;
out:
  cJSON_Delete(root);
  return rc;
}

static bool job_item(const cJSON *obj, void *out)
{
  decode_job(obj, out);
  return true;
}

int nrd_nv_decode_jobs(const char *body, size_t len, struct nrd_job **jobs, size_t *n,
                       int64_t *total)
{
  void *items;
  int rc = decode_list(body, len, "jobs", sizeof **jobs, job_item, &items, n, total);
  *jobs = items;
  return rc;
}

/* ---- products ---- */

static void decode_product(const cJSON *obj, struct nrd_product *out)
{
  memset(out, 0, sizeof *out);
  out->id = nrd_json_scalar_text(obj, "id");
  out->name = dup_str(obj, "name");
  const cJSON *regions = cJSON_GetObjectItemCaseSensitive(obj, "regions");
  if (cJSON_IsArray(regions)) {
    out->regions = nrd_xcalloc((size_t)cJSON_GetArraySize(regions) + 1, sizeof *out->regions);
    const cJSON *it;
    cJSON_ArrayForEach(it, regions) {
      if (cJSON_IsString(it) && it->valuestring)
        out->regions[out->n_regions++] = nrd_xstrdup(it->valuestring);
    }
  }
  bool avail = false;
  out->available = nrd_json_bool(obj, "availableDeploy", &avail) && avail;
  const char *inv = nrd_json_str(obj, "inventoryState");
  out->no_inventory = inv && strcasecmp(inv, "none") == 0;
  out->has_spot_price = nrd_json_double(obj, "spotPrice", &out->spot_price);
  if (!out->has_spot_price)
    out->spot_price = 0;
}

static bool product_item(const cJSON *obj, void *out)
{
  decode_product(obj, out);
  return true;
}

int nrd_nv_decode_products(const char *body, size_t len, struct nrd_product **p, size_t *n)
{
  void *items;
  int rc = decode_list(body, len, "data", sizeof **p, product_item, &items, n, NULL);
  *p = items;
  return rc;
}

/* ---- clusters ---- */

/* A cluster without an id cannot be placed in: left out. */
static bool cluster_item(const cJSON *obj, void *out)
{
  struct nrd_cluster *cl = out;
  cl->id = nrd_json_scalar_text(obj, "id");
  cl->name = dup_str(obj, "name");
  bool ns = false;
  cl->network_storage = nrd_json_bool(obj, "supportNetworkStorage", &ns) && ns;
  if (!cl->id || !*cl->id) {
    free(cl->id);
    free(cl->name);
    memset(cl, 0, sizeof *cl);
    return false;
  }
  return true;
}

int nrd_nv_decode_clusters(const char *body, size_t len, struct nrd_cluster **c, size_t *n)
{
  void *items;
  int rc = decode_list(body, len, "data", sizeof **c, cluster_item, &items, n, NULL);
  *c = items;
  return rc;
}

void nrd_clusters_free(struct nrd_cluster *c, size_t n)
{
  for (size_t i = 0; c && i < n; i++) {
    free(c[i].id);
    free(c[i].name);
  }
  free(c);
}

void nrd_products_free(struct nrd_product *p, size_t n)
{
  for (size_t i = 0; p && i < n; i++)
    nrd_product_cleanup(&p[i]);
  free(p);
}

void nrd_jobs_free(struct nrd_job *jobs, size_t n)
{
  for (size_t i = 0; jobs && i < n; i++)
    nrd_job_cleanup(&jobs[i]);
  free(jobs);
}

/* ---- error bodies ---- */

/* The first string at one of keys in obj that holds a letter (a code such as
 * "RESOURCE_NOT_FOUND" rather than "400"). */
static const char *first_word(const cJSON *obj, const char *const *keys, size_t nkeys)
{
  for (size_t i = 0; i < nkeys; i++) {
    const char *s = nrd_json_str(obj, keys[i]);
    for (const char *p = s; p && *p; p++) {
      if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        return s;
    }
  }
  return NULL;
}

static const char *first_nonempty(const cJSON *obj, const char *const *keys, size_t nkeys)
{
  for (size_t i = 0; i < nkeys; i++) {
    const char *s = nrd_json_str_nonempty(obj, keys[i]);
    if (s)
      return s;
  }
  return NULL;
}

/* A name such as BALANCE_NOT_ENOUGH: upper-case letters, digits, '_'. */
static bool is_name(const char *v)
{
  if (!v || !(*v >= 'A' && *v <= 'Z'))
    return false;
  for (; *v; v++) {
    if (!((*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') || *v == '_'))
      return false;
  }
  return true;
}

/* The body's reason: `reason`, then a string `code`, at the top level then
 * under `error`; the first that the reason table knows, else the first that
 * is shaped as a name (an echo of our request is not), else the first. */
static const char *pick_reason(const cJSON *root, const cJSON *inner)
{
  static const char *const keys[] = { "reason", "code" };
  const char *first = NULL, *named = NULL;
  const cJSON *objs[2] = { root, inner };
  for (size_t o = 0; o < 2; o++) {
    for (size_t k = 0; k < 2; k++) {
      const char *v = first_word(objs[o], &keys[k], 1);
      if (v && nrd_nv_reason_find(v))
        return v;
      if (v && !named && is_name(v))
        named = v;
      if (v && !first)
        first = v;
    }
  }
  return named ? named : first;
}

void nrd_nv_decode_error(const char *body, size_t len, int http_status, struct nrd_nv_error *err)
{
  static const char *const msg_keys[] = { "message", "error", "msg", "reason" };
  memset(err, 0, sizeof *err);
  if (!body || len == 0) {
    nrd_nv_set_error(err, http_status, NULL, "empty error body (HTTP %d)", http_status);
    return;
  }
  cJSON *root = nrd_json_parse(body, len);
  if (!cJSON_IsObject(root)) {
    nrd_nv_set_error(err, http_status, NULL, "%s error body (HTTP %d)",
                     root ? "unrecognised" : "non-JSON", http_status);
    cJSON_Delete(root);
    return;
  }
  const cJSON *inner = cJSON_GetObjectItemCaseSensitive(root, "error");
  if (!cJSON_IsObject(inner))
    inner = NULL;

  /* Novita's `reason` first, then a string `code`; either one that the
   * reason table knows wins over one it does not. */
  const char *code = pick_reason(root, inner);
  char *numeric = code ? NULL : nrd_json_scalar_text(root, "code");
  const char *msg = first_nonempty(root, msg_keys, 4);
  if (!msg)
    msg = first_nonempty(inner, msg_keys, 4);

  /* Codes are identifiers: keep printable ASCII without quotes or spaces. */
  char clean[sizeof err->code] = "";
  size_t k = 0;
  for (const char *p = code ? code : numeric; p && *p && k + 1 < sizeof clean; p++) {
    if (*p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
      clean[k++] = *p;
  }
  clean[k] = '\0';

  if (msg)
    nrd_nv_set_error(err, http_status, clean, "%s", msg);
  else if (*clean)
    nrd_nv_set_error(err, http_status, clean, "HTTP %d (%s)", http_status, clean);
  else
    nrd_nv_set_error(err, http_status, clean, "error body without a message (HTTP %d)",
                     http_status);
  free(numeric);
  cJSON_Delete(root);
}
