/* The instance-page reader (src/novita/instances.c, one pass, no tree)
 * against a plain cJSON decoder written here: parse the page into a tree,
 * read each field where it is, cut the secrets out of a copy of the tree and
 * print it. Every input goes through both. When the reader accepts a page,
 * the reference must accept it too and the two must agree: the same
 * instances in the same order, every field, the list flags and items, total,
 * and the raw JSON (compared as printed trees) with the same secrets cut.
 * The reader may refuse a page cJSON takes (it is stricter on \u escapes),
 * never the other way round. Anything else aborts. */

#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#include "fuzz_util.h"
#include "nrd/json.h"
#include "nrd/model.h"
#include "nrd/novita.h"
#include "nrd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NV_MS_THRESHOLD 100000000000LL /* as the decoders: ms above this */

/* ---- the reference: slow and obvious ---- */

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

/* Removes every member whose key is a secret, at any depth. */
static void cut_secrets(cJSON *node)
{
  cJSON *it = node ? node->child : NULL;
  while (it) {
    cJSON *next = it->next;
    if (cJSON_IsObject(node) && it->string && secret_key(it->string))
      cJSON_Delete(cJSON_DetachItemViaPointer(node, it));
    else
      cut_secrets(it);
    it = next;
  }
}

static char *ref_str(const cJSON *obj, const char *key)
{
  const char *s = nrd_json_str(obj, key);
  return s ? nrd_xstrdup(s) : NULL;
}

/* A list of objects under key: *present when it is an array; each object
 * item is read by fill into an elem-sized slot. */
static void *ref_list(const cJSON *obj, const char *key, size_t elem, bool *present, size_t *n,
                      void (*fill)(const cJSON *item, void *slot))
{
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
  const cJSON *it;
  *n = 0;
  *present = cJSON_IsArray(arr);
  if (!*present)
    return NULL;
  char *items = nrd_xcalloc((size_t)cJSON_GetArraySize(arr) + 1, elem);
  cJSON_ArrayForEach(it, arr) {
    if (cJSON_IsObject(it))
      fill(it, items + (*n)++ * elem);
  }
  return items;
}

static void fill_port(const cJSON *o, void *slot)
{
  struct nrd_port *p = slot;
  p->port = nrd_json_scalar_text(o, "port");
  p->type = ref_str(o, "type");
}

static void fill_env(const cJSON *o, void *slot)
{
  struct nrd_env *e = slot;
  e->key = ref_str(o, "key");
  e->value = nrd_json_scalar_text(o, "value");
}

static void fill_mount(const cJSON *o, void *slot)
{
  struct nrd_mount *m = slot;
  m->type = ref_str(o, "type");
  m->id = nrd_json_scalar_text(o, "id");
  m->mount_path = ref_str(o, "mountPath");
}

static void fill_tool(const cJSON *o, void *slot)
{
  struct nrd_tool *t = slot;
  t->name = ref_str(o, "name");
  t->port = nrd_json_scalar_text(o, "port");
  t->type = ref_str(o, "type");
}

static void ref_instance(const cJSON *o, struct nrd_instance *in)
{
  int64_t v;
  memset(in, 0, sizeof *in);
  in->id = nrd_json_scalar_text(o, "id");
  in->name = ref_str(o, "name");
  in->status = ref_str(o, "status");
  in->cluster_id = nrd_json_scalar_text(o, "clusterId");
  in->cluster_name = ref_str(o, "clusterName");
  in->product_id = nrd_json_scalar_text(o, "productId");
  in->product_name = ref_str(o, "productName");
  in->image_url = ref_str(o, "imageUrl");
  in->image_auth_id = nrd_json_scalar_text(o, "imageAuthId");
  in->command = ref_str(o, "command");
  in->gpu_num = nrd_json_scalar_text(o, "gpuNum");
  in->rootfs_size = nrd_json_scalar_text(o, "rootfsSize");
  in->kind = ref_str(o, "kind");
  in->billing_mode = ref_str(o, "billingMode");
  in->entrypoint = ref_str(o, "entrypoint");
  in->min_cuda_version = ref_str(o, "minCudaVersion");
  const cJSON *net = cJSON_GetObjectItemCaseSensitive(o, "network");
  if (cJSON_IsObject(net))
    in->network_id = nrd_json_scalar_text(net, "id");
  if (nrd_json_i64(o, "createdAt", &v) && v >= 0)
    in->created_at = v > NV_MS_THRESHOLD ? v / 1000 : v;
  in->ports =
      ref_list(o, "portMappings", sizeof *in->ports, &in->ports_present, &in->n_ports, fill_port);
  in->envs = ref_list(o, "envs", sizeof *in->envs, &in->envs_present, &in->n_envs, fill_env);
  in->mounts = ref_list(o, "volumeMounts", sizeof *in->mounts, &in->mounts_present, &in->n_mounts,
                        fill_mount);
  in->tools = ref_list(o, "tools", sizeof *in->tools, &in->tools_present, &in->n_tools, fill_tool);
  cJSON *copy = cJSON_Duplicate(o, 1);
  FUZZ_CHECK(copy != NULL, "out of memory");
  cut_secrets(copy);
  in->raw_json = nrd_json_print(copy);
  cJSON_Delete(copy);
}

