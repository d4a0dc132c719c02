/* CreateInstanceRequest, checked by hand against the schema of Novita's API
 * reference. Shared by the simulator (which refuses what Novita would refuse)
 * and the tests (which check every request the service sends). */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/sim.h"
#include "sim_internal.h"

#define MAX_PORTS 15

static bool fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(char *why, size_t whylen, const char *fmt, ...)
{
  va_list ap;
  if (why && whylen) {
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
  }
  return false;
}

/* Length in characters (UTF-8 code points), as JSON Schema counts. */
static size_t utf8_len(const char *s)
{
  size_t n = 0;
  for (; *s; s++) {
    if (((unsigned char)*s & 0xC0) != 0x80)
      n++;
  }
  return n;
}

static bool is_integer(const cJSON *v)
{
  double d;
  if (!cJSON_IsNumber(v))
    return false;
  d = v->valuedouble;
  return d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(long long)d;
}

/* A string of min..max characters; null too when nullable. */
static bool check_str(const cJSON *v, const char *key, size_t min, size_t max, bool nullable,
                      char *why, size_t whylen)
{
  size_t n;
  if (cJSON_IsNull(v) && nullable)
    return true;
  if (!cJSON_IsString(v))
    return fail(why, whylen, "%s must be a string", key);
  n = utf8_len(v->valuestring);
  if (n < min || n > max)
    return fail(why, whylen, "%s must have %zu to %zu characters, has %zu", key, min, max, n);
  return true;
}

static bool check_int(const cJSON *v, const char *key, long long min, long long max, bool nullable,
                      char *why, size_t whylen)
{
  if (cJSON_IsNull(v) && nullable)
    return true;
  if (!is_integer(v))
    return fail(why, whylen, "%s must be an integer", key);
  if (v->valuedouble < (double)min || v->valuedouble > (double)max)
    return fail(why, whylen, "%s must be within %lld..%lld", key, min, max);
  return true;
}

static bool check_enum(const cJSON *v, const char *key, const char *const *allowed, bool nullable,
                       char *why, size_t whylen)
{
  if (cJSON_IsNull(v) && nullable)
    return true;
  if (cJSON_IsString(v)) {
    for (size_t i = 0; allowed[i]; i++) {
      if (strcmp(v->valuestring, allowed[i]) == 0)
        return true;
    }
  }
  return fail(why, whylen, "%s is not one of the allowed values", key);
}

/* An array of at most max objects whose members are all strings, each
 * listed in keys; the first `required` keys must be present. */
static bool check_obj_array(const cJSON *v, const char *key, int max, const char *const *keys,
                            size_t required, char *why, size_t whylen)
{
  const cJSON *item;
  int i = 0;
  if (cJSON_IsNull(v))
    return true;
  if (!cJSON_IsArray(v))
    return fail(why, whylen, "%s must be an array", key);
  if (max > 0 && cJSON_GetArraySize(v) > max)
    return fail(why, whylen, "%s has %d items, at most %d allowed", key, cJSON_GetArraySize(v),
                max);
  cJSON_ArrayForEach(item, v) {
    const cJSON *m;
    if (!cJSON_IsObject(item))
      return fail(why, whylen, "%s[%d] must be an object", key, i);
    for (size_t k = 0; k < required; k++) {
      if (!cJSON_GetObjectItemCaseSensitive(item, keys[k]))
        return fail(why, whylen, "%s[%d].%s is required", key, i, keys[k]);
    }
    cJSON_ArrayForEach(m, item) {
      size_t k = 0;
      while (keys[k] && strcmp(keys[k], m->string) != 0)
        k++;
      if (!keys[k])
        return fail(why, whylen, "%s[%d] has an unknown field %s", key, i, m->string);
      if (!cJSON_IsString(m))
        return fail(why, whylen, "%s[%d].%s must be a string", key, i, m->string);
    }
    i++;
  }
  return true;
}

