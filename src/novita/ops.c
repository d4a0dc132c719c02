/* Typed Novita operations: URLs, paging by DESIGN.md's stop rule, and the
 * decoding of each answer. Everything goes through nrd_nv_transport. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "transport.h"

/* A listing longer than this many pages is junk (a server that never stops
 * handing out new ids). At 10 per page that is still a million items. */
#define NV_MAX_PAGES 100000u

/* An answer we could not use is Novita's fault: one warn line. */
static void log_unusable(const char *endpoint, const struct nrd_nv_error *err)
{
  LOG_WARN_AT(NRD_FAULT_NOVITA, "novita answer unusable", "endpoint", endpoint, "message",
              err->message);
}

/* A 2xx answer whose body could not be read: NRD_NV_BAD_RESPONSE, err
 * saying so, one warn line. */
static enum nrd_nv_rc unusable_answer(const char *endpoint, int status, const struct nrd_buf *resp,
                                      struct nrd_nv_error *err)
{
  nrd_nv_set_error(err, status, NULL, "unusable %s answer (HTTP %d, %zu bytes)", endpoint, status,
                   resp->len);
  log_unusable(endpoint, err);
  return NRD_NV_BAD_RESPONSE;
}

/* ---- URLs ---- */

/* Appends s percent-encoded (everything but RFC 3986 unreserved bytes). */
static void url_escape(struct nrd_buf *b, const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                 *p == '-' || *p == '.' || *p == '_' || *p == '~';
    if (plain) {
      nrd_buf_append(b, p, 1);
    } else {
      char enc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
      nrd_buf_append(b, enc, 3);
    }
  }
}

/* ---- a set of ids (open addressing, grows at half full) ---- */

struct idset {
  char **slots;
  size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ULL;
  }
  return h;
}

static void idset_init(struct idset *s)
{
  s->cap = 64;
  s->n = 0;
  s->slots = nrd_xcalloc(s->cap, sizeof *s->slots);
}

static void idset_cleanup(struct idset *s)
{
  for (size_t i = 0; i < s->cap; i++)
    free(s->slots[i]);
  free(s->slots);
  memset(s, 0, sizeof *s);
}

/* Places an owned string into slots (no duplicate check). */
static void idset_place(char **slots, size_t cap, char *id)
{
  size_t i = (size_t)(hash_str(id) & (cap - 1));
  while (slots[i])
    i = (i + 1) & (cap - 1);
  slots[i] = id;
}

