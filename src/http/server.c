/* The HTTP server: one libmicrohttpd daemon with its internal polling thread
 * (epoll). Every request gets a context on the first access-handler call; it
 * is answered on a later call (after the body), except early refusals (401,
 * 413 by Content-Length), and freed when both libmicrohttpd (completion
 * callback, which also logs the access line) and a pending run callback
 * have let go of it.
 *
 * Routing is on the raw path: the unescape callback leaves the URL as sent,
 * so an encoded slash or NUL never turns into a different route; query values
 * are decoded by http_query when read.
 *
 * A request that waits for a run is suspended (libmicrohttpd neither polls
 * nor times out a suspended connection) and resumed by the run's callback or
 * by nrd_http_stop; libmicrohttpd refuses to stop while a connection is
 * suspended, so stop resumes them all first. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http_internal.h"
#include "nrd/http.h"
#include "nrd/log.h"
#include "nrd/thread.h"
#include "nrd/metrics.h"
#include "nrd/util.h"

#define CONNECTION_TIMEOUT_S 30u
#define CONNECTION_MEMORY_LIMIT ((size_t)32 * 1024)
/* A chunked body over the limit is read and dropped up to this much more, so
 * the client still gets its 413; past it the connection is closed. */
#define DISCARD_BUDGET ((size_t)1024 * 1024)
/* How long stop waits for suspended requests to be answered. */
#define STOP_DRAIN_MS 3000

struct nrd_http {
  const struct nrd_config *cfg;
  struct nrd_runner *runner;
  struct nrd_scheduler *sched;
  struct MHD_Daemon *daemon;
  struct http_deadline *deadline; /* the request-head deadline's reaper */
  MHD_socket quiesced_fd;
  int64_t started_mono_ms;

  pthread_mutex_t mu; /* guards the list below and stopping */
  pthread_cond_t cv;  /* signalled when a waiting request completes */
  struct http_ctx *waiting;
  size_t n_waiting;
  bool stopping;
};

/* ---- accessors for handlers ---- */

const struct nrd_config *http_cfg(const struct http_ctx *c)
{
  return c->h->cfg;
}

struct nrd_runner *http_runner(const struct http_ctx *c)
{
  return c->h->runner;
}

struct nrd_scheduler *http_scheduler(const struct http_ctx *c)
{
  return c->h->sched;
}

int64_t http_uptime_seconds(const struct http_ctx *c)
{
  return (nrd_mono_ms() - c->h->started_mono_ms) / 1000;
}

int64_t http_elapsed_ms(const struct http_ctx *c)
{
  return nrd_mono_ms() - c->start_mono_ms;
}

/* ---- query parameters ---- */

static int hexval(char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

int http_query(struct http_ctx *c, const char *key, char *out, size_t outlen)
{
  const char *raw = MHD_lookup_connection_value(c->conn, MHD_GET_ARGUMENT_KIND, key);
  size_t n = 0;

  if (!raw)
    return 0;
  for (const char *p = raw; *p; p++) {
    char ch = *p;
    if (ch == '%') {
      int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return -1;
      ch = (char)(hi * 16 + lo);
      p += 2;
    }
    if (n + 1 >= outlen)
      return -1;
    out[n++] = ch;
  }
  out[n] = '\0';
  return 1;
}

bool http_query_limit(struct http_ctx *c, int64_t dflt, int64_t max, size_t *limit,
                      struct http_reply *out)
{
  char text[32];
  int64_t v = dflt;
  int has = http_query(c, "limit", text, sizeof text);

  if (has < 0 || (has > 0 && !nrd_parse_i64(text, 1, max, &v))) {
    http_error(out, HTTP_E_INVALID_LIMIT, NULL, NULL);
    return false;
  }
  *limit = (size_t)v;
  return true;
}

/* ---- request context ---- */

void http_ctx_ref(struct http_ctx *c)
{
  atomic_fetch_add(&c->refs, 1);
}

void http_ctx_unref(struct http_ctx *c)
{
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  for (size_t i = 0; i < HTTP_MAX_PARAMS; i++)
    free(c->params[i]);
  free(c->path);
  nrd_buf_cleanup(&c->body);
  cJSON_Delete(c->json);
  free(c->result.error_message);
  free(c->result.result_json);
  free(c->result.detail);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static bool request_id_ok(const char *s)
{
  size_t n = s ? strlen(s) : 0;
  if (n == 0 || n > HTTP_REQUEST_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-';
    if (!ok)
      return false;
  }
  return true;
}

/* Dotted quad, as inet_ntop writes it but without its printf (once per
 * request). false when it does not fit. */
static bool ipv4_text(const unsigned char a[4], char *text, size_t textlen)
{
  char tmp[16];
  size_t n = 0;
  for (int i = 0; i < 4; i++) {
    unsigned v = a[i];
    if (v >= 100)
      tmp[n++] = (char)('0' + v / 100);
    if (v >= 10)
      tmp[n++] = (char)('0' + v / 10 % 10);
    tmp[n++] = (char)('0' + v % 10);
    tmp[n++] = i < 3 ? '.' : '\0';
  }
  if (n > textlen)
    return false;
  memcpy(text, tmp, n);
  return true;
}

/* The peer as 16 bytes (IPv4 v4-mapped) and as text; false if unknown. */
static bool peer_address(struct MHD_Connection *conn, unsigned char addr[16], char *text,
                         size_t textlen)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = ci ? ci->client_addr : NULL;

  if (!sa)
    return false;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    memset(addr, 0, 10);
    addr[10] = addr[11] = 0xff;
    memcpy(addr + 12, &in->sin_addr, 4);
    return ipv4_text(addr + 12, text, textlen);
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    memcpy(addr, &in6->sin6_addr, 16);
    return inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)textlen) != NULL;
  }
  return false;
}