/* The page as the reader should read it: 0, or -1 when unusable. */
static int ref_page(const char *body, size_t len, struct nrd_instance **items, size_t *n,
                    int64_t *total)
{
  cJSON *root = nrd_json_parse(body, len);
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "instances");
  const cJSON *it;
  *items = NULL;
  *n = 0;
  *total = -1;
  if (!cJSON_IsObject(root) || !(cJSON_IsArray(arr) || cJSON_IsNull(arr))) {
    cJSON_Delete(root);
    return -1;
  }
  *items = nrd_xcalloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof **items);
  cJSON_ArrayForEach(it, arr) {
    if (cJSON_IsObject(it))
      ref_instance(it, &(*items)[(*n)++]);
  }
  int64_t t;
  if (nrd_json_i64(root, "total", &t) && t >= 0)
    *total = t;
  cJSON_Delete(root);
  return 0;
}

/* ---- the comparison ---- */

static void same_str(const char *what, size_t i, const char *fast, const char *ref)
{
  FUZZ_CHECK((fast == NULL) == (ref == NULL),
             "instance %zu %s: reader %s%.100s%s, cJSON %s%.100s%s", i, what, fast ? "\"" : "",
             fast ? fast : "NULL", fast ? "\"" : "", ref ? "\"" : "", ref ? ref : "NULL",
             ref ? "\"" : "");
  FUZZ_CHECK(!fast || strcmp(fast, ref) == 0,
             "instance %zu %s: reader \"%.100s\", cJSON \"%.100s\"", i, what, fast, ref);
}

/* Both raw JSON texts parse, and print the same once parsed. */
static void same_raw(size_t i, const char *fast, const char *ref)
{
  FUZZ_CHECK(fast && ref, "instance %zu: raw JSON missing", i);
  cJSON *a = nrd_json_parse(fast, strlen(fast));
  FUZZ_CHECK(cJSON_IsObject(a), "instance %zu: the reader's raw JSON does not parse: %.300s", i,
             fast);
  FUZZ_CHECK(!fuzz_any_key(a, secret_key), "instance %zu: a secret kept: %.300s", i, fast);
  char *pa = nrd_json_print(a);
  FUZZ_CHECK(strcmp(pa, ref) == 0, "instance %zu raw JSON:\nreader %.400s\ncJSON  %.400s", i, pa,
             ref);
  free(pa);
  cJSON_Delete(a);
}

#define SAME(field) same_str(#field, i, f->field, r->field)

