/* An instance's list fields as the JSON text both store backends keep in a
 * column (store_lists.h). */

#include "store_lists.h"

#include <stddef.h>
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

/* One string member of a list's items: its JSON key and its place in the
 * item. */
struct list_member {
  const char *key;
  size_t off;
};

/* Where a list lives in struct nrd_instance, and its items' members. */
struct list_shape {
  size_t items, count, present;  /* offsets in struct nrd_instance */
  size_t elem;                   /* an item's size */
  struct list_member members[3]; /* key NULL: no more */
};

static const struct list_shape SHAPES[] = {
  [STORE_LIST_PORTS] = { offsetof(struct nrd_instance, ports),
                         offsetof(struct nrd_instance, n_ports),
                         offsetof(struct nrd_instance, ports_present),
                         sizeof(struct nrd_port),
                         { { "port", offsetof(struct nrd_port, port) },
                           { "type", offsetof(struct nrd_port, type) } } },
  [STORE_LIST_ENVS] = { offsetof(struct nrd_instance, envs),
                        offsetof(struct nrd_instance, n_envs),
                        offsetof(struct nrd_instance, envs_present),
                        sizeof(struct nrd_env),
                        { { "key", offsetof(struct nrd_env, key) },
                          { "value", offsetof(struct nrd_env, value) } } },
  [STORE_LIST_MOUNTS] = { offsetof(struct nrd_instance, mounts),
                          offsetof(struct nrd_instance, n_mounts),
                          offsetof(struct nrd_instance, mounts_present),
                          sizeof(struct nrd_mount),
                          { { "type", offsetof(struct nrd_mount, type) },
                            { "id", offsetof(struct nrd_mount, id) },
                            { "mountPath", offsetof(struct nrd_mount, mount_path) } } },
  [STORE_LIST_TOOLS] = { offsetof(struct nrd_instance, tools),
                         offsetof(struct nrd_instance, n_tools),
                         offsetof(struct nrd_instance, tools_present),
                         sizeof(struct nrd_tool),
                         { { "name", offsetof(struct nrd_tool, name) },
                           { "port", offsetof(struct nrd_tool, port) },
                           { "type", offsetof(struct nrd_tool, type) } } },
};

/* How many members the items of a shape have. */
static size_t members_of(const struct list_shape *sh)
{
  size_t n = 0;
  while (n < sizeof sh->members / sizeof sh->members[0] && sh->members[n].key)
    n++;
  return n;
}

const char *store_list_json(const struct nrd_instance *in, enum store_list which, struct nrd_buf *b)
{
  const struct list_shape *sh = &SHAPES[which];
  const char *base = (const char *)in;
  if (!*(const bool *)(base + sh->present))
    return NULL;
  const char *items = *(char *const *)(base + sh->items);
  size_t n = *(const size_t *)(base + sh->count), n_members = members_of(sh);
  nrd_buf_reset(b);
  nrd_buf_append(b, "[", 1);
  for (size_t i = 0; i < n; i++) {
    bool first = true;
    nrd_buf_puts(b, i ? ",{" : "{");
    for (size_t m = 0; m < n_members; m++)
      put_field(b, &first, sh->members[m].key,
                *(char *const *)(items + i * sh->elem + sh->members[m].off));
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

bool store_list_read(const char *text, enum store_list which, struct nrd_instance *out)
{
  const struct list_shape *sh = &SHAPES[which];
  char *base = (char *)out;
  size_t n, n_members = members_of(sh);
  cJSON *arr = parse_list(text, &n);
  if (!arr)
    return false;
  char *items = n ? nrd_xcalloc(n, sh->elem) : NULL;
  *(bool *)(base + sh->present) = true;
  *(void **)(base + sh->items) = items;
  *(size_t *)(base + sh->count) = n;
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    for (size_t m = 0; m < n_members; m++)
      *(char **)(items + i * sh->elem + sh->members[m].off) =
          nrd_xstrdup(nrd_json_str(item, sh->members[m].key));
    i++;
  }
  cJSON_Delete(arr);
  return true;
}
