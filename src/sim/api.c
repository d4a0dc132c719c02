/* The simulated Novita endpoints: list instances, jobs and products; create
 * and delete instances. Shapes follow Novita's API reference (gpuNum, cpuNum
 * and memory are strings; jobs carry Id with a capital I). */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "sim_internal.h"

#define DEFAULT_PAGE_SIZE 10

cJSON *sim_error(int code, const char *reason, const char *message)
{
  cJSON *e = nrd_json_object();
  nrd_json_add_num(e, "code", code);
  nrd_json_add_str(e, "reason", reason);
  nrd_json_add_str(e, "message", message);
  if (!cJSON_AddObjectToObject(e, "metadata"))
    abort();
  return e;
}

static cJSON *dup_item(const cJSON *item)
{
  cJSON *d = cJSON_Duplicate(item, true);
  if (!d)
    abort();
  return d;
}

/* Case-insensitive substring, as Novita's fuzzy filters match. */
static bool fuzzy_match(const char *haystack, const char *needle)
{
  size_t n = strlen(needle);
  if (!haystack)
    return n == 0;
  for (const char *h = haystack;; h++) {
    size_t i = 0;
    while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
      i++;
    if (i == n)
      return true;
    if (!*h)
      return false;
  }
}

static const char *arg(struct MHD_Connection *c, const char *key)
{
  const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
  return v && *v ? v : NULL;
}

struct page {
  int64_t offset, size; /* size 0: an empty page */
};

/* pageNum and pageSize as Novita takes them: size defaults to 10 (0 too) and
 * is capped by page_cap; a page number below the base gives an empty page. */
static bool parse_page(struct nrd_sim *s, struct MHD_Connection *c, struct page *p, cJSON **err)
{
  int64_t num = s->page_base, size = DEFAULT_PAGE_SIZE;
  const char *v = arg(c, "pageSize");
  if (v && !nrd_parse_i64(v, 0, 1000000000, &size)) {
    *err = sim_error(400, "VALIDATOR_PARAM", "pageSize must be a non-negative integer");
    return false;
  }
  v = arg(c, "pageNum");
  if (v && !nrd_parse_i64(v, 0, 1000000000, &num)) {
    *err = sim_error(400, "VALIDATOR_PARAM", "pageNum must be a non-negative integer");
    return false;
  }
  if (size == 0)
    size = DEFAULT_PAGE_SIZE;
  if (s->page_cap && size > s->page_cap)
    size = s->page_cap;
  if (num < s->page_base) {
    p->offset = 0;
    p->size = 0;
  } else {
    p->offset = (num - s->page_base) * size;
    p->size = size;
  }
  return true;
}

/* Walks items, keeping those match accepts; copies the
 * page's slice into a new array and counts all matches into *total. The
 * filter's arguments are read from the request once, not once per item.
 * Call with s->mu held. */
typedef bool (*match_fn)(const cJSON *item, const void *filter);

static cJSON *select_page(const cJSON *items, match_fn match, const void *filter,
                          const struct page *p, int64_t *total)
{
  cJSON *out = nrd_json_array();
  const cJSON *it;
  int64_t n = 0;
  cJSON_ArrayForEach(it, items) {
    if (!match(it, filter))
      continue;
    if (n >= p->offset && n < p->offset + p->size)
      cJSON_AddItemToArray(out, dup_item(it));
    n++;
  }
  *total = n;
  return out;
}

static cJSON *list_body(const struct nrd_sim *s, const char *key, cJSON *items, int64_t total)
{
  cJSON *o = nrd_json_object();
  cJSON_AddItemToObject(o, key, items);
  if (!s->no_total)
    nrd_json_add_num(o, "total", (double)total);
  return o;
}

struct instance_filter {
  const char *name, *status, *product;
};

