/* Request bodies, checked in one place: media type (415), JSON (400), an
 * object (400), no member repeated at any depth (400 DUPLICATE_FIELD naming
 * it: parsers disagree on which of two wins), and the exact set of fields a
 * handler accepts (400 naming the field). The size cap (413) is enforced
 * while reading, in server.c. */

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "nrd/json.h"
#include "nrd/util.h"

#define JSON_TYPE "application/json"

bool http_content_type_ok(const char *content_type)
{
  const char *p = content_type;
  size_t n = sizeof JSON_TYPE - 1;

  if (!p)
    return true;
  while (*p == ' ' || *p == '\t')
    p++;
  if (strncasecmp(p, JSON_TYPE, n) != 0)
    return false;
  p += n;
  while (*p == ' ' || *p == '\t')
    p++;
  return *p == '\0' || *p == ';';
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first member name that an object holds twice, or NULL. */
static const char *object_duplicate(const cJSON *obj)
{
  const cJSON *item;
  const char **names;
  const char *dup = NULL;
  size_t n = 0;

  cJSON_ArrayForEach(item, obj)
    n++;
  if (n < 2)
    return NULL;
  names = nrd_xcalloc(n, sizeof *names);
  n = 0;
  cJSON_ArrayForEach(item, obj)
    names[n++] = item->string ? item->string : "";
  qsort(names, n, sizeof *names, cmp_names);
  for (size_t i = 1; i < n && !dup; i++)
    if (strcmp(names[i - 1], names[i]) == 0)
      dup = names[i];
  free(names);
  return dup;
}

/* Walks the tree; on the first repeated member, path gets its place
 * ("a.b[2].c") and true is returned. */
static bool find_duplicate(const cJSON *node, struct nrd_buf *path)
{
  const cJSON *item;
  size_t mark = path->len;
  size_t index = 0;

  if (cJSON_IsObject(node)) {
    const char *dup = object_duplicate(node);
    if (dup) {
      nrd_buf_printf(path, "%s%.64s", path->len ? "." : "", dup);
      return true;
    }
  } else if (!cJSON_IsArray(node)) {
    return false;
  }
  cJSON_ArrayForEach(item, node) {
    if (cJSON_IsObject(node))
      nrd_buf_printf(path, "%s%.64s", path->len ? "." : "", item->string ? item->string : "");
    else
      nrd_buf_printf(path, "[%zu]", index);
    index++;
    if (find_duplicate(item, path))
      return true;
    path->len = mark;
    if (path->data)
      path->data[mark] = '\0';
  }
  return false;
}

int http_body_parse(const char *content_type, const char *data, size_t len, cJSON **json,
                    struct http_reply *out)
{
  cJSON *obj;
  struct nrd_buf path;

  *json = NULL;
  if (len == 0)
    return 0;
  if (!http_content_type_ok(content_type)) {
    http_error(out, HTTP_E_UNSUPPORTED_MEDIA_TYPE,
               "unsupported Content-Type; send the body as application/json", NULL);
    return -1;
  }
  obj = nrd_json_parse(data, len);
  if (!obj) {
    http_error(out, HTTP_E_INVALID_JSON, NULL, NULL);
    return -1;
  }
  if (!cJSON_IsObject(obj)) {
    cJSON_Delete(obj);
    http_error(out, HTTP_E_INVALID_BODY, NULL, NULL);
    return -1;
  }
  nrd_buf_init(&path);
  if (find_duplicate(obj, &path)) {
    http_errorf(out, HTTP_E_DUPLICATE_FIELD, "field '%s' appears more than once",
                path.data ? path.data : "");
    nrd_buf_cleanup(&path);
    cJSON_Delete(obj);
    return -1;
  }
  nrd_buf_cleanup(&path);
  *json = obj;
  return 0;
}

static const char *type_name(enum http_field_type t)
{
  return t == HTTP_FIELD_BOOL ? "a boolean" : "a string";
}

static bool type_ok(const cJSON *item, enum http_field_type t)
{
  return t == HTTP_FIELD_BOOL ? cJSON_IsBool(item) : cJSON_IsString(item);
}

int http_body_fields(const cJSON *obj, const struct http_field *fields, size_t n,
                     struct http_reply *out)
{
  const cJSON *item;

  cJSON_ArrayForEach(item, obj) {
    const struct http_field *f = NULL;
    for (size_t i = 0; i < n; i++) {
      if (item->string && strcmp(item->string, fields[i].name) == 0)
        f = &fields[i];
    }
    if (!f) {
      struct nrd_buf allowed;
      nrd_buf_init(&allowed);
      for (size_t i = 0; i < n; i++)
        nrd_buf_printf(&allowed, "%s%s", i ? ", " : "", fields[i].name);
      http_errorf(out, HTTP_E_UNKNOWN_FIELD, "unknown field '%.64s'; allowed: %s",
                  item->string ? item->string : "", n ? allowed.data : "none");
      nrd_buf_cleanup(&allowed);
      return -1;
    }
    if (!type_ok(item, f->type)) {
      http_errorf(out, HTTP_E_INVALID_FIELD, "field '%s' must be %s", f->name, type_name(f->type));
      return -1;
    }
  }
  return 0;
}
