/* The simulator's daemon: libmicrohttpd on 127.0.0.1, the route table, fault
 * injection, the request log, the control endpoints and the public API. */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "sim_internal.h"

#define MAX_BODY (1024 * 1024)               /* Novita endpoints */
#define MAX_CONTROL_BODY (256 * 1024 * 1024) /* /__sim/ scenarios of big fleets */
#define CONTROL_PREFIX "/__sim/"
#define SLEEP_SLICE_MS 10

static const char *const FAULT_NAMES[] = {
  "status",    "retry_after", "delay", "apply_then_delay", "html",        "truncated", "malformed",
  "oversized", "deep",        "empty", "wrong_types",      "drop_fields", "slow_drip", "reset",
  "error_200"
};
#define FAULT_KINDS (sizeof FAULT_NAMES / sizeof FAULT_NAMES[0])

enum auth { AUTH_PUBLIC, AUTH_INTERNAL };

struct route {
  const char *method;
  const char *path;
  enum auth auth;
  sim_handler handler;
};

static const struct route ROUTES[] = {
  { "GET", SIM_BASE_PATH "/v1/gpu/instances", AUTH_PUBLIC, sim_list_instances },
  { "GET", SIM_BASE_PATH "/v1/gpu/instance", AUTH_PUBLIC, sim_get_instance },
  { "POST", SIM_BASE_PATH "/v1/gpu/instance/delete", AUTH_PUBLIC, sim_delete_instance },
  { "POST", SIM_BASE_PATH "/v1/gpu/instance/create", AUTH_PUBLIC, sim_create_instance },
  { "GET", SIM_BASE_PATH "/v1/jobs", AUTH_PUBLIC, sim_list_jobs },
  { "GET", SIM_BASE_PATH "/v1/products", AUTH_PUBLIC, sim_list_products },
  { "GET", SIM_BASE_PATH "/v1/clusters", AUTH_PUBLIC, sim_list_clusters },
  { "GET", SIM_BASE_PATH "/v1/cpu/products", AUTH_PUBLIC, sim_list_cpu_products },
  { "GET", "/api/v1/jobs", AUTH_INTERNAL, sim_list_jobs },
};

/* Per request, from the first access-handler call to completion. */
struct req_ctx {
  struct nrd_buf body;
  size_t limit;
  bool too_big;
};

static int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Slices end at absolute times: the wake-up delay of each slice does not add
 * up, so the latency added is ms plus one wake-up (tens of microseconds). */
void sim_sleep(struct nrd_sim *s, unsigned ms)
{
  int64_t end = mono_ns() + (int64_t)ms * 1000000;
  while (!atomic_load(&s->stopping)) {
    int64_t now = mono_ns();
    if (now >= end)
      break;
    int64_t next = now + (int64_t)SLEEP_SLICE_MS * 1000000;
    if (next > end)
      next = end;
    struct timespec ts = { .tv_sec = (time_t)(next / 1000000000),
                           .tv_nsec = (long)(next % 1000000000) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
      ;
  }
}

/* ---- answers ---- */

/* Queues text (heap, taken over) with status and one optional extra header. */
static enum MHD_Result queue_text(struct MHD_Connection *c, int status, char *text, size_t len,
                                  const char *content_type, const char *hname, const char *hvalue)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  enum MHD_Result ret;

  if (!r) {
    free(text);
    return MHD_NO;
  }
  if (content_type)
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (hname && hvalue)
    MHD_add_response_header(r, hname, hvalue);
  ret = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

/* Queues body (deleted here) as JSON; retry_after may be NULL. */
static enum MHD_Result queue_json_ra(struct MHD_Connection *c, int status, cJSON *body,
                                     const char *retry_after)
{
  char *text = nrd_json_print(body);
  cJSON_Delete(body);
  return queue_text(c, status, text, strlen(text), "application/json", MHD_HTTP_HEADER_RETRY_AFTER,
                    retry_after);
}

static enum MHD_Result queue_json(struct MHD_Connection *c, int status, cJSON *body)
{
  return queue_json_ra(c, status, body, NULL);
}

static enum MHD_Result queue_stream(struct MHD_Connection *c, int status, struct MHD_Response *r)
{
  enum MHD_Result ret;
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  ret = MHD_queue_response(c, (unsigned)status, r);
  MHD_destroy_response(r);
  return ret;
}

/* ---- request log ---- */

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
  struct nrd_buf *b = cls;
  if (b->len)
    nrd_buf_puts(b, "&");
  nrd_buf_puts(b, key);
  if (value) {
    nrd_buf_puts(b, "=");
    nrd_buf_puts(b, value);
  }
  return MHD_YES;
}