static bool instance_matches(const cJSON *inst, const void *filter)
{
  const struct instance_filter *f = filter;
  if (f->name && !fuzzy_match(nrd_json_str(inst, "name"), f->name))
    return false;
  if (f->product && !fuzzy_match(nrd_json_str(inst, "productName"), f->product))
    return false;
  if (f->status) {
    const char *st = nrd_json_str(inst, "status");
    if (!st || strcmp(st, f->status) != 0)
      return false;
  }
  return true;
}

void sim_instances_changed(struct nrd_sim *s)
{
  for (size_t i = 0; i < s->n_listed; i++)
    free(s->listed[i].text);
  free(s->listed);
  s->listed = NULL;
  s->n_listed = 0;
}

/* An unfiltered page from the listing index (built here when stale): items
 * as raw JSON nodes holding their printed text. Call with s->mu held. */
static cJSON *select_listed(struct nrd_sim *s, const struct page *p, int64_t *total)
{
  cJSON *out = nrd_json_array();
  const cJSON *it;
  if (!s->listed) {
    size_t n = 0;
    s->listed = nrd_xcalloc((size_t)cJSON_GetArraySize(s->instances) + 1, sizeof *s->listed);
    cJSON_ArrayForEach(it, s->instances)
      s->listed[n++].item = it;
    s->n_listed = n;
  }
  *total = (int64_t)s->n_listed;
  for (int64_t i = p->offset; i < p->offset + p->size && i < *total; i++) {
    struct sim_listed *l = &s->listed[i];
    if (!l->text)
      l->text = nrd_json_print(l->item);
    cJSON *raw = cJSON_CreateRaw(l->text);
    if (!raw)
      abort();
    cJSON_AddItemToArray(out, raw);
  }
  return out;
}

/* The items of one page, with s->mu held; *total gets how many match. */
typedef cJSON *(*select_fn)(struct nrd_sim *s, const void *filter, const struct page *p,
                            int64_t *total);

/* A list endpoint: the page asked for, chosen by select under s->mu, in
 * Novita's list body under key. */
static int list_reply(struct nrd_sim *s, struct MHD_Connection *c, const char *key,
                      select_fn select, const void *filter, cJSON **out)
{
  struct page p;
  int64_t total;

  if (!parse_page(s, c, &p, out))
    return 400;
  pthread_mutex_lock(&s->mu);
  cJSON *items = select(s, filter, &p, &total);
  pthread_mutex_unlock(&s->mu);
  *out = list_body(s, key, items, total);
  return 200;
}

static cJSON *select_instances(struct nrd_sim *s, const void *filter, const struct page *p,
                               int64_t *total)
{
  const struct instance_filter *f = filter;
  sim_start_advance_locked(s);
  if (f->name || f->status || f->product)
    return select_page(s->instances, instance_matches, f, p, total);
  return select_listed(s, p, total);
}

int sim_list_instances(struct nrd_sim *s, struct MHD_Connection *c, const char *body,
                       size_t body_len, cJSON **out)
{
  struct instance_filter f = { arg(c, "name"), arg(c, "status"), arg(c, "productName") };
  return list_reply(s, c, "instances", select_instances, &f, out);
}

struct job_filter {
  const char *type, *state, *id;
  int64_t start, end; /* 0: no bound */
};

static int64_t time_bound(struct MHD_Connection *c, const char *key)
{
  int64_t v;
  const char *text = arg(c, key);
  return text && nrd_parse_i64(text, 0, INT64_MAX, &v) ? v : 0;
}

static bool job_matches(const cJSON *job, const void *filter)
{
  const struct job_filter *f = filter;
  int64_t created = 0;

  if (f->type && !(nrd_json_str(job, "type") && strcmp(nrd_json_str(job, "type"), f->type) == 0))
    return false;
  if (f->id && !(nrd_json_str(job, "Id") && strcmp(nrd_json_str(job, "Id"), f->id) == 0))
    return false;
  if (f->state) {
    const char *st = nrd_json_str(cJSON_GetObjectItemCaseSensitive(job, "state"), "state");
    if (!st || strcmp(st, f->state) != 0)
      return false;
  }
  if (f->start || f->end)
    nrd_json_i64(job, "createdAt", &created);
  if (f->start && created < f->start)
    return false;
  if (f->end && created > f->end)
    return false;
  return true;
}