static enum MHD_Result collect_xff(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
  struct nrd_buf *b = cls;
  if (value && strcasecmp(key, "X-Forwarded-For") == 0) {
    if (b->len > 0)
      nrd_buf_puts(b, ",");
    nrd_buf_puts(b, value);
  }
  return MHD_YES;
}

/* The client: the peer, or, when the peer is a trusted proxy, the right-most
 * X-Forwarded-For address that is not a trusted proxy. */
static void client_address(const struct nrd_config *cfg, struct MHD_Connection *conn, char *out,
                           size_t outlen)
{
  unsigned char addr[16];
  struct nrd_buf xff;

  if (!peer_address(conn, addr, out, outlen)) {
    snprintf(out, outlen, "unknown");
    return;
  }
  if (!nrd_config_is_trusted_proxy(cfg, addr))
    return;

  nrd_buf_init(&xff);
  MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_xff, &xff);
  for (size_t end = xff.len; end > 0;) {
    size_t start = end;
    while (start > 0 && xff.data[start - 1] != ',')
      start--;
    char *tok = xff.data + start;
    xff.data[end] = '\0';
    tok += strspn(tok, " \t");
    for (char *e = tok + strlen(tok); e > tok && (e[-1] == ' ' || e[-1] == '\t'); e--)
      e[-1] = '\0';
    if (!nrd_parse_ip(tok, addr))
      break;
    snprintf(out, outlen, "%s", tok);
    if (!nrd_config_is_trusted_proxy(cfg, addr))
      break;
    end = start > 0 ? start - 1 : 0;
  }
  nrd_buf_cleanup(&xff);
}

static struct http_ctx *ctx_create(struct nrd_http *h, struct MHD_Connection *conn, const char *url,
                                   const char *method)
{
  /* malloc + memset rather than calloc: glibc's calloc skips the per-thread
   * cache, where the last request's context waits, and costs twice as much. */
  struct http_ctx *c = nrd_xmalloc(sizeof *c);
  const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");

  memset(c, 0, sizeof *c);
  c->h = h;
  c->conn = conn;
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->mu, NULL);
  c->start_mono_ms = nrd_mono_ms();
  if (request_id_ok(rid))
    memcpy(c->request_id, rid, strlen(rid) + 1); /* fits: request_id_ok checked */
  else
    nrd_make_id("req", c->request_id);
  size_t mlen = strnlen(method, sizeof c->method - 1);
  memcpy(c->method, method, mlen);
  c->method[mlen] = '\0';
  c->path = nrd_xstrndup(url, HTTP_MAX_PATH + 1);
  client_address(h->cfg, conn, c->client, sizeof c->client);
  nrd_buf_init(&c->body);
  return c;
}

/* ---- replies ---- */

static enum MHD_Result send_reply(struct http_ctx *c, struct http_reply *r)
{
  struct MHD_Response *resp;
  enum MHD_Result rc;
  char *body = r->body ? r->body : nrd_xstrdup("");
  size_t len = strlen(body);

  r->body = NULL;
  resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(body);
    LOG_ERROR_AT(NRD_FAULT_OURS, "cannot create a response", "path", c->path);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          r->content_type ? r->content_type : "application/json");
  MHD_add_response_header(resp, "X-Request-Id", c->request_id);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (r->allow)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
  for (const char *const *hv = r->headers; hv && hv[0] && hv[1]; hv += 2)
    MHD_add_response_header(resp, hv[0], hv[1]);
  if (r->status == 401)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  if (r->close)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  rc = MHD_queue_response(c->conn, r->status, resp);
  MHD_destroy_response(resp);
  if (rc == MHD_YES)
    c->status = r->status;
  return rc;
}