static void same_lists(size_t i, const struct nrd_instance *f, const struct nrd_instance *r)
{
  FUZZ_CHECK(f->ports_present == r->ports_present && f->n_ports == r->n_ports,
             "instance %zu ports: %d/%zu vs %d/%zu", i, f->ports_present, f->n_ports,
             r->ports_present, r->n_ports);
  FUZZ_CHECK(f->envs_present == r->envs_present && f->n_envs == r->n_envs,
             "instance %zu envs: %d/%zu vs %d/%zu", i, f->envs_present, f->n_envs, r->envs_present,
             r->n_envs);
  FUZZ_CHECK(f->mounts_present == r->mounts_present && f->n_mounts == r->n_mounts,
             "instance %zu mounts: %d/%zu vs %d/%zu", i, f->mounts_present, f->n_mounts,
             r->mounts_present, r->n_mounts);
  FUZZ_CHECK(f->tools_present == r->tools_present && f->n_tools == r->n_tools,
             "instance %zu tools: %d/%zu vs %d/%zu", i, f->tools_present, f->n_tools,
             r->tools_present, r->n_tools);
  for (size_t k = 0; k < f->n_ports; k++) {
    SAME(ports[k].port);
    SAME(ports[k].type);
  }
  for (size_t k = 0; k < f->n_envs; k++) {
    SAME(envs[k].key);
    SAME(envs[k].value);
  }
  for (size_t k = 0; k < f->n_mounts; k++) {
    SAME(mounts[k].type);
    SAME(mounts[k].id);
    SAME(mounts[k].mount_path);
  }
  for (size_t k = 0; k < f->n_tools; k++) {
    SAME(tools[k].name);
    SAME(tools[k].port);
    SAME(tools[k].type);
  }
}

static void same_instance(size_t i, const struct nrd_instance *f, const struct nrd_instance *r)
{
  SAME(id);
  SAME(name);
  SAME(status);
  SAME(cluster_id);
  SAME(cluster_name);
  SAME(product_id);
  SAME(product_name);
  SAME(image_url);
  SAME(image_auth_id);
  SAME(command);
  SAME(gpu_num);
  SAME(rootfs_size);
  SAME(kind);
  SAME(billing_mode);
  SAME(entrypoint);
  SAME(network_id);
  SAME(min_cuda_version);
  FUZZ_CHECK(f->created_at == r->created_at, "instance %zu createdAt: %lld vs %lld", i,
             (long long)f->created_at, (long long)r->created_at);
  same_lists(i, f, r);
  same_raw(i, f->raw_json, r->raw_json);
}

static void free_all(struct nrd_instance *items, size_t n)
{
  for (size_t i = 0; i < n; i++)
    nrd_instance_cleanup(&items[i]);
  free(items);
}

/* The same page in runs of 3: the same instances, in order. */
struct runs {
  const struct nrd_instance *ref;
  size_t n_ref, seen;
};

static int on_run(void *ud, struct nrd_instance *items, size_t n)
{
  struct runs *r = ud;
  FUZZ_CHECK(n >= 1 && n <= 3, "a run of %zu", n);
  for (size_t k = 0; k < n; k++, r->seen++) {
    FUZZ_CHECK(r->seen < r->n_ref, "more instances in runs than cJSON reads");
    same_instance(r->seen, &items[k], &r->ref[r->seen]);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *body = (const char *)data;
  struct nrd_instance *fast = NULL, *ref = NULL;
  size_t n_fast = 0, n_ref = 0;
  int64_t t_fast = -1, t_ref = -1;

  int rc_fast = nrd_nv_decode_instances(body, size, &fast, &n_fast, &t_fast);
  int rc_ref = ref_page(body, size, &ref, &n_ref, &t_ref);
  if (rc_fast != 0) {
    FUZZ_CHECK(!fast && n_fast == 0 && t_fast == -1, "a refusal left results");
  } else {
    FUZZ_CHECK(rc_ref == 0, "the reader accepts a page cJSON refuses");
    FUZZ_CHECK(n_fast == n_ref, "instances: reader %zu, cJSON %zu", n_fast, n_ref);
    FUZZ_CHECK(t_fast == t_ref, "total: reader %lld, cJSON %lld", (long long)t_fast,
               (long long)t_ref);
    for (size_t i = 0; i < n_fast; i++)
      same_instance(i, &fast[i], &ref[i]);
    struct runs r = { ref, n_ref, 0 };
    int64_t t_runs = -1;
    FUZZ_CHECK(nrd_nv_decode_instance_runs(body, size, 3, on_run, &r, &t_runs) == 0,
               "read whole, refused in runs");
    FUZZ_CHECK(r.seen == n_ref && t_runs == t_ref, "runs: %zu instances, total %lld", r.seen,
               (long long)t_runs);
  }
  free_all(fast, n_fast);
  free_all(ref, n_ref);
  return 0;
}