static cJSON *select_jobs(struct nrd_sim *s, const void *filter, const struct page *p,
                          int64_t *total)
{
  return select_page(s->jobs, job_matches, filter, p, total);
}

int sim_list_jobs(struct nrd_sim *s, struct MHD_Connection *c, const char *body, size_t body_len,
                  cJSON **out)
{
  struct job_filter f = { arg(c, "type"), arg(c, "state"), arg(c, "jobId"),
                          time_bound(c, "startTime"), time_bound(c, "endTime") };
  return list_reply(s, c, "jobs", select_jobs, &f, out);
}

static cJSON *find_by_id(const cJSON *items, const char *key, const char *id)
{
  cJSON *it;
  cJSON_ArrayForEach(it, items) {
    const char *v = nrd_json_str(it, key);
    if (v && strcmp(v, id) == 0)
      return it;
  }
  return NULL;
}

static bool product_matches(const cJSON *prod, struct MHD_Connection *c)
{
  const char *name = arg(c, "productName"), *billing = arg(c, "billingMethod");
  const cJSON *methods = cJSON_GetObjectItemCaseSensitive(prod, "billingMethods");
  const cJSON *m;

  if (name && !fuzzy_match(nrd_json_str(prod, "name"), name))
    return false;
  if (!billing || !cJSON_IsArray(methods))
    return true;
  cJSON_ArrayForEach(m, methods) {
    if (cJSON_IsString(m) && strcmp(m->valuestring, billing) == 0)
      return true;
  }
  return false;
}

/* Novita's product `regions` name the clusters it is offered in. Filtered
 * by a cluster the simulator lists, a product with regions shows only when
 * that cluster's name is one of them; a product without regions, or a
 * cluster the scenario does not list, is not filtered. Call with s->mu. */
static bool product_in_cluster(const struct nrd_sim *s, const cJSON *prod, const char *cluster)
{
  const cJSON *regions = cJSON_GetObjectItemCaseSensitive(prod, "regions");
  const cJSON *cl = cluster ? find_by_id(s->clusters, "id", cluster) : NULL;
  const char *name = nrd_json_str(cl, "name");
  const cJSON *r;
  if (!name || cJSON_GetArraySize(regions) == 0)
    return true;
  cJSON_ArrayForEach(r, regions) {
    if (cJSON_IsString(r) && strcmp(r->valuestring, name) == 0)
      return true;
  }
  return false;
}

/* Novita's {"data": [...]} answer, taking data. */
static int data_reply(cJSON *data, cJSON **out)
{
  *out = nrd_json_object();
  cJSON_AddItemToObject(*out, "data", data);
  return 200;
}

int sim_list_products(struct nrd_sim *s, struct MHD_Connection *c, const char *body,
                      size_t body_len, cJSON **out)
{
  cJSON *data = nrd_json_array();
  const cJSON *it;

  const char *cluster = arg(c, "clusterId");
  pthread_mutex_lock(&s->mu);
  cJSON_ArrayForEach(it, s->products) {
    if (!product_matches(it, c) || !product_in_cluster(s, it, cluster))
      continue;
    cJSON *p = dup_item(it);
    /* In a cluster with a capacity set, the product shows it. */
    const struct sim_capacity *cap = sim_capacity_find(s, nrd_json_str(it, "name"), cluster);
    if (cap) {
      cJSON_DeleteItemFromObjectCaseSensitive(p, "availableDeploy");
      cJSON_DeleteItemFromObjectCaseSensitive(p, "inventoryState");
      nrd_json_add_bool(p, "availableDeploy", cap->available > 0);
      nrd_json_add_str(p, "inventoryState", cap->available > 0 ? "normal" : "none");
    }
    cJSON_AddItemToArray(data, p);
  }
  pthread_mutex_unlock(&s->mu);
  return data_reply(data, out);
}