static void log_request(struct nrd_sim *s, struct MHD_Connection *c, const char *method,
                        const char *url, const struct req_ctx *ctx)
{
  struct nrd_sim_request r;
  struct nrd_buf query;

  nrd_buf_init(&query);
  MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_query_arg, &query);
  r.method = nrd_xstrdup(method);
  r.path = nrd_xstrdup(url);
  r.query = nrd_buf_steal(&query);
  r.body = nrd_xstrndup(ctx->body.data ? ctx->body.data : "", ctx->body.len);
  r.authorization =
      nrd_xstrdup(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
  r.at_ms = nrd_now_ms();
  pthread_mutex_lock(&s->mu);
  if (s->nlog == s->caplog) {
    s->caplog = s->caplog ? 2 * s->caplog : 64;
    s->log = nrd_xrealloc(s->log, s->caplog * sizeof *s->log);
  }
  s->log[s->nlog++] = r;
  pthread_mutex_unlock(&s->mu);
}

static void request_free(struct nrd_sim_request *r)
{
  free(r->method);
  free(r->path);
  free(r->query);
  free(r->body);
  free(r->authorization);
}

/* ---- faults ---- */

static uint64_t xorshift64(uint64_t *state)
{
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *state = x;
  return x;
}

static void fault_strings_free(struct nrd_sim_fault *f)
{
  free((char *)f->match);
  free((char *)f->body);
  free((char *)f->retry_after);
  free((char *)f->reason);
}

static void fault_copy(struct nrd_sim_fault *to, const struct nrd_sim_fault *from)
{
  *to = *from;
  to->match = nrd_xstrdup(from->match);
  to->body = nrd_xstrdup(from->body);
  to->retry_after = nrd_xstrdup(from->retry_after);
  to->reason = nrd_xstrdup(from->reason);
}

/* The first fault that matches "METHOD path" and fires; a copy in *out
 * (strings freed with fault_strings_free). */
static bool pick_fault(struct nrd_sim *s, const char *method, const char *url,
                       struct nrd_sim_fault *out)
{
  struct nrd_buf line;
  bool found = false;

  nrd_buf_init(&line);
  nrd_buf_printf(&line, "%s %s", method, url);
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nfaults && !found; i++) {
    struct sim_fault *sf = &s->faults[i];
    double p = sf->f.probability;
    if (sf->f.count && sf->fired >= sf->f.count)
      continue;
    if (sf->f.match && *sf->f.match && !strstr(line.data, sf->f.match))
      continue;
    if (p > 0 && p < 1 && (double)(xorshift64(&sf->rng) >> 11) / 9007199254740992.0 >= p)
      continue;
    sf->fired++;
    fault_copy(out, &sf->f);
    found = true;
  }
  pthread_mutex_unlock(&s->mu);
  nrd_buf_cleanup(&line);
  return found;
}

static const char *status_code_name(int status)
{
  switch (status) {
  case 400:
    return "INVALID_PARAMS";
  case 401:
    return "UNAUTHORIZED";
  case 403:
    return "FORBIDDEN";
  case 404:
    return "RESOURCE_NOT_FOUND";
  case 429:
    return "RATE_LIMIT_EXCEEDED";
  case 502:
    return "BAD_GATEWAY";
  case 503:
    return "SERVICE_UNAVAILABLE";
  case 504:
    return "GATEWAY_TIMEOUT";
  default:
    return status >= 500 ? "INTERNAL_ERROR" : "SIM_FAULT";
  }
}

static const char HTML_PAGE[] =
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";

/* Faults that replace the answer outright. *done is false when the request
 * goes on to the normal handler. */
