#ifndef NRD_HTTP_INTERNAL_H
#define NRD_HTTP_INTERNAL_H

/* Private to src/http: the request context, the route table, the error
 * catalogue, body checks and the endpoint handlers. Handlers never see
 * libmicrohttpd: they read the context and fill a struct http_reply. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nrd/config.h"
#include "nrd/run.h"
#include "nrd/util.h"

#define HTTP_MAX_PATH 1024
#define HTTP_MAX_PARAMS 2
#define HTTP_REQUEST_ID_MAX 128

struct nrd_http;
struct http_ctx;

/* ---- replies ---- */

/* What a handler answers. body is heap-owned (freed by http_reply_cleanup,
 * or handed to libmicrohttpd when queued); content_type and allow are static. */
struct http_reply {
  unsigned status;
  char *body;
  const char *content_type;   /* NULL: application/json */
  const char *allow;          /* 405: the Allow header */
  const char *const *headers; /* static name, value, ..., NULL: extra headers */
  bool close;                 /* Connection: close, nothing more read on it */
};
void http_reply_cleanup(struct http_reply *r);
/* status with body taken over (heap, may not be NULL). */
void http_reply_json(struct http_reply *r, unsigned status, char *body);
/* Starts (b initialised here) the body of a run accepted:
 * {"success":true,"message":message,"jobId":run_id,"runId":run_id
 * for the caller to go on and close. (check_failed.c) */
struct nrd_buf;
void http_run_accepted(struct nrd_buf *b, const char *message, const char *run_id);

/* ---- bodies of the read endpoints, from core's plain data (render.c):
 * heap JSON text for http_reply_json ---- */

char *http_render_run(const struct nrd_run_record *rec);
char *http_render_recoveries(const struct nrd_ledger_row *rows, size_t n);
char *http_render_events(const struct nrd_event *ev, size_t n);
char *http_render_run_summaries(const struct nrd_run_summary *runs, size_t n);
char *http_render_overview(const struct nrd_overview *ov);
char *http_render_hourly(int hours, int64_t from_ms, int64_t to_ms,
                         const struct nrd_hourly_bucket *b, size_t n);

/* ---- error catalogue (errors.c) ---- */

enum http_err {
  HTTP_E_NOT_FOUND = 0,
  HTTP_E_METHOD_NOT_ALLOWED,
  HTTP_E_PAYLOAD_TOO_LARGE,
  HTTP_E_UNSUPPORTED_MEDIA_TYPE,
  HTTP_E_INVALID_JSON,
  HTTP_E_INVALID_BODY,
  HTTP_E_UNKNOWN_FIELD,
  HTTP_E_INVALID_FIELD,
  HTTP_E_INVALID_QUERY,
  HTTP_E_INVALID_STATE,
  HTTP_E_INVALID_LIMIT,
  HTTP_E_UNAUTHORIZED,
  HTTP_E_RUN_NOT_FOUND,
  HTTP_E_RECOVERY_NOT_FOUND,
  HTTP_E_SCHEDULER_PAUSED,
  HTTP_E_SCHEDULER_DISABLED,
  HTTP_E_NOT_READY,
  HTTP_E_SHUTTING_DOWN,
  HTTP_E_NOVITA_UNAVAILABLE,
  HTTP_E_DUPLICATE_FIELD,
  HTTP_E_STORE_UNAVAILABLE,
  HTTP_E_BAD_FRAMING,
  HTTP_E_LENGTH_REQUIRED,
  HTTP_E_NOT_IMPLEMENTED,
  HTTP_E_INTERNAL,
  HTTP_E_COUNT
};
const char *http_err_code(enum http_err e); /* "NOT_FOUND", ... */
unsigned http_err_status(enum http_err e);  /* 404, ... */
/* {"success":false,"error":{"code","message"}}; message NULL: the catalogue's.
 * result_json (may be NULL) is a JSON object added as "result" (502). */
void http_error(struct http_reply *r, enum http_err e, const char *message,
                const char *result_json);