/* GET /v1/cpu/products: the scenario's "cpuProducts", with the same filters
 * (productName, billingMethod) as the GPU list. */
int sim_list_cpu_products(struct nrd_sim *s, struct MHD_Connection *c, const char *body,
                          size_t body_len, cJSON **out)
{
  cJSON *data = nrd_json_array();
  const cJSON *it;
  (void)body;
  (void)body_len;
  pthread_mutex_lock(&s->mu);
  /* Novita documents two filters here, productName and clusterId. */
  const char *name = arg(c, "productName"), *cluster = arg(c, "clusterId");
  cJSON_ArrayForEach(it, s->cpu_products) {
    if ((!name || fuzzy_match(nrd_json_str(it, "name"), name)) &&
        product_in_cluster(s, it, cluster))
      cJSON_AddItemToArray(data, dup_item(it));
  }
  pthread_mutex_unlock(&s->mu);
  return data_reply(data, out);
}

int sim_delete_instance(struct nrd_sim *s, struct MHD_Connection *c, const char *body,
                        size_t body_len, cJSON **out)
{
  cJSON *req = nrd_json_parse(body, body_len);
  const char *id = nrd_json_str_nonempty(req, "instanceId");
  cJSON *inst;
  int status;

  if (!id) {
    *out = sim_error(400, "VALIDATOR_PARAM", "instanceId is required");
    status = 400;
    goto out;
  }
  pthread_mutex_lock(&s->mu);
  inst = find_by_id(s->instances, "id", id);
  const char *billing = nrd_json_str(inst, "billingMode");
  if (inst && billing && strcmp(billing, "monthly") == 0) {
    pthread_mutex_unlock(&s->mu);
    *out = sim_error(400, "PREPAID_INSTANCE_NOT_SUPPORT_RELEASE",
                     "a prepaid (monthly) instance cannot be released");
    status = 400;
    goto out;
  }
  if (inst) {
    cJSON_Delete(cJSON_DetachItemViaPointer(s->instances, inst));
    sim_instances_changed(s);
  }
  pthread_mutex_unlock(&s->mu);
  if (!inst) {
    *out = sim_error(400, "RESOURCE_NOT_FOUND", "instance not found");
    status = 400;
    goto out;
  }
  *out = nrd_json_object();
  status = 200;
out:
  cJSON_Delete(req);
  return status;
}

/* GET /v1/clusters: {data: [{id, name, availableGpuType, supportNetworkStorage,
 * supportInstanceNetwork}]}, the scenario's clusters with Novita's fields
 * filled where the scenario leaves them out. */
int sim_list_clusters(struct nrd_sim *s, struct MHD_Connection *c, const char *body,
                      size_t body_len, cJSON **out)
{
  cJSON *data = nrd_json_array();
  const cJSON *it;
  (void)c;
  (void)body;
  (void)body_len;
  pthread_mutex_lock(&s->mu);
  cJSON_ArrayForEach(it, s->clusters) {
    cJSON *cl = dup_item(it);
    if (!cJSON_HasObjectItem(cl, "availableGpuType"))
      cJSON_AddItemToObject(cl, "availableGpuType", nrd_json_array());
    if (!cJSON_HasObjectItem(cl, "supportNetworkStorage"))
      nrd_json_add_bool(cl, "supportNetworkStorage", true);
    if (!cJSON_HasObjectItem(cl, "supportInstanceNetwork"))
      nrd_json_add_bool(cl, "supportInstanceNetwork", false);
    cJSON_AddItemToArray(data, cl);
  }
  pthread_mutex_unlock(&s->mu);
  return data_reply(data, out);
}

static void copy_member(cJSON *to, const char *to_key, const cJSON *from, const char *key)
{
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);
  if (v && !cJSON_IsNull(v))
    cJSON_AddItemToObject(to, to_key, dup_item(v));
}