static bool is_api_path(const char *path)
{
  return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0;
}

static bool auth_ok(const struct nrd_config *cfg, struct MHD_Connection *conn)
{
  static const char prefix[] = "Bearer ";
  const char *hdr;
  size_t plen = sizeof prefix - 1;

  if (!cfg->api_token || !*cfg->api_token)
    return true;
  hdr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!hdr || strncasecmp(hdr, prefix, plen) != 0)
    return false;
  hdr += plen;
  return nrd_ct_equal(hdr, strlen(hdr), cfg->api_token, strlen(cfg->api_token));
}

/* Framing refusals, 401 or 413 decided from the headers alone; false when
 * none applies. */
static bool early_refusal(struct http_ctx *c, const char *version, struct http_reply *out)
{
  const char *cl;
  int64_t n;

  const char *token = c->h->cfg->api_token;
  bool token_checked = is_api_path(c->path) && token && *token;
  if (http_framing_refusal(c->conn, c->method, version, token_checked, out)) {
    out->close = true;
    return true;
  }
  if (is_api_path(c->path) && !auth_ok(c->h->cfg, c->conn)) {
    http_error(out, HTTP_E_UNAUTHORIZED, NULL, NULL);
    return true;
  }
  cl = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  if (cl && nrd_parse_i64(cl, 0, INT64_MAX, &n) && (uint64_t)n > c->h->cfg->max_body_bytes) {
    http_errorf(out, HTTP_E_PAYLOAD_TOO_LARGE, "request body over %zu bytes",
                c->h->cfg->max_body_bytes);
    return true;
  }
  return false;
}

/* Appends upload data; false once the connection should be closed. */
static bool body_feed(struct http_ctx *c, const char *data, size_t n)
{
  size_t max = c->h->cfg->max_body_bytes;

  if (!c->too_large && n <= max && c->body.len <= max - n) {
    nrd_buf_append(&c->body, data, n);
    return true;
  }
  if (!c->too_large) {
    c->too_large = true;
    c->discarded = c->body.len;
    nrd_buf_cleanup(&c->body);
    nrd_buf_init(&c->body);
  }
  c->discarded += n;
  return c->discarded <= max + DISCARD_BUDGET;
}

/* ---- waiting for a run ---- */

void http_ctx_finish_wait(struct http_ctx *c, struct http_wait_result *res)
{
  pthread_mutex_lock(&c->mu);
  c->result = *res;
  res->error_message = NULL;
  res->result_json = NULL;
  res->detail = NULL;
  c->done = true;
  if (c->suspended && !c->resumed) {
    c->resumed = true;
    MHD_resume_connection(c->conn);
  }
  pthread_mutex_unlock(&c->mu);
  http_ctx_unref(c);
}

/* The handler registered a run callback: suspend unless it already reported
 * (then answer now) or the server is stopping (then answer 503). */
static enum MHD_Result wait_begin(struct http_ctx *c)
{
  struct nrd_http *h = c->h;
  struct http_reply rep = { 0 };
  bool answer_now;

  pthread_mutex_lock(&h->mu);
  pthread_mutex_lock(&c->mu);
  answer_now = c->done || h->stopping;
  if (answer_now) {
    c->resumed = true; /* a late callback must not resume this connection */
  } else {
    MHD_suspend_connection(c->conn);
    c->suspended = true;
    c->in_list = true;
    c->next = h->waiting;
    c->prev = NULL;
    if (h->waiting)
      h->waiting->prev = c;
    h->waiting = c;
    h->n_waiting++;
  }
  pthread_mutex_unlock(&c->mu);
  pthread_mutex_unlock(&h->mu);
  if (!answer_now)
    return MHD_YES;

  if (c->done)
    c->render(c, &rep);
  else
    http_error(&rep, HTTP_E_SHUTTING_DOWN, NULL, NULL);
  return send_reply(c, &rep);
}

/* The access-handler call after a resume. */
static enum MHD_Result wait_end(struct http_ctx *c)
{
  struct http_reply rep = { 0 };
  bool done;

  pthread_mutex_lock(&c->mu);
  done = c->done;
  pthread_mutex_unlock(&c->mu);
  if (done)
    c->render(c, &rep);
  else
    http_error(&rep, HTTP_E_SHUTTING_DOWN, NULL, NULL);
  return send_reply(c, &rep);
}