static enum MHD_Result answer_fault(struct nrd_sim *s, struct MHD_Connection *c,
                                    const struct nrd_sim_fault *f, bool *done)
{
  int status = f->status ? f->status : 200;
  *done = true;
  switch (f->kind) {
  case NRD_SIM_STATUS:
    status = f->status ? f->status : 500;
    if (f->body)
      return queue_text(c, status, nrd_xstrdup(f->body), strlen(f->body), "application/json", NULL,
                        NULL);
    return queue_json(
        c, status,
        sim_error(status, f->reason ? f->reason : status_code_name(status), "injected fault"));
  case NRD_SIM_ERROR_200:
    if (f->body)
      return queue_text(c, 200, nrd_xstrdup(f->body), strlen(f->body), "application/json", NULL,
                        NULL);
    return queue_json(
        c, 200,
        sim_error(400, f->reason ? f->reason : "VALIDATOR_PARAM", "injected error with HTTP 200"));
  case NRD_SIM_RETRY_AFTER:
    return queue_json_ra(c, 429, sim_error(429, "RATE_LIMIT_EXCEEDED", "rate limit exceeded"),
                         f->retry_after ? f->retry_after : "1");
  case NRD_SIM_HTML:
    return queue_text(c, status, nrd_xstrdup(HTML_PAGE), sizeof HTML_PAGE - 1, "text/html", NULL,
                      NULL);
  case NRD_SIM_MALFORMED:
    return queue_text(c, status, nrd_xstrdup("{not json"), 9, "application/json", NULL, NULL);
  case NRD_SIM_EMPTY:
    return queue_text(c, status, nrd_xstrdup(""), 0, "application/json", NULL, NULL);
  case NRD_SIM_OVERSIZED:
    return queue_stream(c, status, sim_oversized_response(f->size));
  case NRD_SIM_DEEP:
    return queue_stream(c, status, sim_deep_response(f->size));
  case NRD_SIM_RESET:
    return MHD_NO;
  case NRD_SIM_DELAY:
    sim_sleep(s, f->delay_ms);
    break;
  default:
    break;
  }
  *done = false;
  return MHD_YES;
}

/* ---- the Novita endpoints ---- */

static bool authorized(const struct nrd_sim *s, struct MHD_Connection *c, enum auth a)
{
  const char *key = a == AUTH_PUBLIC ? s->api_key : s->internal_key;
  const char *h;
  if (!key)
    return true;
  h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!h || strncmp(h, "Bearer ", 7) != 0)
    return false;
  return nrd_ct_equal(h + 7, strlen(h + 7), key, strlen(key));
}

/* The normal answer: a status and a JSON body (*out); *allow is set for 405. */
static int dispatch(struct nrd_sim *s, struct MHD_Connection *c, const char *method,
                    const char *url, const struct req_ctx *ctx, cJSON **out, const char **allow)
{
  const struct route *same_path = NULL;

  for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
    const struct route *r = &ROUTES[i];
    if (strcmp(r->path, url) != 0)
      continue;
    same_path = r;
    if (strcmp(r->method, method) != 0)
      continue;
    if (!authorized(s, c, r->auth)) {
      *out = sim_error(401, "UNAUTHORIZED", "invalid or missing API key");
      return 401;
    }
    return r->handler(s, c, ctx->body.data ? ctx->body.data : "", ctx->body.len, out);
  }
  if (same_path) {
    *allow = same_path->method;
    *out = sim_error(405, "METHOD_NOT_ALLOWED", "method not allowed");
    return 405;
  }
  *out = sim_error(404, "NOT_FOUND", "no such endpoint");
  return 404;
}

static enum MHD_Result answer_api(struct nrd_sim *s, struct MHD_Connection *c, const char *method,
                                  const char *url, const struct req_ctx *ctx)
{
  struct nrd_sim_fault f = { 0 };
  bool faulted, done = false;
  enum MHD_Result ret = MHD_YES;
  cJSON *body = NULL;
  const char *allow = NULL;
  char *text;
  size_t len;
  int status;

  char ra[16];
  log_request(s, c, method, url, ctx);
  bool over = sim_rate_refuse(s, ra);
  sim_sleep(s, atomic_load(&s->latency_ms));
  if (over)
    return queue_json_ra(c, 429, sim_error(429, "RATE_LIMIT_EXCEEDED", "rate limit exceeded"), ra);
  faulted = pick_fault(s, method, url, &f);
  if (faulted) {
    ret = answer_fault(s, c, &f, &done);
    if (done)
      goto out;
  }
  status = dispatch(s, c, method, url, ctx, &body, &allow);
  if (faulted && f.kind == NRD_SIM_APPLY_THEN_DELAY)
    sim_sleep(s, f.delay_ms);
  if (faulted && (f.kind == NRD_SIM_WRONG_TYPES || f.kind == NRD_SIM_DROP_FIELDS)) {
    /* Listed items may be printed text (raw nodes): make them objects again. */
    char *printed = nrd_json_print(body);
    cJSON_Delete(body);
    body = nrd_json_parse(printed, strlen(printed));
    free(printed);
  }
  if (faulted && f.kind == NRD_SIM_WRONG_TYPES) {
    cJSON *retyped = sim_retyped(body);
    cJSON_Delete(body);
    body = retyped;
  }
  if (faulted && f.kind == NRD_SIM_DROP_FIELDS)
    sim_drop_fields(body);
  text = nrd_json_print(body);
  len = strlen(text);
  if (faulted && f.kind == NRD_SIM_TRUNCATED)
    len /= 2;
  if (faulted && f.kind == NRD_SIM_SLOW_DRIP)
    ret = queue_stream(c, status, sim_drip_response(s, text, len, f.delay_ms));
  else
    ret = queue_text(c, status, text, len, "application/json", allow ? "Allow" : NULL, allow);
out:
  cJSON_Delete(body);
  if (faulted)
    fault_strings_free(&f);
  return ret;
}

