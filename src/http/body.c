/* Request bodies, checked in one place: media type (415), JSON (400), an
 * object (400), and the exact set of fields a handler accepts (400 naming the
 * field). The size cap (413) is enforced while reading, in server.c. */

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

int http_body_parse(const char *content_type, const char *data, size_t len, cJSON **json,
                    struct http_reply *out)
{
  cJSON *obj;

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
      http_errorf(out, HTTP_E_INVALID_FIELD, "field '%s' must be %s", f->name,
                  type_name(f->type));
      return -1;
    }
  }
  return 0;
}