static void add_int_text(cJSON *o, const char *key, long long v)
{
  char buf[24];
  snprintf(buf, sizeof buf, "%lld", v);
  nrd_json_add_str(o, key, buf);
}

/* networkStorages [{Id, mountPoint}] listed back as volumeMounts. */
static cJSON *volume_mounts(const cJSON *req)
{
  cJSON *mounts = nrd_json_array();
  const cJSON *ns;
  cJSON_ArrayForEach(ns, cJSON_GetObjectItemCaseSensitive(req, "networkStorages")) {
    cJSON *m = nrd_json_object();
    nrd_json_add_str(m, "type", "network");
    nrd_json_add_str(m, "size", "100");
    nrd_json_add_str(m, "id", nrd_json_str(ns, "Id"));
    nrd_json_add_str(m, "mountPath", nrd_json_str(ns, "mountPoint"));
    cJSON_AddItemToArray(mounts, m);
  }
  /* A cpu instance's local volume, where the create put it. */
  const char *local = nrd_json_str(req, "localStorageMountPoint");
  if (local && *local) {
    cJSON *m = nrd_json_object();
    nrd_json_add_str(m, "type", "local");
    nrd_json_add_str(m, "size", "50");
    nrd_json_add_str(m, "id", "");
    nrd_json_add_str(m, "mountPath", local);
    cJSON_AddItemToArray(mounts, m);
  }
  return mounts;
}

/* What Novita's get and list show of the create's entrypoint, networkId and
 * tools: entrypoint, network {id, ip} (an address in the VPC) and tools. */
static void carried_fields(cJSON *inst, const cJSON *req, unsigned long n)
{
  copy_member(inst, "entrypoint", req, "entrypoint");
  const char *net = nrd_json_str(req, "networkId");
  if (net && *net) {
    char ip[32];
    cJSON *o = nrd_json_object();
    snprintf(ip, sizeof ip, "10.2.%lu.%lu", (n / 250) % 250, n % 250 + 2);
    nrd_json_add_str(o, "id", net);
    nrd_json_add_str(o, "ip", ip);
    cJSON_AddItemToObject(inst, "network", o);
  }
  if (cJSON_GetObjectItemCaseSensitive(req, "tools"))
    copy_member(inst, "tools", req, "tools");
}

/* The instance Novita would list after accepting req (already checked). */
static cJSON *instance_from_request(const cJSON *req, const char *id, const char *status,
                                    const char *product_name, cJSON *port_mappings)
{
  cJSON *inst = nrd_json_object();
  int64_t gpus = 1;
  const char *cluster = nrd_json_str(req, "clusterId");
  char password[64];

  nrd_json_i64(req, "gpuNum", &gpus);
  nrd_json_add_str(inst, "id", id);
  nrd_json_add_str(inst, "name", nrd_json_str(req, "name") ? nrd_json_str(req, "name") : "");
  nrd_json_add_str(inst, "clusterId", cluster ? cluster : "cl-hk-01");
  nrd_json_add_str(inst, "clusterName", "CN-HK-01 (Hong Kong)");
  nrd_json_add_str(inst, "status", status);
  copy_member(inst, "imageUrl", req, "imageUrl");
  copy_member(inst, "imageAuthId", req, "imageAuthId");
  nrd_json_add_str(inst, "command",
                   nrd_json_str(req, "command") ? nrd_json_str(req, "command") : "");
  add_int_text(inst, "cpuNum", gpus * 16);
  add_int_text(inst, "memory", gpus * 62);
  add_int_text(inst, "gpuNum", gpus);
  copy_member(inst, "productId", req, "productId");
  nrd_json_add_str(inst, "productName", product_name);
  copy_member(inst, "rootfsSize", req, "rootfsSize");
  cJSON_AddItemToObject(inst, "portMappings", port_mappings ? port_mappings : nrd_json_array());
  if (cJSON_GetObjectItemCaseSensitive(req, "envs"))
    copy_member(inst, "envs", req, "envs");
  else
    cJSON_AddItemToObject(inst, "envs", nrd_json_array());
  cJSON_AddItemToObject(inst, "volumeMounts", volume_mounts(req));
  copy_member(inst, "kind", req, "kind");
  nrd_json_add_str(inst, "billingMode",
                   nrd_json_str(req, "billingMode") ? nrd_json_str(req, "billingMode")
                                                    : "onDemand");
  nrd_json_add_str(inst, "spotStatus", "");
  nrd_json_add_str(inst, "spotReclaimTime", "0");
  add_int_text(inst, "createdAt", nrd_now_ms() / 1000);
  carried_fields(inst, req, strtoul(id + 6, NULL, 10));
  snprintf(password, sizeof password, "sim-pass-%s", id);
  nrd_json_add_str(inst, "sshPassword", password);
  cJSON *ssh = nrd_json_object();
  nrd_json_add_str(ssh, "user", "root");
  nrd_json_add_str(ssh, "password", password);
  nrd_json_add_str(ssh, "command", "ssh root@127.0.0.1 -p 22022");
  cJSON_AddItemToObject(inst, "connectComponentSSH", ssh);
  return inst;
}