/* Like http_error with a printf-style message. */
void http_errorf(struct http_reply *r, enum http_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- router (router.c) ---- */

enum http_handler_rc {
  HTTP_REPLY = 0, /* reply is filled */
  HTTP_WAIT       /* the request waits for a run (the wait protocol below) */
};
typedef enum http_handler_rc (*http_handler_fn)(struct http_ctx *c, struct http_reply *out);

struct http_route {
  const char *method;
  const char *pattern; /* segments; "{name}" matches one non-empty segment */
  http_handler_fn handler;
  const char *name; /* route label for metrics (static) */
  bool body;        /* reads a JSON body */
};

enum http_match { HTTP_MATCH_OK = 0, HTTP_MATCH_NOT_FOUND, HTTP_MATCH_BAD_METHOD };

/* Makes every route's latency histogram appear in /metrics before its first
 * request. */
void http_routes_declare_metrics(void);

/* True for a path we are willing to route: starts with '/', at most
 * HTTP_MAX_PATH bytes, only [A-Za-z0-9._~/-], no "..", no "//". */
bool http_path_ok(const char *path);
/* Finds the route for method and path. On HTTP_MATCH_OK, *route is set and
 * params[i] (heap, caller frees each) hold the {param} segments in order (the
 * rest NULL). On HTTP_MATCH_BAD_METHOD, allow gets "GET, POST"-style text. */
enum http_match http_route_find(const char *method, const char *path,
                                const struct http_route **route, char *params[HTTP_MAX_PARAMS],
                                char *allow, size_t allowlen);

/* ---- request bodies (body.c) ---- */

/* Content-Type acceptable for a JSON body: absent, or application/json with
 * optional parameters. */
bool http_content_type_ok(const char *content_type);
/* Checks a present body and parses it: 415, 400 INVALID_JSON, 400 for a
 * non-object. *json gets the object (caller deletes) or NULL for an empty body.
 * Returns 0, or -1 with the error in out. */
int http_body_parse(const char *content_type, const char *data, size_t len, cJSON **json,
                    struct http_reply *out);

enum http_field_type { HTTP_FIELD_BOOL = 0, HTTP_FIELD_STRING };
struct http_field {
  const char *name;
  enum http_field_type type;
};
/* Checks that obj (may be NULL) holds only the listed fields, each of its
 * type. Returns 0, or -1 with 400 UNKNOWN_FIELD / INVALID_FIELD in out. */
int http_body_fields(const cJSON *obj, const struct http_field *fields, size_t n,
                     struct http_reply *out);

/* ---- the request context (server.c) ---- */

/* What a waiting request learns when its run ends. */
struct http_wait_result {
  bool store_failed; /* the run's database could not be written */
  bool completed;
  char *error_message; /* heap */
  char *result_json;   /* heap */
  int rc;              /* an operator control's result (nrd_runner_control) */
  char *detail;        /* heap: its message, when it has its own */
};

struct http_ctx {
  struct nrd_http *h;
  void *conn;         /* struct MHD_Connection * (server.c only) */
  atomic_int refs;    /* libmicrohttpd's + a pending run callback's */
  pthread_mutex_t mu; /* guards the wait fields below */

  char request_id[HTTP_REQUEST_ID_MAX + 1];
  char method[16];
  char *path; /* raw path, heap */
  char client[64];
  int64_t start_mono_ms;
  unsigned status; /* the status queued; 0 none */

  enum http_match match;
  const struct http_route *route;
  char *params[HTTP_MAX_PARAMS];
  char allow[64];

  bool early_replied;
  bool too_large;
  size_t discarded;
  struct nrd_buf body; /* up to cfg->max_body_bytes */
  cJSON *json;         /* parsed body or NULL */

  /* waiting for a run (check-failed immediate) */
  bool suspended; /* the connection was suspended */
  bool done;      /* the run reported (result is set) */
  bool resumed;   /* someone resumed it (or must not) */
  bool shutdown;  /* resumed by nrd_http_stop */
  bool in_list;   /* on the server's list of waiting requests */
  struct http_ctx *next, *prev;
  struct http_wait_result result;
  void (*render)(struct http_ctx *c, struct http_reply *out);
};

/* Server state handlers read. */
const struct nrd_config *http_cfg(const struct http_ctx *c);
struct nrd_runner *http_runner(const struct http_ctx *c);
struct nrd_scheduler *http_scheduler(const struct http_ctx *c);
int64_t http_uptime_seconds(const struct http_ctx *c);
int64_t http_elapsed_ms(const struct http_ctx *c);

/* A query parameter, percent-decoded into out. 0 absent, 1 present, -1 when
 * it does not decode (bad escape, NUL) or does not fit. */
int http_query(struct http_ctx *c, const char *key, char *out, size_t outlen);
/* The list endpoints' ?limit=: dflt when absent; false (400 INVALID_LIMIT
 * in out) when it is not an integer from 1 to max. */
bool http_query_limit(struct http_ctx *c, int64_t dflt, int64_t max, size_t *limit,
                      struct http_reply *out);

/* The wait protocol. A handler that returns HTTP_WAIT first sets c->render
 * and takes a reference (http_ctx_ref) for the callback it registered; the
 * callback calls http_ctx_finish_wait exactly once, which stores the result,
 * wakes the connection and drops that reference. c->render then runs on the
 * request's next access-handler call (or at once if the run already ended). */
void http_ctx_ref(struct http_ctx *c);
void http_ctx_unref(struct http_ctx *c);
/* Takes over the strings in res. */
void http_ctx_finish_wait(struct http_ctx *c, struct http_wait_result *res);

/* ---- framing (framing.c) ---- */

/* Fills out and returns true when the request head must be refused (400
 * BAD_FRAMING, 411, 501, and 401 for two Authorization headers when
 * token_checked: the path needs API_TOKEN and it is set); the caller answers
 * and closes the connection. conn: struct MHD_Connection *. */
struct MHD_Connection;
bool http_framing_refusal(struct MHD_Connection *conn, const char *method, const char *version,
                          bool token_checked, struct http_reply *out);

/* ---- request-head deadline (deadline.c) ---- */

/* create (a kept-alive connection's next head may first idle for
 * idle_seconds), then start (the reaper thread; false if it cannot start). stop
 * before the daemon stops; destroy after. opened/closed from the daemon's
 * connection notices (socket_context: the daemon's per-socket pointer);
 * head_done on a request's first access-handler call; request_done when it
 * completes. */
struct http_deadline;
struct http_deadline *http_deadline_create(unsigned timeout_seconds, unsigned idle_seconds);
bool http_deadline_start(struct http_deadline *d);
void http_deadline_stop(struct http_deadline *d);
void http_deadline_destroy(struct http_deadline *d);
void http_deadline_opened(struct http_deadline *d, struct MHD_Connection *conn,
                          void **socket_context);
void http_deadline_closed(struct http_deadline *d, void **socket_context);
void http_deadline_head_done(struct http_deadline *d, struct MHD_Connection *conn);
void http_deadline_request_done(struct http_deadline *d, struct MHD_Connection *conn);

/* ---- handlers (one file per endpoint group) ---- */

enum http_handler_rc http_h_check_failed(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_get_run(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_list_recoveries(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_retry_recovery(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_abandon_recovery(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_scheduler_status(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_scheduler_trigger(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_scheduler_pause(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_scheduler_resume(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_list_events(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_health(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_ready(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_metrics(struct http_ctx *c, struct http_reply *out);
/* The operator console (ui.c, console.c). */
enum http_handler_rc http_h_ui_index(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_ui_file(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_openapi(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_list_runs(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_overview(struct http_ctx *c, struct http_reply *out);
enum http_handler_rc http_h_stats_hourly(struct http_ctx *c, struct http_reply *out);

#endif
