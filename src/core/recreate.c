/* The recreation rule: a stored snapshot in, a Novita create request out.
 * Pure: no I/O, no clock, no globals, no logging. See DESIGN.md, "Recreation
 * rule", and include/nrd/recreate.h. */

#include "nrd/recreate.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nrd/json.h"
#include "nrd/util.h"

#define LEFT_ALONE "; instance left untouched"
#define SUFFIX "-recreated-"
#define SUFFIX_LEN (sizeof SUFFIX - 1)
#define SUFFIX_DIGITS 13

#define GPU_MIN 1
#define GPU_MAX 8
#define GPU_DEFAULT 1
#define ROOTFS_MIN 10
#define ROOTFS_MAX 6144
#define ROOTFS_DEFAULT 50
#define PORTS_MAX 15
#define ENVS_MAX 100
#define COMMAND_MAX 2047
#define IMAGE_URL_MAX 500       /* CreateInstanceRequest.imageUrl maxLength */
#define PRODUCT_ID_MAX 255      /* CreateInstanceRequest.productId maxLength */
#define NETWORK_STORAGES_MAX 30 /* CreateInstanceRequest.networkStorages maxItems */
#define ENTRYPOINT_MAX 2047     /* entrypoint: 0-2047 characters (bytes here: stricter) */
#define CPU_ENVS_MAX 30         /* Create CPU Instance: at most 30 envs */
#define MIN_CUDA_MAX 32         /* undocumented: a version string, as the simulator bounds it */
#define LOCAL_MOUNT_MAX 255     /* localStorageMountPoint, as the simulator bounds it */
#define RESERVED_PORT_MIN 2222  /* 2222-2224: Novita's own, refused on create */
#define RESERVED_PORT_MAX 2224

static bool absent(const char *s)
{
  return !s || !*s;
}

enum count_status { COUNT_ABSENT, COUNT_OK, COUNT_INVALID };

/* gpuNum and rootfsSize: absent also when any numeric zero ("0", "0.0"), as the
 * older service's `||` treated them; otherwise an integer in [min, max]. */
static enum count_status parse_count(const char *s, int64_t min, int64_t max, int64_t *out)
{
  double zero;
  if (absent(s) || nrd_parse_double(s, 0.0, 0.0, &zero))
    return COUNT_ABSENT;
  if (!nrd_parse_i64(s, min, max, out))
    return COUNT_INVALID;
  return COUNT_OK;
}

static int64_t count_or_default(const char *s, int64_t min, int64_t max, int64_t dflt)
{
  int64_t v = dflt;
  if (parse_count(s, min, max, &v) != COUNT_OK)
    v = dflt;
  return v;
}

/* Port type: absent means tcp. Accepted case-insensitively ("TCP" is what a
 * human might have typed into an older record) and always sent in lower case,
 * the form Novita documents. NULL when the type is not tcp/http. */
static const char *port_type(const char *type)
{
  if (absent(type) || strcasecmp(type, "tcp") == 0)
    return "tcp";
  if (strcasecmp(type, "http") == 0)
    return "http";
  return NULL;
}

/* A network mount that can be carried over: Novita needs both its id and its
 * mount point, so a network mount missing either is skipped. */
static bool carried_mount(const struct nrd_mount *m)
{
  return m->type && strcmp(m->type, "network") == 0 && !absent(m->id) && !absent(m->mount_path);
}

/* A value quoted into a reason only when it is short printable ASCII (reasons
 * reach reports and logs; junk from Novita should not). */
static const char *shown(const char *s, char buf[40])
{
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n >= 32)
    goto hidden;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
      goto hidden;
  }
  snprintf(buf, 40, "\"%s\"", s);
  return buf;
hidden:
  return "(value not shown)";
}

/* Writes "<message>; instance left untouched" into reason (may be NULL), the
 * message cut to leave room for the tail. Returns false for the caller. */