static bool parse_port_item(const char *s, size_t len, long *port, const char **type)
{
  char buf[32];
  char *slash, *end;
  while (len && (*s == ' ' || *s == '\t')) {
    s++;
    len--;
  }
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
    len--;
  if (len == 0 || len >= sizeof buf)
    return false;
  memcpy(buf, s, len);
  buf[len] = '\0';
  slash = strchr(buf, '/');
  if (!slash || slash == buf)
    return false;
  *slash = '\0';
  if (strcmp(slash + 1, "tcp") == 0)
    *type = "tcp";
  else if (strcmp(slash + 1, "http") == 0)
    *type = "http";
  else
    return false;
  for (const char *p = buf; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
  }
  *port = strtol(buf, &end, 10);
  return *end == '\0' && *port >= 1 && *port <= 65535;
}

int nrd_sim_parse_ports(const char *ports, cJSON **out, char *why, size_t whylen)
{
  cJSON *arr = cJSON_CreateArray();
  const char *p = ports;
  int n = 0;

  if (!arr)
    abort();
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    long port;
    const char *type;
    cJSON *m;
    char endpoint[64];

    if (!parse_port_item(p, len, &port, &type)) {
      fail(why, whylen, "ports item %d is not \"port/tcp\" or \"port/http\"", n + 1);
      goto bad;
    }
    n++;
    if (n > MAX_PORTS) {
      fail(why, whylen, "ports has more than %d items", MAX_PORTS);
      goto bad;
    }
    m = nrd_json_object();
    cJSON_AddNumberToObject(m, "port", (double)port);
    snprintf(endpoint, sizeof endpoint, "127.0.0.1:%ld", 20000 + port);
    cJSON_AddStringToObject(m, "endpoint", endpoint);
    cJSON_AddStringToObject(m, "type", type);
    cJSON_AddItemToArray(arr, m);
    if (!comma)
      break;
    p = comma + 1;
    if (!*p) {
      fail(why, whylen, "ports ends with a comma");
      goto bad;
    }
  }
  *out = arr;
  return 0;
bad:
  cJSON_Delete(arr);
  return -1;
}

static bool check_ports(const cJSON *v, char *why, size_t whylen)
{
  cJSON *mappings = NULL;
  const cJSON *m;
  if (cJSON_IsNull(v))
    return true;
  if (!cJSON_IsString(v))
    return fail(why, whylen, "ports must be a string");
  if (nrd_sim_parse_ports(v->valuestring, &mappings, why, whylen) != 0)
    return false;
  cJSON_ArrayForEach(m, mappings) {
    double port = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(m, "port"));
    if (port >= 2222 && port <= 2224) {
      cJSON_Delete(mappings);
      return fail(why, whylen, "port %.0f is reserved (2222-2224)", port);
    }
  }
  cJSON_Delete(mappings);
  return true;
}

static bool check_bool(const cJSON *v, const char *key, char *why, size_t whylen)
{
  if (cJSON_IsNull(v) || cJSON_IsBool(v))
    return true;
  return fail(why, whylen, "%s must be a boolean", key);
}

static const char *const KINDS[] = { "gpu", "cpu", NULL };
static const char *const BILLING[] = { "onDemand", "monthly", "spot", NULL };
static const char *const ENV_KEYS[] = { "key", "value", NULL };
static const char *const TOOL_KEYS[] = { "name", "port", "type", NULL };
static const char *const STORAGE_KEYS[] = { "Id", "mountPoint", NULL };

/* How each create-request field is checked: its kind; its bounds (a
 * string's length, -1 for none; an integer's value; an object array's
 * required keys and most items); whether null is allowed; its names (an
 * enum's values, an object array's keys). */