static void wait_unlink(struct http_ctx *c)
{
  struct nrd_http *h = c->h;

  pthread_mutex_lock(&h->mu);
  if (c->in_list) {
    if (c->prev)
      c->prev->next = c->next;
    else
      h->waiting = c->next;
    if (c->next)
      c->next->prev = c->prev;
    c->in_list = false;
    h->n_waiting--;
    pthread_cond_broadcast(&h->cv);
  }
  pthread_mutex_unlock(&h->mu);
}

/* ---- dispatch ---- */

static enum MHD_Result dispatch(struct http_ctx *c)
{
  struct http_reply rep = { 0 };
  const char *ctype;

  if (c->too_large) {
    http_errorf(&rep, HTTP_E_PAYLOAD_TOO_LARGE, "request body over %zu bytes",
                c->h->cfg->max_body_bytes);
  } else if (c->match == HTTP_MATCH_NOT_FOUND) {
    http_error(&rep, HTTP_E_NOT_FOUND, NULL, NULL);
  } else if (c->match == HTTP_MATCH_BAD_METHOD) {
    http_errorf(&rep, HTTP_E_METHOD_NOT_ALLOWED, "method %s not allowed; allowed: %s", c->method,
                c->allow);
    rep.allow = c->allow;
  } else {
    bool parsed = true;
    if (c->route->body) { /* the Content-Type matters only for a body */
      ctype = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
      parsed = http_body_parse(ctype, c->body.data, c->body.len, &c->json, &rep) == 0;
    }
    if (parsed && c->route->handler(c, &rep) == HTTP_WAIT)
      return wait_begin(c);
  }
  return send_reply(c, &rep);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
  struct nrd_http *h = cls;
  struct http_ctx *c = *con_cls;
  enum MHD_Result rc = MHD_YES;

  if (!c) {
    struct http_reply rep = { 0 };
    http_deadline_head_done(h->deadline, conn);
    c = ctx_create(h, conn, url, method);
    *con_cls = c;
    c->match = http_route_find(method, c->path, &c->route, c->params, c->allow, sizeof c->allow);
    if (!early_refusal(c, version, &rep))
      return MHD_YES;
    nrd_log_set_request_id(c->request_id);
    c->early_replied = true;
    rc = send_reply(c, &rep);
    nrd_log_set_request_id(NULL);
    return rc;
  }

  if (c->early_replied) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    bool keep = body_feed(c, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return keep ? MHD_YES : MHD_NO;
  }

  nrd_log_set_request_id(c->request_id);
  rc = c->suspended ? wait_end(c) : dispatch(c);
  nrd_log_set_request_id(NULL);
  return rc;
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
  switch (toe) {
  case MHD_REQUEST_TERMINATED_COMPLETED_OK:
    return "ok";
  case MHD_REQUEST_TERMINATED_WITH_ERROR:
    return "error";
  case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
    return "timeout";
  case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
    return "shutdown";
  case MHD_REQUEST_TERMINATED_READ_ERROR:
    return "read_error";
  case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    return "client_abort";
  }
  return "unknown";
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct nrd_http *h = cls;
  struct http_ctx *c = *con_cls;
  const char *route;

  http_deadline_request_done(h->deadline, conn);
  if (!c)
    return;
  *con_cls = NULL;
  route = c->route ? c->route->name : "unmatched";
  nrd_log_set_request_id(c->request_id);
  LOG_ACCESS("request", "method", c->method, "path", c->path, "#status", NRD_I64(c->status),
             "#durationMs", NRD_I64(http_elapsed_ms(c)), "client", c->client, "route", route,
             "termination", termination_name(toe),
             /* a refusal (4xx) is the client's fault; otherwise this key is
              * NULL and ends the fields */
             c->status >= 400 && c->status < 500 ? "fault" : NULL, "client");
  nrd_log_set_request_id(NULL);
  if (c->status)
    nrd_metrics_http_request(route, c->status, (double)http_elapsed_ms(c) / 1000.0);
  wait_unlink(c);
  http_ctx_unref(c);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  struct http_deadline *d = cls;

  if (toe == MHD_CONNECTION_NOTIFY_STARTED)
    http_deadline_opened(d, conn, socket_context);
  else
    http_deadline_closed(d, socket_context);
}

/* Routing is on the raw path: leave the URL and query as sent. */
static size_t keep_escaped(void *cls, struct MHD_Connection *conn, char *s)
{
  return strlen(s);
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  char msg[512];
  size_t n;

  vsnprintf(msg, sizeof msg, fmt, ap);
  n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = '\0';
  LOG_WARN("libmicrohttpd", "detail", msg);
}

/* ---- lifecycle ---- */