/* ---- control endpoints ---- */

/* Reads one fault object; strings are borrowed from j (and retry_buf). */
static bool fault_from_json(const cJSON *j, struct nrd_sim_fault *f, char *retry_buf,
                            size_t retry_len)
{
  const char *kind = nrd_json_str(j, "kind");
  int64_t v;
  size_t k = 0;

  memset(f, 0, sizeof *f);
  while (kind && k < FAULT_KINDS && strcmp(FAULT_NAMES[k], kind) != 0)
    k++;
  if (!kind || k == FAULT_KINDS)
    return false;
  f->kind = (enum nrd_sim_fault_kind)k;
  f->match = nrd_json_str(j, "match");
  f->body = nrd_json_str(j, "body");
  f->retry_after = nrd_json_str(j, "retry_after");
  f->reason = nrd_json_str(j, "reason");
  if (!f->retry_after && nrd_json_i64(j, "retry_after", &v)) {
    snprintf(retry_buf, retry_len, "%lld", (long long)v);
    f->retry_after = retry_buf;
  }
  if (nrd_json_i64(j, "status", &v)) {
    if (v < 100 || v > 599)
      return false;
    f->status = (int)v;
  }
  if (nrd_json_i64(j, "delay_ms", &v))
    f->delay_ms = v < 0 ? 0 : (unsigned)(v > 600000 ? 600000 : v);
  if (nrd_json_i64(j, "size", &v))
    f->size = v < 0 ? 0 : (size_t)v;
  if (nrd_json_i64(j, "count", &v))
    f->count = v < 0 ? 0 : (unsigned)v;
  if (nrd_json_i64(j, "seed", &v))
    f->seed = (uint64_t)v;
  nrd_json_double(j, "probability", &f->probability);
  return true;
}

static int control_faults(struct nrd_sim *s, const cJSON *req, cJSON **out)
{
  const cJSON *it;
  struct nrd_sim_fault f;
  char retry[32];

  if (cJSON_IsObject(req) && !req->child) {
    nrd_sim_clear_faults(s);
  } else if (cJSON_IsObject(req)) {
    if (!fault_from_json(req, &f, retry, sizeof retry) || nrd_sim_add_fault(s, &f) != 0)
      goto bad;
  } else if (cJSON_IsArray(req)) {
    cJSON_ArrayForEach(it, req) {
      if (!fault_from_json(it, &f, retry, sizeof retry) || nrd_sim_add_fault(s, &f) != 0)
        goto bad;
    }
  } else {
    goto bad;
  }
  *out = cJSON_CreateObject();
  pthread_mutex_lock(&s->mu);
  nrd_json_add_num(*out, "faults", (double)s->nfaults);
  pthread_mutex_unlock(&s->mu);
  return 200;
bad:
  *out = sim_error(400, "INVALID_PARAMS", "a fault needs a known kind (status, retry_after, ...)");
  return 400;
}

static cJSON *requests_json(struct nrd_sim *s)
{
  cJSON *arr = cJSON_CreateArray();
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nlog; i++) {
    const struct nrd_sim_request *r = &s->log[i];
    cJSON *o = cJSON_CreateObject();
    nrd_json_add_str(o, "method", r->method);
    nrd_json_add_str(o, "path", r->path);
    nrd_json_add_str(o, "query", r->query);
    nrd_json_add_str(o, "body", r->body);
    if (r->authorization)
      nrd_json_add_str(o, "authorization", r->authorization);
    else
      cJSON_AddNullToObject(o, "authorization");
    nrd_json_add_num(o, "atMs", (double)r->at_ms);
    cJSON_AddItemToArray(arr, o);
  }
  pthread_mutex_unlock(&s->mu);
  return arr;
}