enum rule_kind { R_STR, R_INT, R_ENUM, R_BOOL, R_PORTS, R_OBJS };
struct rule {
  const char *key;
  enum rule_kind kind;
  long long min, max;
  bool nullable;
  const char *const *names;
};
static const struct rule RULES[] = {
  { "productId", R_STR, 1, 255, false, NULL },
  { "gpuNum", R_INT, 1, 8, false, NULL },
  { "rootfsSize", R_INT, 10, 6144, false, NULL },
  { "imageUrl", R_STR, 1, 500, false, NULL },
  { "kind", R_ENUM, 0, 0, false, KINDS },
  { "name", R_STR, 0, 255, false, NULL },
  { "command", R_STR, 0, 2047, true, NULL },
  { "imageAuth", R_STR, 0, -1, true, NULL },
  { "imageAuthId", R_STR, 0, -1, true, NULL },
  { "clusterId", R_STR, 0, -1, true, NULL },
  { "networkId", R_STR, 0, -1, true, NULL },
  { "ports", R_PORTS, 0, 0, false, NULL },
  { "envs", R_OBJS, 2, 100, false, ENV_KEYS },
  { "tools", R_OBJS, 0, 0, false, TOOL_KEYS },
  { "networkStorages", R_OBJS, 2, 30, false, STORAGE_KEYS },
  { "month", R_INT, -9007199254740991LL, 9007199254740991LL, true, NULL },
  { "billingMode", R_ENUM, 0, 0, true, BILLING },
  { "entrypoint", R_STR, 0, 2047, true, NULL },
  { "minCudaVersion", R_STR, 0, 32, true, NULL },
  { "autoRenew", R_BOOL, 0, 0, false, NULL },
  { "autoRenewMonth", R_INT, 0, 120, true, NULL },
};

static bool check_field(const cJSON *v, char *why, size_t whylen)
{
  const char *k = v->string;
  const struct rule *r = NULL;
  for (size_t i = 0; !r && i < sizeof RULES / sizeof RULES[0]; i++) {
    if (strcmp(k, RULES[i].key) == 0)
      r = &RULES[i];
  }
  if (!r)
    return fail(why, whylen, "unknown field %s", k);
  switch (r->kind) {
  case R_STR:
    return check_str(v, k, (size_t)r->min, (size_t)r->max, r->nullable, why, whylen);
  case R_INT:
    return check_int(v, k, r->min, r->max, r->nullable, why, whylen);
  case R_ENUM:
    return check_enum(v, k, r->names, r->nullable, why, whylen);
  case R_BOOL:
    return check_bool(v, k, why, whylen);
  case R_PORTS:
    return check_ports(v, why, whylen);
  case R_OBJS:
    return check_obj_array(v, k, (int)r->max, r->names, (size_t)r->min, why, whylen);
  }
  return false;
}

bool nrd_sim_check_create_request(const cJSON *req, char *why, size_t whylen)
{
  static const char *const required[] = { "productId", "imageUrl", "kind", NULL };
  static const char *const gpu_only[] = { "gpuNum", "rootfsSize", NULL };
  const cJSON *v;

  if (!cJSON_IsObject(req))
    return fail(why, whylen, "the request must be a JSON object");
  for (size_t i = 0; required[i]; i++) {
    if (!cJSON_GetObjectItemCaseSensitive(req, required[i]))
      return fail(why, whylen, "%s is required", required[i]);
  }
  const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "kind"));
  bool cpu = kind && strcmp(kind, "cpu") == 0;
  for (size_t i = 0; gpu_only[i]; i++) {
    /* A cpu create needs neither (they are still checked when sent: our
     * client sends them for every kind). */
    bool has = cJSON_GetObjectItemCaseSensitive(req, gpu_only[i]) != NULL;
    if (!cpu && !has)
      return fail(why, whylen, "%s is required", gpu_only[i]);
  }
  cJSON_ArrayForEach(v, req) {
    if (!v->string)
      return fail(why, whylen, "a member without a name");
    if (cpu && strcmp(v->string, "localStorageMountPoint") == 0) {
      if (!check_str(v, v->string, 0, 255, true, why, whylen))
        return false;
      continue;
    }
    if (cpu && strcmp(v->string, "envs") == 0 && cJSON_GetArraySize(v) > 30)
      return fail(why, whylen, "a cpu instance takes at most 30 envs");
    if (!check_field(v, why, whylen))
      return false;
  }
  if (why && whylen)
    why[0] = '\0';
  return true;
}