int sim_create_instance(struct nrd_sim *s, struct MHD_Connection *c, const char *body,
                        size_t body_len, cJSON **out)
{
  cJSON *req = nrd_json_parse(body, body_len);
  cJSON *mappings = NULL, *inst;
  const cJSON *product;
  const char *ports;
  char why[256], id[48];
  int status = 400;

  if (!nrd_sim_check_create_request(req, why, sizeof why)) {
    *out = sim_error(400, "VALIDATOR_PARAM", req ? why : "the body is not JSON");
    goto out;
  }
  ports = nrd_json_str(req, "ports");
  if (ports && nrd_sim_parse_ports(ports, &mappings, why, sizeof why) != 0) {
    *out = sim_error(400, "VALIDATOR_PARAM", why);
    goto out;
  }
  pthread_mutex_lock(&s->mu);
  product = find_by_id(s->products, "id", nrd_json_str(req, "productId"));
  if (s->account_reason) {
    *out = sim_error(400, s->account_reason, "the account cannot create instances now");
    pthread_mutex_unlock(&s->mu);
    cJSON_Delete(mappings);
    goto out;
  }
  struct sim_capacity *cap = sim_capacity_find(
      s, nrd_json_str(product, "name"),
      nrd_json_str(req, "clusterId") ? nrd_json_str(req, "clusterId") : "cl-hk-01");
  if (cap && cap->available <= 0) {
    *out = sim_error(400, "INSUFFICIENT_RESOURCE", "no capacity left for this product here");
    pthread_mutex_unlock(&s->mu);
    cJSON_Delete(mappings);
    goto out;
  }
  if (cap)
    cap->available--;
  snprintf(id, sizeof id, "i-sim-%lu", ++s->next_id);
  const char *start =
      s->new_status ? s->new_status : sim_start_begin_locked(s, id, nrd_json_str(req, "imageUrl"));
  inst = instance_from_request(
      req, id, start, nrd_json_str(product, "name") ? nrd_json_str(product, "name") : "", mappings);
  const char *cl_name =
      nrd_json_str(find_by_id(s->clusters, "id",
                              nrd_json_str(req, "clusterId") ? nrd_json_str(req, "clusterId") : ""),
                   "name");
  if (cl_name)
    cJSON_ReplaceItemInObjectCaseSensitive(inst, "clusterName", cJSON_CreateString(cl_name));
  cJSON_AddItemToArray(s->instances, inst);
  sim_instances_changed(s);
  pthread_mutex_unlock(&s->mu);
  *out = nrd_json_object();
  nrd_json_add_str(*out, "id", id);
  status = 200;
out:
  cJSON_Delete(req);
  return status;
}
