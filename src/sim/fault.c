/* Fault bodies: retyped and trimmed JSON, and streamed answers (oversized,
 * deeply nested, dripped) that never hold a large body in memory. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "sim_internal.h"

static cJSON *retype(const cJSON *v)
{
  const cJSON *m;
  cJSON *o;
  char buf[32];
  int i = 0;

  if (cJSON_IsObject(v)) {
    o = nrd_json_object();
    cJSON_ArrayForEach(m, v) {
      cJSON_AddItemToObject(o, m->string, retype(m));
    }
    return o;
  }
  if (cJSON_IsArray(v)) {
    o = nrd_json_object();
    cJSON_ArrayForEach(m, v) {
      snprintf(buf, sizeof buf, "%d", i++);
      cJSON_AddItemToObject(o, buf, retype(m));
    }
    return o;
  }
  if (cJSON_IsString(v)) {
    char *end;
    double d = strtod(v->valuestring, &end);
    if (end == v->valuestring || *end)
      d = (double)strlen(v->valuestring);
    return nrd_json_checked(cJSON_CreateNumber(d));
  }
  if (cJSON_IsNumber(v)) {
    snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
    return nrd_json_checked(cJSON_CreateString(buf));
  }
  if (cJSON_IsBool(v))
    return nrd_json_checked(cJSON_CreateString(cJSON_IsTrue(v) ? "true" : "false"));
  return nrd_json_checked(cJSON_CreateNull());
}

cJSON *sim_retyped(const cJSON *body)
{
  const cJSON *m, *it;
  cJSON *out;

  if (!cJSON_IsObject(body))
    return retype(body);
  out = nrd_json_object();
  cJSON_ArrayForEach(m, body) {
    if (cJSON_IsArray(m)) {
      cJSON *list = nrd_json_array();
      cJSON_ArrayForEach(it, m) {
        cJSON_AddItemToArray(list, retype(it));
      }
      cJSON_AddItemToObject(out, m->string, list);
    } else {
      cJSON_AddItemToObject(out, m->string, retype(m));
    }
  }
  return out;
}

static void keep_only_ids(cJSON *obj)
{
  cJSON *m = obj->child;
  while (m) {
    cJSON *next = m->next;
    if (strcmp(m->string, "id") != 0 && strcmp(m->string, "Id") != 0)
      cJSON_Delete(cJSON_DetachItemViaPointer(obj, m));
    m = next;
  }
}

void sim_drop_fields(cJSON *body)
{
  cJSON *m, *it;

  if (!cJSON_IsObject(body))
    return;
  m = body->child;
  while (m) {
    cJSON *next = m->next;
    if (cJSON_IsArray(m)) {
      cJSON_ArrayForEach(it, m) {
        if (cJSON_IsObject(it))
          keep_only_ids(it);
      }
    } else {
      cJSON_Delete(cJSON_DetachItemViaPointer(body, m));
    }
    m = next;
  }
}

/* ---- streamed answers ---- */

static const char OVERSIZED_HEAD[] = "{\"instances\":[],\"total\":0,\"pad\":\"";
static const char OVERSIZED_TAIL[] = "\"}";

struct gen {
  size_t size;
};

static ssize_t oversized_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  const struct gen *g = cls;
  size_t head = sizeof OVERSIZED_HEAD - 1, tail = sizeof OVERSIZED_TAIL - 1;
  size_t n = 0;

  if (pos >= g->size)
    return MHD_CONTENT_READER_END_OF_STREAM;
  for (uint64_t i = pos; i < g->size && n < max; i++, n++) {
    if (i < head)
      buf[n] = OVERSIZED_HEAD[i];
    else if (i >= g->size - tail)
      buf[n] = OVERSIZED_TAIL[i - (g->size - tail)];
    else
      buf[n] = 'x';
  }
  return (ssize_t)n;
}

/* depth '[' then depth ']'; size holds the depth. */
static ssize_t deep_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  const struct gen *g = cls;
  size_t n = 0;

  if (pos >= 2 * (uint64_t)g->size)
    return MHD_CONTENT_READER_END_OF_STREAM;
  for (uint64_t i = pos; i < 2 * (uint64_t)g->size && n < max; i++, n++)
    buf[n] = i < g->size ? '[' : ']';
  return (ssize_t)n;
}

static struct MHD_Response *gen_response(uint64_t total, MHD_ContentReaderCallback read,
                                         size_t size)
{
  struct gen *g = nrd_xmalloc(sizeof *g);
  struct MHD_Response *r;

  g->size = size;
  r = MHD_create_response_from_callback(total, 64 * 1024, read, g, free);
  if (!r)
    free(g);
  return r;
}

struct MHD_Response *sim_oversized_response(size_t size)
{
  size_t min = sizeof OVERSIZED_HEAD - 1 + sizeof OVERSIZED_TAIL - 1;
  if (size < min)
    size = min;
  return gen_response(size, oversized_read, size);
}

struct MHD_Response *sim_deep_response(size_t depth)
{
  if (depth > SIZE_MAX / 2)
    depth = SIZE_MAX / 2;
  return gen_response(2 * (uint64_t)depth, deep_read, depth);
}

struct drip {
  struct nrd_sim *s;
  char *text;
  size_t len;
  unsigned delay_ms;
};

static ssize_t drip_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  struct drip *d = cls;
  if (pos >= d->len)
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (pos > 0)
    sim_sleep(d->s, d->delay_ms);
  if (atomic_load(&d->s->stopping))
    return MHD_CONTENT_READER_END_WITH_ERROR;
  buf[0] = d->text[pos];
  return 1;
}

static void drip_free(void *cls)
{
  struct drip *d = cls;
  free(d->text);
  free(d);
}

struct MHD_Response *sim_drip_response(struct nrd_sim *s, char *text, size_t len, unsigned delay_ms)
{
  struct drip *d = nrd_xmalloc(sizeof *d);
  struct MHD_Response *r;

  d->s = s;
  d->text = text;
  d->len = len;
  d->delay_ms = delay_ms;
  r = MHD_create_response_from_callback(len, 1, drip_read, d, drip_free);
  if (!r)
    drip_free(d);
  return r;
}