/* /__sim/start {toCreateMs, creatingMs, pullingMs} and /__sim/pull_failure
 * {imageUrl, message} ({imageUrl} alone: the pull works again). */
static int control_start(struct nrd_sim *s, const char *name, const cJSON *req, cJSON **out)
{
  int64_t t[3] = { 0, 0, 0 };
  static const char *const keys[3] = { "toCreateMs", "creatingMs", "pullingMs" };
  bool ok = cJSON_IsObject(req);
  if (ok && strcmp(name, "start") == 0) {
    for (int i = 0; i < 3 && ok; i++)
      ok = !cJSON_GetObjectItemCaseSensitive(req, keys[i]) ||
           (nrd_json_i64(req, keys[i], &t[i]) && t[i] >= 0 && t[i] <= 86400000);
    if (ok)
      nrd_sim_set_start_times(s, (unsigned)t[0], (unsigned)t[1], (unsigned)t[2]);
  } else if (ok) {
    const char *image = nrd_json_str_nonempty(req, "imageUrl");
    ok = image != NULL;
    if (ok)
      nrd_sim_set_pull_failure(s, image, nrd_json_str_nonempty(req, "message"));
  }
  *out = ok ? cJSON_CreateObject()
            : sim_error(400, "INVALID_PARAMS",
                        strcmp(name, "start") == 0
                            ? "{\"toCreateMs\", \"creatingMs\", \"pullingMs\"}: 0..86400000"
                            : "{\"imageUrl\", \"message\"}");
  return ok ? 200 : 400;
}

static int sim_load_len(struct nrd_sim *s, const char *text, size_t len);

static enum MHD_Result answer_control(struct nrd_sim *s, struct MHD_Connection *c,
                                      const char *method, const char *url,
                                      const struct req_ctx *ctx)
{
  const char *name = url + strlen(CONTROL_PREFIX);
  const char *body = ctx->body.data ? ctx->body.data : "";
  bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;
  cJSON *out = NULL, *req;
  int status = 200;

  if (post && strcmp(name, "scenario") == 0) {
    if (sim_load_len(s, body, ctx->body.len) != 0) {
      out = sim_error(400, "INVALID_PARAMS", "the scenario is not a JSON object of arrays");
      status = 400;
    } else {
      out = cJSON_CreateObject();
    }
  } else if (post && strcmp(name, "faults") == 0) {
    req = nrd_json_parse(body, ctx->body.len);
    status = control_faults(s, req, &out);
    cJSON_Delete(req);
  } else if (post && strcmp(name, "account") == 0) {
    req = nrd_json_parse(body, ctx->body.len);
    status = cJSON_IsObject(req) ? 200 : 400;
    if (status == 200)
      nrd_sim_set_account(s, nrd_json_str_nonempty(req, "reason"));
    out = status == 200 ? cJSON_CreateObject()
                        : sim_error(400, "INVALID_PARAMS", "{\"reason\": ...} or {}");
    cJSON_Delete(req);
  } else if (post && strcmp(name, "capacity") == 0) {
    int64_t n;
    req = nrd_json_parse(body, ctx->body.len);
    const char *pn = nrd_json_str_nonempty(req, "productName");
    const char *cl = nrd_json_str_nonempty(req, "clusterId");
    status = pn && cl && nrd_json_i64(req, "available", &n) && n >= -1 ? 200 : 400;
    if (status == 200)
      nrd_sim_set_capacity(s, pn, cl, (long)n);
    out = status == 200 ? cJSON_CreateObject()
                        : sim_error(400, "INVALID_PARAMS",
                                    "{\"productName\", \"clusterId\", \"available\": n >= -1}");
    cJSON_Delete(req);
  } else if (post && (strcmp(name, "start") == 0 || strcmp(name, "pull_failure") == 0)) {
    req = nrd_json_parse(body, ctx->body.len);
    status = control_start(s, name, req, &out);
    cJSON_Delete(req);
  } else if (get && strcmp(name, "state") == 0) {
    out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "instances", nrd_sim_instances(s));
    pthread_mutex_lock(&s->mu);
    nrd_json_add_num(out, "requests", (double)s->nlog);
    pthread_mutex_unlock(&s->mu);
  } else if (get && strcmp(name, "requests") == 0) {
    out = requests_json(s);
  } else {
    out = sim_error(404, "NOT_FOUND", "no such control endpoint");
    status = 404;
  }
  return queue_json(c, status, out);
}

