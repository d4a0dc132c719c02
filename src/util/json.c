/* Depth-checked parsing and type-checked readers over untrusted cJSON trees. */

#include "nrd/json.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

/* True when the bracket nesting of buf stays within NRD_JSON_MAX_DEPTH.
 * Brackets inside strings (including escaped quotes) do not count. */
static bool depth_ok(const char *buf, size_t len)
{
  int depth = 0;
  bool in_str = false;
  for (size_t i = 0; i < len; i++) {
    char c = buf[i];
    if (in_str) {
      if (c == '\\')
        i++; /* skip the escaped character, whatever it is */
      else if (c == '"')
        in_str = false;
      continue;
    }
    if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > NRD_JSON_MAX_DEPTH)
        return false;
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return true;
}

/* cJSON stops after the first value and ignores what follows; a document is
 * one value, so anything but whitespace after it is refused. */
cJSON *nrd_json_parse(const char *buf, size_t len)
{
  const char *end = NULL;
  cJSON *root;

  if (!buf || !depth_ok(buf, len))
    return NULL;
  root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
  if (!root)
    return NULL;
  for (; end < buf + len; end++) {
    if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
      cJSON_Delete(root);
      return NULL;
    }
  }
  return root;
}

static const cJSON *get(const cJSON *obj, const char *key)
{
  if (!obj || !key || !cJSON_IsObject(obj))
    return NULL;
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

const char *nrd_json_str(const cJSON *obj, const char *key)
{
  const cJSON *it = get(obj, key);
  if (!cJSON_IsString(it) || !it->valuestring)
    return NULL;
  return it->valuestring;
}

const char *nrd_json_str_nonempty(const cJSON *obj, const char *key)
{
  const char *s = nrd_json_str(obj, key);
  return (s && *s) ? s : NULL;
}

char *nrd_json_number_text(double v)
{
  char tmp[64];
  if (!isfinite(v))
    return NULL;
  if (v == floor(v) && fabs(v) < 9007199254740992.0 && !(v == 0 && signbit(v))) {
    /* What "%.0f" prints, without printf's floating-point path (ports and
     * sizes of every listed instance come through here). */
    uint64_t u = (uint64_t)fabs(v);
    char *p = tmp + sizeof tmp;
    *--p = '\0';
    do {
      *--p = (char)('0' + u % 10);
      u /= 10;
    } while (u);
    if (v < 0)
      *--p = '-';
    return nrd_xstrdup(p);
  }
  snprintf(tmp, sizeof tmp, "%.15g", v);
  if (strtod(tmp, NULL) != v)
    snprintf(tmp, sizeof tmp, "%.17g", v);
  return nrd_xstrdup(tmp);
}

char *nrd_json_scalar_text(const cJSON *obj, const char *key)
{
  const cJSON *it = get(obj, key);
  if (cJSON_IsString(it) && it->valuestring)
    return nrd_xstrdup(it->valuestring);
  if (cJSON_IsNumber(it))
    return nrd_json_number_text(it->valuedouble);
  return NULL;
}

bool nrd_json_i64(const cJSON *obj, const char *key, int64_t *out)
{
  const cJSON *it = get(obj, key);
  if (cJSON_IsString(it) && it->valuestring)
    return nrd_parse_i64(it->valuestring, INT64_MIN, INT64_MAX, out);
  if (!cJSON_IsNumber(it))
    return false;
  double v = it->valuedouble;
  /* 2^63 is exactly representable; anything at or beyond it does not fit. */
  if (!isfinite(v) || v != floor(v) || v >= 9223372036854775808.0 || v < -9223372036854775808.0)
    return false;
  *out = (int64_t)v;
  return true;
}

bool nrd_json_double(const cJSON *obj, const char *key, double *out)
{
  const cJSON *it = get(obj, key);
  if (cJSON_IsString(it) && it->valuestring)
    return nrd_parse_double(it->valuestring, -DBL_MAX, DBL_MAX, out);
  if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
    return false;
  *out = it->valuedouble;
  return true;
}

bool nrd_json_bool(const cJSON *obj, const char *key, bool *out)
{
  const cJSON *it = get(obj, key);
  if (!cJSON_IsBool(it))
    return false;
  *out = cJSON_IsTrue(it);
  return true;
}

cJSON *nrd_json_checked(cJSON *item)
{
  if (!item) {
    fprintf(stderr, "fatal: out of memory building JSON\n");
    abort();
  }
  return item;
}

cJSON *nrd_json_object(void)
{
  return nrd_json_checked(cJSON_CreateObject());
}

cJSON *nrd_json_array(void)
{
  return nrd_json_checked(cJSON_CreateArray());
}

char *nrd_json_print(const cJSON *item)
{
  char *printed = cJSON_PrintUnformatted(item);
  if (!printed) {
    fprintf(stderr, "fatal: cJSON_PrintUnformatted failed\n");
    abort();
  }
  /* Copied so the caller frees with free() whatever allocator cJSON uses. */
  char *copy = nrd_xstrdup(printed);
  cJSON_free(printed);
  return copy;
}

static void added(const cJSON *obj, const cJSON *item)
{
  if (obj && !item) {
    fprintf(stderr, "fatal: cJSON allocation failed\n");
    abort();
  }
}

void nrd_json_add_str(cJSON *obj, const char *key, const char *s)
{
  if (!s)
    return;
  added(obj, cJSON_AddStringToObject(obj, key, s));
}

void nrd_json_add_num(cJSON *obj, const char *key, double v)
{
  added(obj, cJSON_AddNumberToObject(obj, key, v));
}

void nrd_json_add_bool(cJSON *obj, const char *key, bool v)
{
  added(obj, cJSON_AddBoolToObject(obj, key, v));
}
