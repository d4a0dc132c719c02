/* An instance's list fields as the JSON text both store backends keep in a
 * column (store_lists.h). */

#include "store_lists.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"

/* ---- lists as JSON text ---- */

/* Appends "key":"value" (with a leading comma unless first); NULL is left out. */
static void put_field(struct nrd_buf *b, bool *first, const char *key, const char *value)
{
  if (!value)
    return;
  if (!*first)
    nrd_buf_append(b, ",", 1);
  *first = false;
  nrd_buf_json_str(b, key);
  nrd_buf_append(b, ":", 1);
  nrd_buf_json_str(b, value);
}

const char *store_list_ports_json(const struct nrd_instance *in, struct nrd_buf *b)
{
  if (!in->ports_present)
    return NULL;
  nrd_buf_reset(b);
  nrd_buf_append(b, "[", 1);
  for (size_t i = 0; i < in->n_ports; i++) {
    bool first = true;
    nrd_buf_puts(b, i ? ",{" : "{");
    put_field(b, &first, "port", in->ports[i].port);
    put_field(b, &first, "type", in->ports[i].type);
    nrd_buf_append(b, "}", 1);
  }
  nrd_buf_append(b, "]", 1);
  return b->data;
}

const char *store_list_envs_json(const struct nrd_instance *in, struct nrd_buf *b)
{
  if (!in->envs_present)
    return NULL;
  nrd_buf_reset(b);
  nrd_buf_append(b, "[", 1);
  for (size_t i = 0; i < in->n_envs; i++) {
    bool first = true;
    nrd_buf_puts(b, i ? ",{" : "{");
    put_field(b, &first, "key", in->envs[i].key);
    put_field(b, &first, "value", in->envs[i].value);
    nrd_buf_append(b, "}", 1);
  }
  nrd_buf_append(b, "]", 1);
  return b->data;
}

const char *store_list_mounts_json(const struct nrd_instance *in, struct nrd_buf *b)
{
  if (!in->mounts_present)
    return NULL;
  nrd_buf_reset(b);
  nrd_buf_append(b, "[", 1);
  for (size_t i = 0; i < in->n_mounts; i++) {
    bool first = true;
    nrd_buf_puts(b, i ? ",{" : "{");
    put_field(b, &first, "type", in->mounts[i].type);
    put_field(b, &first, "id", in->mounts[i].id);
    put_field(b, &first, "mountPath", in->mounts[i].mount_path);
    nrd_buf_append(b, "}", 1);
  }
  nrd_buf_append(b, "]", 1);
  return b->data;
}

const char *store_list_tools_json(const struct nrd_instance *in, struct nrd_buf *b)
{
  if (!in->tools_present)
    return NULL;
  nrd_buf_reset(b);
  nrd_buf_append(b, "[", 1);
  for (size_t i = 0; i < in->n_tools; i++) {
    bool first = true;
    nrd_buf_puts(b, i ? ",{" : "{");
    put_field(b, &first, "name", in->tools[i].name);
    put_field(b, &first, "port", in->tools[i].port);
    put_field(b, &first, "type", in->tools[i].type);
    nrd_buf_append(b, "}", 1);
  }
  nrd_buf_append(b, "]", 1);
  return b->data;
}

/* Parses a stored list column: an array of objects. n gets its size. NULL
 * (with n 0) for a column that is not a JSON array: a broken database. */
static cJSON *parse_list(const char *text, size_t *n)
{
  *n = 0;
  cJSON *arr = nrd_json_parse(text, strlen(text));
  if (!cJSON_IsArray(arr)) {
    cJSON_Delete(arr);
    return NULL;
  }
  *n = (size_t)cJSON_GetArraySize(arr);
  return arr;
}

bool store_list_read_ports(const char *text, struct nrd_instance *out)
{
  size_t n;
  cJSON *arr = parse_list(text, &n);
  if (!arr)
    return false;
  out->ports_present = true;
  out->ports = n ? nrd_xcalloc(n, sizeof *out->ports) : NULL;
  out->n_ports = n;
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    out->ports[i].port = nrd_xstrdup(nrd_json_str(item, "port"));
    out->ports[i].type = nrd_xstrdup(nrd_json_str(item, "type"));
    i++;
  }
  cJSON_Delete(arr);
  return true;
}

bool store_list_read_envs(const char *text, struct nrd_instance *out)
{
  size_t n;
  cJSON *arr = parse_list(text, &n);
  if (!arr)
    return false;
  out->envs_present = true;
  out->envs = n ? nrd_xcalloc(n, sizeof *out->envs) : NULL;
  out->n_envs = n;
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    out->envs[i].key = nrd_xstrdup(nrd_json_str(item, "key"));
    out->envs[i].value = nrd_xstrdup(nrd_json_str(item, "value"));
    i++;
  }
  cJSON_Delete(arr);
  return true;
}

bool store_list_read_mounts(const char *text, struct nrd_instance *out)
{
  size_t n;
  cJSON *arr = parse_list(text, &n);
  if (!arr)
    return false;
  out->mounts_present = true;
  out->mounts = n ? nrd_xcalloc(n, sizeof *out->mounts) : NULL;
  out->n_mounts = n;
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    out->mounts[i].type = nrd_xstrdup(nrd_json_str(item, "type"));
    out->mounts[i].id = nrd_xstrdup(nrd_json_str(item, "id"));
    out->mounts[i].mount_path = nrd_xstrdup(nrd_json_str(item, "mountPath"));
    i++;
  }
  cJSON_Delete(arr);
  return true;
}

bool store_list_read_tools(const char *text, struct nrd_instance *out)
{
  size_t n;
  cJSON *arr = parse_list(text, &n);
  if (!arr)
    return false;
  out->tools_present = true;
  out->tools = n ? nrd_xcalloc(n, sizeof *out->tools) : NULL;
  out->n_tools = n;
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    out->tools[i].name = nrd_xstrdup(nrd_json_str(item, "name"));
    out->tools[i].port = nrd_xstrdup(nrd_json_str(item, "port"));
    out->tools[i].type = nrd_xstrdup(nrd_json_str(item, "type"));
    i++;
  }
  cJSON_Delete(arr);
  return true;
}