/* ---- libmicrohttpd glue ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  struct nrd_sim *s = cls;
  struct req_ctx *ctx = *con_cls;
  bool control = strncmp(url, CONTROL_PREFIX, strlen(CONTROL_PREFIX)) == 0;

  if (!ctx) {
    ctx = nrd_xcalloc(1, sizeof *ctx);
    nrd_buf_init(&ctx->body);
    ctx->limit = control ? MAX_CONTROL_BODY : MAX_BODY;
    *con_cls = ctx;
    return MHD_YES;
  }
  if (*upload_data_size) {
    if (!ctx->too_big && *upload_data_size <= ctx->limit - ctx->body.len) {
      nrd_buf_append(&ctx->body, upload_data, *upload_data_size);
    } else {
      ctx->too_big = true;
      nrd_buf_cleanup(&ctx->body);
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (ctx->too_big)
    return queue_json(c, 413, sim_error(413, "PAYLOAD_TOO_LARGE", "request body too large"));
  if (control)
    return answer_control(s, c, method, url, ctx);
  return answer_api(s, c, method, url, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct req_ctx *ctx = *con_cls;
  if (!ctx)
    return;
  nrd_buf_cleanup(&ctx->body);
  free(ctx);
  *con_cls = NULL;
}

/* Small JSON answers on keep-alive connections: no Nagle delay. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
  const union MHD_ConnectionInfo *ci;
  int one = 1;
  if (code != MHD_CONNECTION_NOTIFY_STARTED)
    return;
  ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci)
    setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- public API ---- */

static void sim_free(struct nrd_sim *s)
{
  sim_instances_changed(s);
  cJSON_Delete(s->instances);
  cJSON_Delete(s->jobs);
  cJSON_Delete(s->products);
  cJSON_Delete(s->clusters);
  cJSON_Delete(s->cpu_products);
  sim_start_free(s);
  for (size_t i = 0; i < s->nlog; i++)
    request_free(&s->log[i]);
  free(s->log);
  for (size_t i = 0; i < s->nfaults; i++)
    fault_strings_free(&s->faults[i].f);
  free(s->faults);
  free(s->api_key);
  free(s->internal_key);
  free(s->new_status);
  free(s->account_reason);
  for (size_t i = 0; i < s->ncapacity; i++) {
    free(s->capacity[i].product);
    free(s->capacity[i].cluster);
  }
  free(s->capacity);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->rate_mu);
  free(s);
}

struct nrd_sim *nrd_sim_start(const struct nrd_sim_options *opt, char *err, size_t errlen)
{
  struct nrd_sim *s;
  struct sockaddr_in addr;
  struct MHD_OptionItem pool[] = { { MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)opt->threads, NULL },
                                   { MHD_OPTION_END, 0, NULL } };
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
  const union MHD_DaemonInfo *info;

  if (opt->page_base_set && opt->page_base != 0 && opt->page_base != 1) {
    snprintf(err, errlen, "page_base must be 0 or 1");
    return NULL;
  }
  if (opt->port > 65535) {
    snprintf(err, errlen, "port %u is out of range", opt->port);
    return NULL;
  }
  s = nrd_xcalloc(1, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->latency_ms, opt->latency_ms);
  pthread_mutex_init(&s->rate_mu, NULL);
  atomic_init(&s->stopping, false);
  s->api_key = nrd_xstrdup(opt->api_key);
  s->internal_key = nrd_xstrdup(opt->internal_api_key);
  s->new_status = nrd_xstrdup(opt->new_status);
  s->page_base = opt->page_base_set ? opt->page_base : 1;
  s->page_cap = opt->page_cap;
  s->no_total = opt->no_total;
  s->instances = nrd_json_array();
  s->jobs = nrd_json_array();
  s->products = nrd_json_array();
  s->clusters = nrd_json_array();
  s->cpu_products = nrd_json_array();

  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)opt->port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (opt->threads == 0) {
    flags |= MHD_USE_THREAD_PER_CONNECTION;
    pool[0] = pool[1];
  }
  s->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
      MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
  if (!s->daemon) {
    snprintf(err, errlen, "cannot listen on 127.0.0.1:%u", opt->port);
    sim_free(s);
    return NULL;
  }
  info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : opt->port;
  return s;
}

void nrd_sim_stop(struct nrd_sim *s)
{
  if (!s)
    return;
  atomic_store(&s->stopping, true);
  MHD_stop_daemon(s->daemon);
  sim_free(s);
}