/* true when id was new (a copy is kept). */
static bool idset_add(struct idset *s, const char *id)
{
  size_t i = (size_t)(hash_str(id) & (s->cap - 1));
  for (; s->slots[i]; i = (i + 1) & (s->cap - 1)) {
    if (strcmp(s->slots[i], id) == 0)
      return false;
  }
  if ((s->n + 1) * 2 > s->cap) {
    size_t cap = s->cap * 2;
    char **slots = nrd_xcalloc(cap, sizeof *slots);
    for (size_t k = 0; k < s->cap; k++) {
      if (s->slots[k])
        idset_place(slots, cap, s->slots[k]);
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
  }
  idset_place(s->slots, s->cap, nrd_xstrdup(id));
  s->n++;
  return true;
}

/* ---- paging ---- */

/* Fetches one page: *n_items decoded items, *n_new ids not seen before,
 * *total as the page said (-1: unknown), *stop when the consumer is done. */
typedef enum nrd_nv_rc (*page_fn)(void *ud, unsigned page, size_t *n_items, size_t *n_new,
                                  int64_t *total, bool *stop, struct nrd_nv_error *err);

/* DESIGN.md's stop rule: from page 1, go on until `total` distinct ids, an
 * empty page, or a page with no new id (a short page does not stop). When
 * that leaves fewer than `total`, or when the answers carry no `total`
 * (Novita's documented example has none), the server may count from 0: ask
 * page 0 once and, if it brings new ids, go on from there. */
static enum nrd_nv_rc page_all(page_fn fetch, void *ud, const struct idset *seen,
                               struct nrd_nv_error *err)
{
  unsigned page = 1, pages = 0;
  bool zero_asked = false;
  int64_t total = -1;

  for (;;) {
    size_t n_items = 0, n_new = 0;
    int64_t t = -1;
    bool stop = false;
    if (++pages > NV_MAX_PAGES) {
      nrd_nv_set_error(err, 200, NULL, "listing did not end after %u pages", NV_MAX_PAGES);
      return NRD_NV_BAD_RESPONSE;
    }
    enum nrd_nv_rc rc = fetch(ud, page, &n_items, &n_new, &t, &stop, err);
    if (rc == NRD_NV_FINAL && page == 0) {
      /* A 1-based server may refuse page 0: what we hold is the listing. */
      memset(err, 0, sizeof *err);
      return NRD_NV_OK;
    }
    if (rc != NRD_NV_OK || stop)
      return rc;
    if (page == 0)
      zero_asked = true;
    if (t >= 0)
      total = t;
    bool have_all = total >= 0 && (int64_t)seen->n >= total;
    if (n_items > 0 && n_new > 0 && !have_all) {
      page++;
      continue;
    }
    /* Without total, pages may count from 0 or 1: page 0 is asked too
     * (repeated ids are dropped), even after an empty page 1, which a
     * 0-based server gives a fleet of one page. */
    if (zero_asked || have_all)
      return NRD_NV_OK;
    page = 0;
  }
}

/* ---- instances ---- */

/* Instances handed to the sink at a time: a page is never held decoded in
 * full (its size: BENCHMARKS.md, "Figures behind the code"), and a consumer
 * on another thread starts on a page's first run while the rest is read. */
#define NV_INSTANCE_RUN 64u

struct inst_pager {
  struct nrd_novita_conn *c;
  const char *name;
  const struct nrd_nv_instance_sink *sink;
  struct idset seen;
  size_t page_items, page_new; /* of the page being read */
  struct nrd_buf url, body;
};

/* One run of a page: its new instances move to the front, in order, and go
 * to the sink. */
static int inst_run(void *ud, struct nrd_instance *items, size_t n)
{
  struct inst_pager *pg = ud;
  size_t fresh = 0;
  for (size_t i = 0; i < n; i++) {
    if (items[i].id && idset_add(&pg->seen, items[i].id)) {
      struct nrd_instance tmp = items[i];
      items[i] = items[fresh];
      items[fresh++] = tmp;
    }
  }
  pg->page_items += n;
  pg->page_new += fresh;
  return fresh > 0 ? pg->sink->items(pg->sink->ud, items, fresh) : 0;
}

static enum nrd_nv_rc inst_page(void *ud, unsigned page, size_t *n_items, size_t *n_new,
                                int64_t *total, bool *stop, struct nrd_nv_error *err)
{
  struct inst_pager *pg = ud;
  struct nrd_novita *nv = pg->c->nv;
  int status;

  nrd_buf_reset(&pg->url);
  nrd_buf_printf(&pg->url, "%s/v1/gpu/instances?pageSize=%u&pageNum=%u", nv->base_url,
                 nv->page_size, page);
  if (pg->name) {
    nrd_buf_puts(&pg->url, "&name=");
    url_escape(&pg->url, pg->name);
  }
  enum nrd_nv_rc rc = nrd_nv_transport(pg->c, NRD_EP_LIST_INSTANCES, "GET", pg->url.data, NULL,
                                       false, true, &pg->body, &status, err);
  if (rc != NRD_NV_OK)
    return rc;
  pg->page_items = pg->page_new = 0;
  int drc = nrd_nv_decode_instance_runs(pg->body.data, pg->body.len, NV_INSTANCE_RUN, inst_run, pg,
                                        total);
  if (pg->sink->page_end)
    pg->sink->page_end(pg->sink->ud, drc == 0);
  if (drc < 0) {
    nrd_nv_set_error(err, status, NULL, "unusable instances page %u (HTTP %d, %zu bytes)", page,
                     status, pg->body.len);
    log_unusable("list_instances", err);
    return NRD_NV_BAD_RESPONSE;
  }
  *stop = drc > 0;
  *n_items = pg->page_items;
  *n_new = pg->page_new;
  return NRD_NV_OK;
}

enum nrd_nv_rc nrd_nv_list_instances(struct nrd_novita_conn *c, const char *name,
                                     const struct nrd_nv_instance_sink *sink, size_t *total_seen,
                                     struct nrd_nv_error *err)
{
  struct inst_pager pg = { .c = c, .name = name, .sink = sink };
  idset_init(&pg.seen);
  nrd_buf_init(&pg.url);
  nrd_buf_init(&pg.body);
  memset(err, 0, sizeof *err);

  enum nrd_nv_rc rc = page_all(inst_page, &pg, &pg.seen, err);
  if (total_seen)
    *total_seen = pg.seen.n;

  idset_cleanup(&pg.seen);
  nrd_buf_cleanup(&pg.url);
  nrd_buf_cleanup(&pg.body);
  return rc;
}

/* ---- jobs ---- */

struct job_pager {
  struct nrd_novita_conn *c;
  const char *type, *state;
  int64_t start_s, end_s;
  struct idset seen;
  struct nrd_job *jobs;
  size_t n, cap;
  struct nrd_buf url, body;
};

static enum nrd_nv_rc job_page(void *ud, unsigned page, size_t *n_items, size_t *n_new,
                               int64_t *total, bool *stop, struct nrd_nv_error *err)
{
  struct job_pager *pg = ud;
  struct nrd_novita *nv = pg->c->nv;
  bool internal = nv->internal_base_url != NULL;
  struct nrd_job *items = NULL;
  size_t n = 0, fresh = 0;
  int status;

  nrd_buf_reset(&pg->url);
  if (internal)
    nrd_buf_printf(&pg->url, "%s/api/v1/jobs?type=", nv->internal_base_url);
  else
    nrd_buf_printf(&pg->url, "%s/v1/jobs?type=", nv->base_url);
  url_escape(&pg->url, pg->type ? pg->type : "");
  if (pg->state) {
    nrd_buf_puts(&pg->url, "&state=");
    url_escape(&pg->url, pg->state);
  }
  nrd_buf_printf(&pg->url, "&startTime=%lld&endTime=%lld&pageNum=%u&pageSize=%u",
                 (long long)pg->start_s, (long long)pg->end_s, page, nv->page_size);
  enum nrd_nv_rc rc = nrd_nv_transport(pg->c, NRD_EP_LIST_JOBS, "GET", pg->url.data, NULL, internal,
                                       true, &pg->body, &status, err);
  if (rc != NRD_NV_OK)
    return rc;
  if (nrd_nv_decode_jobs(pg->body.data, pg->body.len, &items, &n, total) != 0) {
    nrd_nv_set_error(err, status, NULL, "unusable jobs page %u (HTTP %d, %zu bytes)", page, status,
                     pg->body.len);
    log_unusable("list_jobs", err);
    return NRD_NV_BAD_RESPONSE;
  }
  for (size_t i = 0; i < n; i++) {
    if (!items[i].id || !idset_add(&pg->seen, items[i].id)) {
      nrd_job_cleanup(&items[i]);
      continue;
    }
    if (pg->n == pg->cap) {
      pg->cap = pg->cap ? pg->cap * 2 : 64;
      pg->jobs = nrd_xrealloc(pg->jobs, pg->cap * sizeof *pg->jobs);
    }
    pg->jobs[pg->n++] = items[i]; /* moved: the strings now belong to pg->jobs */
    fresh++;
  }
  free(items);
  *n_items = n;
  *n_new = fresh;
  *stop = false;
  return NRD_NV_OK;
}

enum nrd_nv_rc nrd_nv_list_jobs(struct nrd_novita_conn *c, const char *type, int64_t start_s,
                                int64_t end_s, struct nrd_job **jobs, size_t *n,
                                struct nrd_nv_error *err)
{
  return nrd_nv_list_jobs_in_state(c, type, NULL, start_s, end_s, jobs, n, err);
}

enum nrd_nv_rc nrd_nv_list_jobs_in_state(struct nrd_novita_conn *c, const char *type,
                                         const char *state, int64_t start_s, int64_t end_s,
                                         struct nrd_job **jobs, size_t *n, struct nrd_nv_error *err)
{
  struct job_pager pg = {
    .c = c, .type = type, .state = state, .start_s = start_s, .end_s = end_s
  };
  idset_init(&pg.seen);
  nrd_buf_init(&pg.url);
  nrd_buf_init(&pg.body);
  memset(err, 0, sizeof *err);
  *jobs = NULL;
  *n = 0;

  enum nrd_nv_rc rc = page_all(job_page, &pg, &pg.seen, err);
  if (rc == NRD_NV_OK) {
    *jobs = pg.jobs;
    *n = pg.n;
  } else {
    nrd_jobs_free(pg.jobs, pg.n);
  }
  idset_cleanup(&pg.seen);
  nrd_buf_cleanup(&pg.url);
  nrd_buf_cleanup(&pg.body);
  return rc;
}

/* ---- delete, create, look-up, products ---- */

enum nrd_nv_rc nrd_nv_delete_instance(struct nrd_novita_conn *c, const char *instance_id,
                                      struct nrd_nv_error *err)
{
  struct nrd_buf url, req, resp;
  int status;
  nrd_buf_init(&url);
  nrd_buf_init(&req);
  nrd_buf_init(&resp);
  nrd_buf_printf(&url, "%s/v1/gpu/instance/delete", c->nv->base_url);
  nrd_buf_puts(&req, "{\"instanceId\":");
  nrd_buf_json_str(&req, instance_id ? instance_id : "");
  nrd_buf_puts(&req, "}");

  enum nrd_nv_rc rc = nrd_nv_transport(c, NRD_EP_DELETE, "POST", url.data, req.data, false, true,
                                       &resp, &status, err);
  nrd_buf_cleanup(&url);
  nrd_buf_cleanup(&req);
  nrd_buf_cleanup(&resp);
  return rc;
}

enum nrd_nv_rc nrd_nv_create_instance(struct nrd_novita_conn *c, const cJSON *request,
                                      char **new_id, struct nrd_nv_error *err)
{
  struct nrd_buf url, resp;
  int status;
  cJSON *root = NULL;
  char *req = nrd_json_print(request);
  *new_id = NULL;
  nrd_buf_init(&url);
  nrd_buf_init(&resp);
  nrd_buf_printf(&url, "%s/v1/gpu/instance/create", c->nv->base_url);

  /* Never retried: create has no idempotency key. */
  enum nrd_nv_rc rc =
      nrd_nv_transport(c, NRD_EP_CREATE, "POST", url.data, req, false, false, &resp, &status, err);
  if (rc != NRD_NV_OK)
    goto out;
  root = nrd_json_parse(resp.data, resp.len);
  char *id = nrd_json_scalar_text(root, "id");
  if (!id || !*id) {
    free(id);
    /* Novita said yes but gave no id: the instance may well exist. */
    nrd_nv_set_error(err, status, NULL, "create answered HTTP %d without an id", status);
    log_unusable("create", err);
    rc = NRD_NV_AMBIGUOUS;
    goto out;
  }
  *new_id = id;
out:
  cJSON_Delete(root);
  memset(req, 0, strlen(req)); /* it carries env values */
  free(req);
  nrd_buf_cleanup(&url);
  nrd_buf_cleanup(&resp);
  return rc;
}

struct name_match {
  const char *name;
  char *id;
};

static int match_name(void *ud, struct nrd_instance *items, size_t n)
{
  struct name_match *m = ud;
  for (size_t i = 0; i < n; i++) {
    if (items[i].name && strcmp(items[i].name, m->name) == 0) {
      m->id = nrd_xstrdup(items[i].id);
      return 1;
    }
  }
  return 0;
}

enum nrd_nv_rc nrd_nv_find_by_name(struct nrd_novita_conn *c, const char *name, char **found_id,
                                   struct nrd_nv_error *err)
{
  struct name_match m = { .name = name ? name : "" };
  *found_id = NULL;
  const struct nrd_nv_instance_sink sink = { .items = match_name, .ud = &m };
  enum nrd_nv_rc rc = nrd_nv_list_instances(c, m.name, &sink, NULL, err);
  if (rc == NRD_NV_OK)
    *found_id = m.id;
  else
    free(m.id);
  return rc;
}

/* statusError {state, message} of a get answer, into fixed buffers. */
static void status_error(const cJSON *root, struct nrd_nv_instance_state *out)
{
  const cJSON *se = cJSON_GetObjectItemCaseSensitive(root, "statusError");
  const char *state = nrd_json_str(se, "state"), *message = nrd_json_str(se, "message");
  snprintf(out->error_state, sizeof out->error_state, "%s", state ? state : "");
  snprintf(out->error_message, sizeof out->error_message, "%s", message ? message : "");
}

/* GET /v1/gpu/instance?instanceId=, parsed (NULL when not JSON) and handed
 * to read; an answer read refuses is unusable. */
static enum nrd_nv_rc fetch_instance(struct nrd_novita_conn *c, const char *instance_id,
                                     bool (*read)(const cJSON *root, void *out), void *out,
                                     struct nrd_nv_error *err)
{
  struct nrd_buf url, resp;
  int status = 0;
  nrd_buf_init(&url);
  nrd_buf_init(&resp);
  nrd_buf_printf(&url, "%s/v1/gpu/instance?instanceId=", c->nv->base_url);
  url_escape(&url, instance_id ? instance_id : "");
  enum nrd_nv_rc rc = nrd_nv_transport(c, NRD_EP_GET_INSTANCE, "GET", url.data, NULL, false, true,
                                       &resp, &status, err);
  cJSON *root = rc == NRD_NV_OK ? nrd_json_parse(resp.data, resp.len) : NULL;
  if (rc == NRD_NV_OK && !read(root, out)) {
    nrd_nv_set_error(err, status, NULL, "unusable instance answer (HTTP %d, %zu bytes)", status,
                     resp.len);
    log_unusable("get_instance", err);
    rc = NRD_NV_BAD_RESPONSE;
  }
  cJSON_Delete(root);
  nrd_buf_cleanup(&url);
  nrd_buf_cleanup(&resp);
  return rc;
}

static bool read_state(const cJSON *root, void *state)
{
  struct nrd_nv_instance_state *out = state;
  const char *st = nrd_json_str(root, "status");
  if (!st)
    return false;
  snprintf(out->status, sizeof out->status, "%s", st);
  status_error(root, out);
  return true;
}

enum nrd_nv_rc nrd_nv_get_instance_state(struct nrd_novita_conn *c, const char *instance_id,
                                         struct nrd_nv_instance_state *out,
                                         struct nrd_nv_error *err)
{
  memset(out, 0, sizeof *out);
  return fetch_instance(c, instance_id, read_state, out, err);
}

/* A list decoder: 0 when body was read into *out and *n. */
typedef int (*list_decode_fn)(const char *body, size_t len, void *out, size_t *n);

static int decode_products(const char *body, size_t len, void *out, size_t *n)
{
  return nrd_nv_decode_products(body, len, out, n);
}

static int decode_clusters(const char *body, size_t len, void *out, size_t *n)
{
  return nrd_nv_decode_clusters(body, len, out, n);
}

/* GETs the list at url (a public endpoint, ep) and decodes it; an answer
 * decode cannot read is unusable. Cleans url up. */
static enum nrd_nv_rc get_list(struct nrd_novita_conn *c, enum nrd_endpoint ep, const char *name,
                               struct nrd_buf *url, list_decode_fn decode, void *out, size_t *n,
                               struct nrd_nv_error *err)
{
  struct nrd_buf resp;
  int status;
  nrd_buf_init(&resp);
  enum nrd_nv_rc rc =
      nrd_nv_transport(c, ep, "GET", url->data, NULL, false, true, &resp, &status, err);
  if (rc == NRD_NV_OK && decode(resp.data, resp.len, out, n) != 0)
    rc = unusable_answer(name, status, &resp, err);
  nrd_buf_cleanup(url);
  nrd_buf_cleanup(&resp);
  return rc;
}

enum nrd_nv_rc nrd_nv_list_products(struct nrd_novita_conn *c, const char *product_name,
                                    struct nrd_product **products, size_t *n,
                                    struct nrd_nv_error *err)
{
  return nrd_nv_list_products_in(c, product_name, NULL, NULL, products, n, err);
}

enum nrd_nv_rc nrd_nv_list_products_in(struct nrd_novita_conn *c, const char *product_name,
                                       const char *cluster_id, const char *billing,
                                       struct nrd_product **products, size_t *n,
                                       struct nrd_nv_error *err)
{
  return nrd_nv_list_kind_products(c, NULL, product_name, cluster_id, billing, products, n, err);
}

enum nrd_nv_rc nrd_nv_list_kind_products(struct nrd_novita_conn *c, const char *kind,
                                         const char *product_name, const char *cluster_id,
                                         const char *billing, struct nrd_product **products,
                                         size_t *n, struct nrd_nv_error *err)
{
  struct nrd_buf url;
  bool cpu = kind && strcmp(kind, "cpu") == 0;
  *products = NULL;
  *n = 0;
  nrd_buf_init(&url);
  nrd_buf_printf(&url, "%s/v1/%sproducts?productName=", c->nv->base_url, cpu ? "cpu/" : "");
  url_escape(&url, product_name ? product_name : "");
  if (cluster_id && *cluster_id) {
    nrd_buf_puts(&url, "&clusterId=");
    url_escape(&url, cluster_id);
  }
  if (!cpu) { /* Novita's CPU product list takes no billingMethod */
    nrd_buf_puts(&url, "&billingMethod=");
    url_escape(&url, billing && *billing ? billing : "spot");
  }
  return get_list(c, NRD_EP_PRODUCTS, "products", &url, decode_products, products, n, err);
}

enum nrd_nv_rc nrd_nv_list_clusters(struct nrd_novita_conn *c, struct nrd_cluster **clusters,
                                    size_t *n, struct nrd_nv_error *err)
{
  struct nrd_buf url;
  *clusters = NULL;
  *n = 0;
  nrd_buf_init(&url);
  nrd_buf_printf(&url, "%s/v1/clusters", c->nv->base_url);
  return get_list(c, NRD_EP_CLUSTERS, "clusters", &url, decode_clusters, clusters, n, err);
}

static bool read_instance(const cJSON *root, void *instance)
{
  if (!cJSON_IsObject(root) || !nrd_json_str(root, "id"))
    return false;
  nrd_nv_decode_instance(root, instance);
  return true;
}

enum nrd_nv_rc nrd_nv_get_instance(struct nrd_novita_conn *c, const char *instance_id,
                                   struct nrd_instance *out, struct nrd_nv_error *err)
{
  memset(out, 0, sizeof *out);
  return fetch_instance(c, instance_id, read_instance, out, err);
}