static bool fail(char reason[NRD_REASON_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool fail(char reason[NRD_REASON_MAX], const char *fmt, ...)
{
  char msg[NRD_REASON_MAX - sizeof LEFT_ALONE + 1];
  va_list ap;
  if (!reason)
    return false;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(reason, NRD_REASON_MAX, "%s" LEFT_ALONE, msg);
  return false;
}

static bool is_cpu(const struct nrd_instance *snap)
{
  return snap->kind && strcmp(snap->kind, "cpu") == 0;
}

/* A port Novita assigns itself: left out of the create, named in the outcome. */
static bool reserved_port(const char *port, int64_t *num)
{
  return nrd_parse_i64(port, RESERVED_PORT_MIN, RESERVED_PORT_MAX, num);
}

/* Ports sent: every port but the reserved ones. */
static size_t sent_ports(const struct nrd_instance *snap)
{
  size_t n = 0;
  int64_t num;
  for (size_t i = 0; i < snap->n_ports; i++)
    n += !reserved_port(snap->ports[i].port, &num);
  return n;
}

/* Item i (a "port" or a "tool") has a port number (an integer 1-65535, its
 * field named number_word; absent is fine when optional) and a type (tcp or
 * http). */
static bool check_port_fields(char reason[NRD_REASON_MAX], const char *item, size_t i,
                              const char *number_word, const char *number, bool optional,
                              const char *type)
{
  char val[40];
  int64_t num;
  if (!(optional && absent(number)) && !nrd_parse_i64(number, 1, 65535, &num))
    return fail(reason, "%s %zu has %s %s, not an integer 1-65535", item, i + 1, number_word,
                shown(number, val));
  if (!port_type(type))
    return fail(reason, "%s %zu has type %s, not tcp or http", item, i + 1, shown(type, val));
  return true;
}

static bool check_ports(const struct nrd_instance *snap, char reason[NRD_REASON_MAX])
{
  size_t used = sent_ports(snap) + snap->n_tools;
  if (used > PORTS_MAX)
    return fail(reason, "snapshot has %zu ports and tools, Novita allows at most %d", used,
                PORTS_MAX);
  for (size_t i = 0; i < snap->n_ports; i++) {
    const struct nrd_port *p = &snap->ports[i];
    if (!check_port_fields(reason, "port", i, "number", p->port, false, p->type))
      return false;
  }
  return true;
}

static bool check_tools(const struct nrd_instance *snap, char reason[NRD_REASON_MAX])
{
  for (size_t i = 0; i < snap->n_tools; i++) {
    const struct nrd_tool *t = &snap->tools[i];
    if (absent(t->name))
      return fail(reason, "tool %zu has no name", i + 1);
    if (!check_port_fields(reason, "tool", i, "port", t->port, true, t->type))
      return false;
  }
  return true;
}

static bool check_envs(const struct nrd_instance *snap, char reason[NRD_REASON_MAX])
{
  int max = is_cpu(snap) ? CPU_ENVS_MAX : ENVS_MAX;
  if (snap->n_envs > (size_t)max)
    return fail(reason, "snapshot has %zu envs, Novita allows at most %d%s", snap->n_envs, max,
                is_cpu(snap) ? " on a cpu instance" : "");
  for (size_t i = 0; i < snap->n_envs; i++) {
    if (absent(snap->envs[i].key))
      return fail(reason, "env %zu has an empty key", i + 1);
  }
  return true;
}

static const char *local_mount(const struct nrd_instance *snap);

static bool check_mounts(const struct nrd_instance *snap, char reason[NRD_REASON_MAX])
{
  const char *local = is_cpu(snap) ? local_mount(snap) : NULL;
  if (local && strlen(local) > LOCAL_MOUNT_MAX)
    return fail(reason, "local storage mount path is longer than %d bytes", LOCAL_MOUNT_MAX);
  size_t n = 0;
  for (size_t i = 0; i < snap->n_mounts; i++) {
    if (carried_mount(&snap->mounts[i]))
      n++;
  }
  if (n > NETWORK_STORAGES_MAX)
    return fail(reason, "snapshot has %zu network storages, Novita allows at most %d", n,
                NETWORK_STORAGES_MAX);
  return true;
}

static bool one_of(const char *s, const char *a, const char *b, const char *c)
{
  return strcmp(s, a) == 0 || strcmp(s, b) == 0 || (c && strcmp(s, c) == 0);
}

bool nrd_recreate_check(const struct nrd_instance *snap, bool *needs_product,
                        char reason[NRD_REASON_MAX])
{
  char val[40];
  int64_t v;

  if (reason)
    reason[0] = '\0';
  if (needs_product)
    *needs_product = absent(snap->product_id);

  if (absent(snap->image_url))
    return fail(reason, "snapshot has no imageUrl");
  if (strlen(snap->image_url) > IMAGE_URL_MAX)
    return fail(reason, "imageUrl is longer than %d bytes", IMAGE_URL_MAX);
  if (absent(snap->product_id) && absent(snap->product_name))
    return fail(reason, "snapshot has neither productId nor productName");
  if (snap->product_id && strlen(snap->product_id) > PRODUCT_ID_MAX)
    return fail(reason, "productId is longer than %d bytes", PRODUCT_ID_MAX);
  if (parse_count(snap->gpu_num, GPU_MIN, GPU_MAX, &v) == COUNT_INVALID)
    return fail(reason, "gpuNum %s is not an integer %d-%d", shown(snap->gpu_num, val), GPU_MIN,
                GPU_MAX);
  if (parse_count(snap->rootfs_size, ROOTFS_MIN, ROOTFS_MAX, &v) == COUNT_INVALID)
    return fail(reason, "rootfsSize %s is not an integer %d-%d", shown(snap->rootfs_size, val),
                ROOTFS_MIN, ROOTFS_MAX);
  if (!absent(snap->kind) && !one_of(snap->kind, "gpu", "cpu", NULL))
    return fail(reason, "kind %s is not gpu or cpu", shown(snap->kind, val));
  if (!absent(snap->billing_mode) && !one_of(snap->billing_mode, "onDemand", "monthly", "spot"))
    return fail(reason, "billingMode %s is not onDemand, monthly or spot",
                shown(snap->billing_mode, val));
  if (!check_ports(snap, reason) || !check_tools(snap, reason) || !check_envs(snap, reason))
    return false;
  if (snap->command && strlen(snap->command) > COMMAND_MAX)
    return fail(reason, "command is %zu bytes, Novita allows at most %d", strlen(snap->command),
                COMMAND_MAX);
  if (snap->entrypoint && strlen(snap->entrypoint) > ENTRYPOINT_MAX)
    return fail(reason, "entrypoint is %zu bytes, Novita allows at most %d",
                strlen(snap->entrypoint), ENTRYPOINT_MAX);
  if (snap->min_cuda_version && strlen(snap->min_cuda_version) > MIN_CUDA_MAX)
    return fail(reason, "minCudaVersion is longer than %d bytes", MIN_CUDA_MAX);
  return check_mounts(snap, reason);
}

static void add_ports(cJSON *req, const struct nrd_instance *snap)
{
  struct nrd_buf b;
  nrd_buf_init(&b);
  for (size_t i = 0; i < snap->n_ports; i++) {
    const struct nrd_port *p = &snap->ports[i];
    int64_t num;
    const char *type = port_type(p->type);
    if (!nrd_parse_i64(p->port, 1, 65535, &num) || !type)
      continue; /* nrd_recreate_check refused this snapshot already */
    if (num >= RESERVED_PORT_MIN && num <= RESERVED_PORT_MAX)
      continue; /* Novita's own: named in the outcome (nrd_recreate_notes) */
    nrd_buf_printf(&b, "%s%" PRId64 "/%s", b.len ? ", " : "", num, type);
  }
  if (b.len)
    nrd_json_add_str(req, "ports", b.data);
  nrd_buf_cleanup(&b);
}

static cJSON *new_object_in(cJSON *array)
{
  cJSON *o = nrd_json_object();
  if (!cJSON_AddItemToArray(array, o))
    abort();
  return o;
}

static void add_item(cJSON *obj, const char *key, cJSON *item)
{
  if (!cJSON_AddItemToObject(obj, key, item))
    abort();
}

/* envs byte for byte; a value that was absent (null or not a string) is sent
 * as "" because Novita requires a string. */
static void add_envs(cJSON *req, const struct nrd_instance *snap)
{
  if (snap->n_envs == 0)
    return;
  cJSON *envs = nrd_json_array();
  for (size_t i = 0; i < snap->n_envs; i++) {
    cJSON *e = new_object_in(envs);
    nrd_json_add_str(e, "key", snap->envs[i].key);
    nrd_json_add_str(e, "value", snap->envs[i].value ? snap->envs[i].value : "");
  }
  add_item(req, "envs", envs);
}

static void add_network_storages(cJSON *req, const struct nrd_instance *snap)
{
  cJSON *list = NULL;
  for (size_t i = 0; i < snap->n_mounts; i++) {
    const struct nrd_mount *m = &snap->mounts[i];
    if (!carried_mount(m))
      continue;
    if (!list)
      list = nrd_json_array();
    cJSON *o = new_object_in(list);
    nrd_json_add_str(o, "Id", m->id);
    nrd_json_add_str(o, "mountPoint", m->mount_path);
  }
  if (list)
    add_item(req, "networkStorages", list);
}

static const char *nonempty_or_null(const char *s)
{
  return absent(s) ? NULL : s;
}

/* tools byte for byte: [{name, port?, type}] (type absent: tcp, as ports). */
static void add_tools(cJSON *req, const struct nrd_instance *snap)
{
  if (snap->n_tools == 0)
    return;
  cJSON *tools = nrd_json_array();
  for (size_t i = 0; i < snap->n_tools; i++) {
    const struct nrd_tool *t = &snap->tools[i];
    cJSON *o = new_object_in(tools);
    nrd_json_add_str(o, "name", t->name);
    nrd_json_add_str(o, "port", nonempty_or_null(t->port));
    nrd_json_add_str(o, "type", port_type(t->type));
  }
  add_item(req, "tools", tools);
}

/* The first local volume's mount point, or NULL. */
static const char *local_mount(const struct nrd_instance *snap)
{
  for (size_t i = 0; i < snap->n_mounts; i++) {
    const struct nrd_mount *m = &snap->mounts[i];
    if (m->type && strcmp(m->type, "local") == 0 && !absent(m->mount_path))
      return m->mount_path;
  }
  return NULL;
}

void nrd_recreate_notes(const struct nrd_instance *snap, cJSON *outcome)
{
  cJSON *dropped = NULL;
  int64_t num;
  for (size_t i = 0; i < snap->n_ports; i++) {
    if (!reserved_port(snap->ports[i].port, &num))
      continue;
    if (!dropped)
      dropped = nrd_json_array();
    cJSON *n = cJSON_CreateNumber((double)num);
    if (!n || !cJSON_AddItemToArray(dropped, n))
      abort();
  }
  if (dropped)
    add_item(outcome, "droppedPorts", dropped);
  const char *local = local_mount(snap);
  if (local) {
    nrd_json_add_bool(outcome, "localStorageLost", true);
    nrd_json_add_str(outcome, "localStorageMountPath", local);
  }
}

cJSON *nrd_recreate_build(const struct nrd_instance *snap, const char *product_id,
                          const char *new_name)
{
  cJSON *req = nrd_json_object();
  bool cpu = is_cpu(snap);
  nrd_json_add_str(req, "name", new_name);
  nrd_json_add_str(req, "productId", product_id);
  if (!cpu) {
    nrd_json_add_num(req, "gpuNum",
                     (double)count_or_default(snap->gpu_num, GPU_MIN, GPU_MAX, GPU_DEFAULT));
    nrd_json_add_num(
        req, "rootfsSize",
        (double)count_or_default(snap->rootfs_size, ROOTFS_MIN, ROOTFS_MAX, ROOTFS_DEFAULT));
  }
  nrd_json_add_str(req, "imageUrl", snap->image_url);
  nrd_json_add_str(req, "imageAuthId", nonempty_or_null(snap->image_auth_id));
  add_ports(req, snap);
  add_envs(req, snap);
  add_tools(req, snap);
  nrd_json_add_str(req, "command", nonempty_or_null(snap->command));
  nrd_json_add_str(req, "entrypoint", nonempty_or_null(snap->entrypoint));
  nrd_json_add_str(req, "clusterId", nonempty_or_null(snap->cluster_id));
  if (cpu)
    nrd_json_add_str(req, "localStorageMountPoint", local_mount(snap));
  add_network_storages(req, snap);
  nrd_json_add_str(req, "networkId", nonempty_or_null(snap->network_id));
  if (!cpu)
    nrd_json_add_str(req, "minCudaVersion", nonempty_or_null(snap->min_cuda_version));
  nrd_json_add_str(req, "kind", absent(snap->kind) ? "gpu" : snap->kind);
  nrd_json_add_str(req, "billingMode", absent(snap->billing_mode) ? "spot" : snap->billing_mode);
  return req;
}

static void mask(cJSON *obj, const char *key)
{
  if (!cJSON_GetObjectItemCaseSensitive(obj, key))
    return;
  cJSON *stars = cJSON_CreateString("***");
  if (!stars || !cJSON_ReplaceItemInObjectCaseSensitive(obj, key, stars))
    abort();
}

cJSON *nrd_recreate_redact(const cJSON *request)
{
  if (!request)
    return NULL;
  cJSON *copy = cJSON_Duplicate(request, 1);
  if (!copy)
    abort();
  mask(copy, "imageAuthId");
  mask(copy, "imageAuth");
  cJSON *envs = cJSON_GetObjectItemCaseSensitive(copy, "envs");
  cJSON *env;
  cJSON_ArrayForEach(env, envs) {
    if (cJSON_IsObject(env))
      mask(env, "value");
  }
  return copy;
}

/* True when the first len bytes of s end with "-recreated-" followed by exactly
 * 13 digits (a 14-digit tail fails: its 11 bytes before the last 13 are not
 * "-recreated-"). */
static bool has_suffix(const char *s, size_t len)
{
  size_t whole = SUFFIX_LEN + SUFFIX_DIGITS;
  if (len < whole)
    return false;
  const char *tail = s + len - whole;
  if (memcmp(tail, SUFFIX, SUFFIX_LEN) != 0)
    return false;
  for (size_t i = SUFFIX_LEN; i < whole; i++) {
    if (tail[i] < '0' || tail[i] > '9')
      return false;
  }
  return true;
}

void nrd_recreate_name(const char *old_name, const char *instance_id, int64_t ms,
                       char out[NRD_NAME_MAX + 1])
{
  char tail[48];
  int tail_len = snprintf(tail, sizeof tail, SUFFIX "%" PRId64, ms);
  const char *base = absent(old_name) ? instance_id : old_name;
  if (!base)
    base = "";
  size_t len = strlen(base);
  while (has_suffix(base, len))
    len -= SUFFIX_LEN + SUFFIX_DIGITS;
  if (len == 0 && !absent(instance_id) && base != instance_id) {
    base = instance_id; /* the name was nothing but suffixes */
    len = strlen(base);
  }
  size_t room = NRD_NAME_MAX - (size_t)tail_len;
  if (len > room) {
    len = room;
    /* Back off continuation bytes so no UTF-8 sequence is split. */
    while (len > 0 && ((unsigned char)base[len] & 0xC0) == 0x80)
      len--;
  }
  memcpy(out, base, len);
  memcpy(out + len, tail, (size_t)tail_len + 1);
}

/* Length of the region code: the text before the first space. */
static size_t region_code_len(const char *s)
{
  const char *sp = strchr(s, ' ');
  return sp ? (size_t)(sp - s) : strlen(s);
}

void nrd_recreate_region(const struct nrd_instance *snap, const char *default_region, char out[64])
{
  const char *src = snap->cluster_name;
  size_t len = absent(src) ? 0 : region_code_len(src);
  if (len == 0) {
    src = default_region ? default_region : "";
    len = strlen(src);
  }
  if (len > 63)
    len = 63; /* no real region code is this long; it will match nothing */
  memcpy(out, src, len);
  out[len] = '\0';
}

static bool product_in_region(const struct nrd_product *p, const char *region)
{
  size_t want = strlen(region);
  for (size_t i = 0; i < p->n_regions; i++) {
    const char *r = p->regions[i];
    if (r && region_code_len(r) == want && memcmp(r, region, want) == 0)
      return true;
  }
  return false;
}

long nrd_recreate_pick_product(const struct nrd_product *products, size_t n, const char *name,
                               const char *region)
{
  long best = -1;
  if (absent(name) || absent(region))
    return -1;
  for (size_t i = 0; i < n; i++) {
    const struct nrd_product *p = &products[i];
    if (!p->name || strcmp(p->name, name) != 0 || !p->available || !p->has_spot_price)
      continue;
    if (!isfinite(p->spot_price) || p->spot_price <= 0.0 || absent(p->id))
      continue;
    if (!product_in_region(p, region))
      continue;
    if (best < 0 || p->spot_price < products[best].spot_price)
      best = (long)i;
  }
  return best;
}