unsigned nrd_sim_port(const struct nrd_sim *s)
{
  return s->port;
}

void nrd_sim_base_url(const struct nrd_sim *s, char out[128])
{
  snprintf(out, 128, "http://127.0.0.1:%u" SIM_BASE_PATH, s->port);
}

void nrd_sim_internal_base_url(const struct nrd_sim *s, char out[128])
{
  snprintf(out, 128, "http://127.0.0.1:%u", s->port);
}

/* A scenario member: a missing key is an empty list, anything but a list
 * is an error. */
static bool take_list(cJSON *scenario, const char *key, cJSON **out)
{
  cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(scenario, key);
  if (!v) {
    *out = nrd_json_array();
    return true;
  }
  if (!cJSON_IsArray(v)) {
    cJSON_Delete(v);
    return false;
  }
  *out = v;
  return true;
}

static int sim_load_len(struct nrd_sim *s, const char *text, size_t len)
{
  cJSON *sc = nrd_json_parse(text, len);
  cJSON *inst = NULL, *jobs = NULL, *prods = NULL, *clusters = NULL, *cpu = NULL;
  int rc = -1;

  if (!cJSON_IsObject(sc) || !take_list(sc, "instances", &inst) || !take_list(sc, "jobs", &jobs) ||
      !take_list(sc, "products", &prods) || !take_list(sc, "clusters", &clusters) ||
      !take_list(sc, "cpuProducts", &cpu))
    goto out;
  pthread_mutex_lock(&s->mu);
  cJSON_Delete(s->instances);
  cJSON_Delete(s->jobs);
  cJSON_Delete(s->products);
  cJSON_Delete(s->clusters);
  cJSON_Delete(s->cpu_products);
  s->instances = inst;
  sim_instances_changed(s);
  s->jobs = jobs;
  s->products = prods;
  s->clusters = clusters;
  s->cpu_products = cpu;
  pthread_mutex_unlock(&s->mu);
  inst = jobs = prods = clusters = cpu = NULL;
  rc = 0;
out:
  cJSON_Delete(inst);
  cJSON_Delete(jobs);
  cJSON_Delete(prods);
  cJSON_Delete(clusters);
  cJSON_Delete(cpu);
  cJSON_Delete(sc);
  return rc;
}

int nrd_sim_load(struct nrd_sim *s, const char *scenario_json)
{
  if (!scenario_json)
    return -1;
  return sim_load_len(s, scenario_json, strlen(scenario_json));
}

void nrd_sim_set_latency(struct nrd_sim *s, unsigned ms)
{
  atomic_store(&s->latency_ms, ms);
}

void nrd_sim_set_account(struct nrd_sim *s, const char *reason)
{
  pthread_mutex_lock(&s->mu);
  free(s->account_reason);
  s->account_reason = reason && *reason ? nrd_xstrdup(reason) : NULL;
  pthread_mutex_unlock(&s->mu);
}

struct sim_capacity *sim_capacity_find(struct nrd_sim *s, const char *product, const char *cluster)
{
  for (size_t i = 0; product && cluster && i < s->ncapacity; i++) {
    if (strcasecmp(s->capacity[i].product, product) == 0 &&
        strcmp(s->capacity[i].cluster, cluster) == 0)
      return &s->capacity[i];
  }
  return NULL;
}

void nrd_sim_set_capacity(struct nrd_sim *s, const char *product_name, const char *cluster_id,
                          long available)
{
  pthread_mutex_lock(&s->mu);
  struct sim_capacity *c = sim_capacity_find(s, product_name, cluster_id);
  if (c && available < 0) {
    free(c->product);
    free(c->cluster);
    *c = s->capacity[--s->ncapacity];
  } else if (c) {
    c->available = available;
  } else if (available >= 0) {
    s->capacity = nrd_xrealloc(s->capacity, (s->ncapacity + 1) * sizeof *s->capacity);
    s->capacity[s->ncapacity++] =
        (struct sim_capacity){ nrd_xstrdup(product_name), nrd_xstrdup(cluster_id), available };
  }
  pthread_mutex_unlock(&s->mu);
}