struct nrd_http *nrd_http_start(const struct nrd_config *cfg, struct nrd_runner *runner,
                                struct nrd_scheduler *sched, char *err, size_t errlen)
{
  struct nrd_http *h;
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  const struct sockaddr *sa;
  unsigned flags =
      MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  const char *host = cfg->host ? cfg->host : "127.0.0.1";

  http_routes_declare_metrics();
  if (cfg->port > 65535) {
    snprintf(err, errlen, "port %u is out of range", cfg->port);
    return NULL;
  }
  memset(&sin, 0, sizeof sin);
  memset(&sin6, 0, sizeof sin6);
  if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)cfg->port);
    sa = (const struct sockaddr *)&sin;
  } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons((uint16_t)cfg->port);
    sa = (const struct sockaddr *)&sin6;
    flags |= MHD_USE_IPv6;
  } else {
    snprintf(err, errlen, "HOST: '%s' is not an IPv4 or IPv6 address", host);
    return NULL;
  }

  h = nrd_xcalloc(1, sizeof *h);
  h->cfg = cfg;
  h->runner = runner;
  h->sched = sched;
  h->quiesced_fd = MHD_INVALID_SOCKET;
  h->started_mono_ms = nrd_mono_ms();
  pthread_mutex_init(&h->mu, NULL);
  nrd_cond_init_mono(&h->cv); /* timed waits count monotonic time */

  h->deadline = http_deadline_create(cfg->http_request_timeout_seconds, CONNECTION_TIMEOUT_S);
  nrd_log_buffer_start(NRD_LOG_FLUSH_MS); /* access lines: see nrd/log.h */
  h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER,
                               mhd_log, h, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT,
                               cfg->http_max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                               cfg->http_max_connections_per_ip, MHD_OPTION_NOTIFY_CONNECTION,
                               on_connection, h->deadline, MHD_OPTION_CONNECTION_TIMEOUT,
                               CONNECTION_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                               CONNECTION_MEMORY_LIMIT, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                               h, MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, h, MHD_OPTION_END);
  if (!h->daemon || !http_deadline_start(h->deadline)) {
    if (h->daemon)
      MHD_stop_daemon(h->daemon);
    snprintf(err, errlen, "cannot listen on %s:%u (address in use or not available)", host,
             cfg->port);
    http_deadline_destroy(h->deadline);
    nrd_log_buffer_stop();
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
    return NULL;
  }
  return h;
}

unsigned nrd_http_port(const struct nrd_http *h)
{
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
  return di ? di->port : 0;
}

void nrd_http_quiesce(struct nrd_http *h)
{
  if (h->quiesced_fd == MHD_INVALID_SOCKET)
    h->quiesced_fd = MHD_quiesce_daemon(h->daemon);
}

/* Resumes every suspended request that is still waiting (it answers 503),
 * then waits, bounded, for all of them to complete. No server lock is held
 * while calling into libmicrohttpd. */
static void drain_waiting(struct nrd_http *h)
{
  int64_t deadline = nrd_mono_ms() + STOP_DRAIN_MS;
  struct http_ctx **list;
  size_t n = 0;

  pthread_mutex_lock(&h->mu);
  h->stopping = true;
  list = nrd_xcalloc(h->n_waiting + 1, sizeof *list);
  for (struct http_ctx *c = h->waiting; c; c = c->next) {
    http_ctx_ref(c);
    list[n++] = c;
  }
  pthread_mutex_unlock(&h->mu);

  for (size_t i = 0; i < n; i++) {
    struct http_ctx *c = list[i];
    pthread_mutex_lock(&c->mu);
    if (!c->resumed) {
      c->resumed = true;
      c->shutdown = true;
      MHD_resume_connection(c->conn);
    }
    pthread_mutex_unlock(&c->mu);
    http_ctx_unref(c);
  }
  free(list);

  pthread_mutex_lock(&h->mu);
  while (h->n_waiting > 0 && nrd_mono_ms() < deadline) {
    nrd_cond_wait_ms(&h->cv, &h->mu, 50);
  }
  if (h->n_waiting > 0)
    LOG_WARN("http stop: waiting requests still open", "#count", NRD_I64(h->n_waiting));
  pthread_mutex_unlock(&h->mu);
}

void nrd_http_stop(struct nrd_http *h)
{
  if (!h)
    return;
  drain_waiting(h);
  http_deadline_stop(h->deadline);
  MHD_stop_daemon(h->daemon);
  http_deadline_destroy(h->deadline);
  nrd_log_buffer_stop(); /* after the last completion: every access line is out */
  if (h->quiesced_fd != MHD_INVALID_SOCKET)
    close(h->quiesced_fd);
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
  free(h);
}