int nrd_sim_add_fault(struct nrd_sim *s, const struct nrd_sim_fault *f)
{
  struct sim_fault sf;

  if ((unsigned)f->kind >= FAULT_KINDS || f->probability < 0 || f->probability > 1)
    return -1;
  memset(&sf, 0, sizeof sf);
  fault_copy(&sf.f, f);
  sf.rng = f->seed ? f->seed : 0x9E3779B97F4A7C15ULL;
  pthread_mutex_lock(&s->mu);
  s->faults = nrd_xrealloc(s->faults, (s->nfaults + 1) * sizeof *s->faults);
  s->faults[s->nfaults++] = sf;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

void nrd_sim_clear_faults(struct nrd_sim *s)
{
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nfaults; i++)
    fault_strings_free(&s->faults[i].f);
  free(s->faults);
  s->faults = NULL;
  s->nfaults = 0;
  pthread_mutex_unlock(&s->mu);
}

size_t nrd_sim_requests(struct nrd_sim *s, struct nrd_sim_request **out)
{
  size_t n;
  pthread_mutex_lock(&s->mu);
  n = s->nlog;
  *out = n ? nrd_xcalloc(n, sizeof **out) : NULL;
  for (size_t i = 0; i < n; i++) {
    const struct nrd_sim_request *r = &s->log[i];
    (*out)[i].method = nrd_xstrdup(r->method);
    (*out)[i].path = nrd_xstrdup(r->path);
    (*out)[i].query = nrd_xstrdup(r->query);
    (*out)[i].body = nrd_xstrdup(r->body);
    (*out)[i].authorization = nrd_xstrdup(r->authorization);
    (*out)[i].at_ms = r->at_ms;
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

void nrd_sim_requests_free(struct nrd_sim_request *r, size_t n)
{
  for (size_t i = 0; i < n; i++)
    request_free(&r[i]);
  free(r);
}

void nrd_sim_clear_requests(struct nrd_sim *s)
{
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nlog; i++)
    request_free(&s->log[i]);
  s->nlog = 0;
  pthread_mutex_unlock(&s->mu);
}

static bool ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

size_t nrd_sim_count(struct nrd_sim *s, const char *method, const char *path_suffix)
{
  size_t n = 0;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->nlog; i++) {
    if (method && strcmp(s->log[i].method, method) != 0)
      continue;
    if (path_suffix && !ends_with(s->log[i].path, path_suffix))
      continue;
    n++;
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

size_t nrd_sim_count_by_name(struct nrd_sim *s, const char *name)
{
  const cJSON *it;
  size_t n = 0;
  pthread_mutex_lock(&s->mu);
  cJSON_ArrayForEach(it, s->instances) {
    const char *v = nrd_json_str(it, "name");
    if (v && name && strcmp(v, name) == 0)
      n++;
  }
  pthread_mutex_unlock(&s->mu);
  return n;
}

size_t nrd_sim_instance_count(struct nrd_sim *s)
{
  size_t n;
  pthread_mutex_lock(&s->mu);
  n = (size_t)cJSON_GetArraySize(s->instances);
  pthread_mutex_unlock(&s->mu);
  return n;
}

cJSON *nrd_sim_instances(struct nrd_sim *s)
{
  cJSON *copy;
  pthread_mutex_lock(&s->mu);
  copy = cJSON_Duplicate(s->instances, true);
  pthread_mutex_unlock(&s->mu);
  if (!copy)
    abort();
  return copy;
}

cJSON *sim_find_instance(const struct nrd_sim *s, const char *id)
{
  cJSON *it;
  cJSON_ArrayForEach(it, s->instances) {
    const char *v = nrd_json_str(it, "id");
    if (v && strcmp(v, id) == 0)
      return it;
  }
  return NULL;
}

int nrd_sim_put_instance(struct nrd_sim *s, const cJSON *instance)
{
  const char *id = nrd_json_str_nonempty(instance, "id");
  cJSON *copy, *old;

  if (!id)
    return -1;
  copy = cJSON_Duplicate(instance, true);
  if (!copy)
    abort();
  pthread_mutex_lock(&s->mu);
  old = sim_find_instance(s, id);
  if (old)
    cJSON_ReplaceItemViaPointer(s->instances, old, copy);
  else
    cJSON_AddItemToArray(s->instances, copy);
  sim_instances_changed(s);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

int nrd_sim_remove_instance(struct nrd_sim *s, const char *id)
{
  cJSON *old;
  pthread_mutex_lock(&s->mu);
  old = id ? sim_find_instance(s, id) : NULL;
  if (old) {
    cJSON_Delete(cJSON_DetachItemViaPointer(s->instances, old));
    sim_instances_changed(s);
  }
  pthread_mutex_unlock(&s->mu);
  return old ? 0 : -1;
}
