/* The HTTP API end to end: the real server on 127.0.0.1 port 0 in front of a
 * real runner (temp SQLite file) and a real Novita client talking to the
 * in-process simulator. Requests go out through libcurl, or a raw socket where
 * curl would clean the request up (dot segments, chunked bodies). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/util.h"
#include "stack.h"
#include "testutil.h"

#define API "/api/instances/migration"
#define MAX_BODY 4096
#define FLEET 8
#define FAILED 4
#define TOKEN "s3cret-token-for-tests"

static struct tu_stack g_stack;

/* ---- helpers ---- */

struct answer {
  long status;
  cJSON *json;
  struct tu_resp resp;
};

static void request(const char *method, const char *path, const char *const *headers,
                    const char *body, struct answer *a)
{
  char url[1200];
  snprintf(url, sizeof url, "%s%s", g_stack.base, path);
  memset(a, 0, sizeof *a);
  assert_int_equal(tu_http(method, url, headers, body, &a->resp), 0);
  a->status = a->resp.status;
  tu_record_response(method, path, &a->resp);
  a->json = nrd_json_parse(a->resp.body, a->resp.body_len);
}

static void answer_cleanup(struct answer *a)
{
  cJSON_Delete(a->json);
  tu_resp_cleanup(&a->resp);
}

static void assert_header(const struct answer *a, const char *name, const char *want)
{
  char *v = tu_header(&a->resp, name);
  assert_non_null(v);
  if (want)
    assert_string_equal(v, want);
  free(v);
}

static void assert_json_content_type(const struct answer *a)
{
  char *v = tu_header(&a->resp, "Content-Type");
  assert_non_null(v);
  assert_non_null(strstr(v, "application/json"));
  free(v);
}

static void assert_error(const struct answer *a, long status, const char *code,
                         const char *message_part)
{
  const cJSON *err;
  assert_int_equal(a->status, status);
  assert_json_content_type(a);
  assert_non_null(a->json);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a->json, "success")));
  err = cJSON_GetObjectItem(a->json, "error");
  assert_string_equal(nrd_json_str(err, "code"), code);
  assert_non_null(nrd_json_str(err, "message"));
  if (message_part)
    assert_non_null(strstr(nrd_json_str(err, "message"), message_part));
}

/* Sends raw bytes on a fresh connection and returns the status of the
 * answer (0 when none came). */
static long raw_request(const char *data, size_t len)
{
  struct sockaddr_in sin = { 0 };
  struct timeval tv = { .tv_sec = 10 };
  char buf[4096];
  size_t got = 0;
  long status = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)nrd_http_port(g_stack.http));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  for (size_t off = 0; off < len;) {
    ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  while (got < sizeof buf - 1) {
    ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (r <= 0)
      break;
    got += (size_t)r;
    buf[got] = '\0';
    if (strstr(buf, "\r\n\r\n"))
      break;
  }
  buf[got] = '\0';
  if (strncmp(buf, "HTTP/1.", 7) == 0)
    status = strtol(buf + 9, NULL, 10);
  close(fd);
  return status;
}

static long raw_get(const char *path)
{
  char req[1400];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\n\r\n",
                   path);
  return raw_request(req, (size_t)n);
}

/* Polls runs/{id} until the run leaves "running" (bounded). */
static char *wait_run(const char *run_id)
{
  char path[256];
  snprintf(path, sizeof path, API "/runs/%s", run_id);
  for (int i = 0; i < 300; i++) {
    struct answer a;
    request("GET", path, NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    const char *st = nrd_json_str(a.json, "state");
    assert_non_null(st);
    if (strcmp(st, "running") != 0) {
      char *copy = nrd_xstrdup(st);
      answer_cleanup(&a);
      return copy;
    }
    answer_cleanup(&a);
    nrd_sleep_ms(100);
  }
  fail_msg("run %s did not finish", run_id);
  return NULL;
}

/* ---- setup ---- */

static int setup_open(void **state)
{
  cJSON *fleet;
  tu_stack_init(&g_stack, NULL);
  fleet = nrd_sim_make_fleet(FLEET, FAILED, nrd_now_ms() / 1000);
  tu_stack_load(&g_stack, fleet);
  cJSON_Delete(fleet);
  g_stack.cfg.max_body_bytes = MAX_BODY;
  tu_stack_start(&g_stack);
  return 0;
}

static int teardown(void **state)
{
  tu_stack_cleanup(&g_stack);
  return 0;
}

/* ---- check-failed ---- */

static void test_immediate_dry_report(void **state)
{
  struct answer a;
  const cJSON *res, *outcomes, *o;

  request("POST", API "/check-failed", NULL, "{\"immediate\":true,\"dryRun\":true}", &a);
  assert_int_equal(a.status, 200);
  assert_json_content_type(&a);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a.json, "success")));
  assert_string_equal(nrd_json_str(a.json, "message"), "Failed migration check completed");
  assert_non_null(nrd_json_str(a.json, "executedAt"));
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(a.json, "duration")));
  res = cJSON_GetObjectItem(a.json, "result");
  assert_true(cJSON_IsObject(res));
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(res, "totalChecked")));
  assert_int_equal(cJSON_GetObjectItem(res, "failedJobsFound")->valueint, FAILED);
  assert_int_equal(cJSON_GetObjectItem(res, "instancesRecreated")->valueint, 0);
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(res, "errors")));
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(res, "dryRun")));
  assert_non_null(nrd_json_str(res, "runId"));
  outcomes = cJSON_GetObjectItem(res, "outcomes");
  assert_true(cJSON_IsArray(outcomes));
  assert_int_equal(cJSON_GetArraySize(outcomes), FAILED);
  cJSON_ArrayForEach(o, outcomes)
    assert_string_equal(nrd_json_str(o, "action"), "planned");
  /* a dry run deletes and creates nothing */
  assert_int_equal(nrd_sim_count(g_stack.sim, "POST", "/v1/gpu/instance/delete"), 0);
  assert_int_equal(nrd_sim_count(g_stack.sim, "POST", "/v1/gpu/instance/create"), 0);
  answer_cleanup(&a);
}

struct immediate_call {
  struct answer a;
  atomic_llong done_ms;
};

static void *immediate_thread(void *arg)
{
  struct immediate_call *call = arg;
  char url[256];
  snprintf(url, sizeof url, "%s" API "/check-failed", g_stack.base);
  memset(&call->a, 0, sizeof call->a);
  if (tu_http("POST", url, NULL, "{\"immediate\":true}", &call->a.resp) == 0) {
    call->a.status = call->a.resp.status;
    call->a.json = nrd_json_parse(call->a.resp.body, call->a.resp.body_len);
  }
  atomic_store(&call->done_ms, (long long)nrd_mono_ms());
  return NULL;
}

/* An immediate run waits on a suspended connection: /health still answers
 * at once, before the run's own answer comes. */
static void test_health_during_immediate(void **state)
{
  struct immediate_call call;
  pthread_t th;
  struct answer h;
  int64_t start, health_ms, health_took;

  atomic_init(&call.done_ms, 0);
  nrd_sim_set_latency(g_stack.sim, 300);
  start = nrd_mono_ms();
  assert_int_equal(pthread_create(&th, NULL, immediate_thread, &call), 0);
  nrd_sleep_ms(500);

  int64_t before = nrd_mono_ms();
  request("GET", "/health", NULL, NULL, &h);
  health_ms = nrd_mono_ms();
  health_took = health_ms - before;
  assert_int_equal(h.status, 200);
  assert_int_equal(atomic_load(&call.done_ms), 0); /* the run is still going */
  assert_true(health_took < 250);
  answer_cleanup(&h);

  pthread_join(th, NULL);
  nrd_sim_set_latency(g_stack.sim, 0);
  assert_true(atomic_load(&call.done_ms) > health_ms);
  assert_true(atomic_load(&call.done_ms) - start >= 1000); /* the setup really was slow */
  assert_int_equal(call.a.status, 200);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(call.a.json, "success")));
  const cJSON *res = cJSON_GetObjectItem(call.a.json, "result");
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(res, "dryRun")));
  assert_int_equal(cJSON_GetObjectItem(res, "failedJobsFound")->valueint, FAILED);
  answer_cleanup(&call.a);
}

static void test_background_then_poll(void **state)
{
  struct answer a;
  char *final;

  request("POST", API "/check-failed", NULL, NULL, &a);
  assert_int_equal(a.status, 202);
  assert_json_content_type(&a);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a.json, "success")));
  assert_string_equal(nrd_json_str(a.json, "message"),
                      "Failed migration check job scheduled successfully");
  const char *run_id = nrd_json_str(a.json, "runId");
  assert_non_null(run_id);
  assert_string_equal(nrd_json_str(a.json, "jobId"), run_id);
  assert_non_null(nrd_json_str(a.json, "scheduledAt"));
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(a.json, "duration")));

  final = wait_run(run_id);
  assert_string_equal(final, "done");
  free(final);
  answer_cleanup(&a);
}

static void test_bodies(void **state)
{
  struct answer a;
  const char *const text_plain[] = { "Content-Type: text/plain", NULL };
  const char *const json_utf8[] = { "Content-Type: application/json; charset=utf-8", NULL };

  request("POST", API "/check-failed", text_plain, "{\"immediate\":false}", &a);
  assert_error(&a, 415, "UNSUPPORTED_MEDIA_TYPE", "application/json");
  answer_cleanup(&a);

  request("POST", API "/check-failed", NULL, "{\"immediate\":", &a);
  assert_error(&a, 400, "INVALID_JSON", NULL);
  answer_cleanup(&a);

  request("POST", API "/check-failed", NULL, "[true]", &a);
  assert_error(&a, 400, "INVALID_BODY", NULL);
  answer_cleanup(&a);

  request("POST", API "/check-failed", NULL, "{\"dry_run\":true}", &a);
  assert_error(&a, 400, "UNKNOWN_FIELD", "unknown field 'dry_run'; allowed: immediate, dryRun");
  answer_cleanup(&a);

  request("POST", API "/check-failed", NULL, "{\"immediate\":\"yes\"}", &a);
  assert_error(&a, 400, "INVALID_FIELD", "immediate");
  answer_cleanup(&a);

  request("POST", API "/check-failed", NULL, "{\"dryRun\":1}", &a);
  assert_error(&a, 400, "INVALID_FIELD", "dryRun");
  answer_cleanup(&a);

  /* parameters on the media type are fine */
  request("POST", API "/check-failed", json_utf8, "{\"dryRun\":true}", &a);
  assert_int_equal(a.status, 202);
  answer_cleanup(&a);
}

static void test_too_large(void **state)
{
  struct answer a;
  char *big = nrd_xmalloc(MAX_BODY + 100);
  struct nrd_buf req;

  /* judged from Content-Length */
  memset(big, ' ', MAX_BODY + 99);
  big[0] = '{';
  big[MAX_BODY + 98] = '}';
  big[MAX_BODY + 99] = '\0';
  request("POST", API "/check-failed", NULL, big, &a);
  assert_error(&a, 413, "PAYLOAD_TOO_LARGE", NULL);
  answer_cleanup(&a);
  free(big);

  /* chunked: judged while reading */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, "POST " API "/check-failed HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     "Connection: close\r\n\r\n");
  for (int i = 0; i < 3; i++) {
    nrd_buf_printf(&req, "%x\r\n", 2000);
    for (int k = 0; k < 2000; k++)
      nrd_buf_puts(&req, " ");
    nrd_buf_puts(&req, "\r\n");
  }
  nrd_buf_puts(&req, "0\r\n\r\n");
  assert_int_equal(raw_request(req.data, req.len), 413);
  nrd_buf_cleanup(&req);

  /* a chunked body within the limit is fine */
  const char small[] = "POST " API "/check-failed HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                       "Connection: close\r\n\r\n"
                       "f\r\n{\"dryRun\":true}\r\n0\r\n\r\n";
  assert_int_equal(raw_request(small, sizeof small - 1), 202);
}

/* ---- routing ---- */

static void test_not_found_and_method(void **state)
{
  struct answer a;

  request("GET", "/nope", NULL, NULL, &a);
  assert_error(&a, 404, "NOT_FOUND", NULL);
  assert_header(&a, "X-Request-Id", NULL);
  answer_cleanup(&a);

  request("GET", API "/check-failed", NULL, NULL, &a);
  assert_error(&a, 405, "METHOD_NOT_ALLOWED", NULL);
  assert_header(&a, "Allow", "POST");
  answer_cleanup(&a);

  request("DELETE", "/health", NULL, NULL, &a);
  assert_error(&a, 405, "METHOD_NOT_ALLOWED", NULL);
  assert_header(&a, "Allow", "GET, HEAD");
  answer_cleanup(&a);
}

/* The probes and /metrics answer HEAD: GET's status and headers, no body. */
static void test_head(void **state)
{
  static const char *const paths[] = { "/health", "/ready", "/metrics" };
  struct answer a;

  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    request("HEAD", paths[i], NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(a.resp.body_len, 0);
    assert_header(&a, "Content-Type", i == 2 ? "text/plain; version=0.0.4" : NULL);
    assert_header(&a, "X-Request-Id", NULL);
    answer_cleanup(&a);
  }
}

static void test_raw_paths(void **state)
{
  assert_int_equal(raw_get("/health"), 200);
  assert_int_equal(raw_get("/api%2Finstances%2Fmigration%2Frecoveries"), 404);
  assert_int_equal(raw_get("/api/instances/migration%2Frecoveries"), 404);
  assert_int_equal(raw_get("/health%00"), 404);
  assert_int_equal(raw_get("/%68ealth"), 404);
  assert_int_equal(raw_get("/api/instances/migration/../../../health"), 404);
  assert_int_equal(raw_get("/api/instances/migration/runs/..%2F..%2Fhealth"), 404);
  assert_int_equal(raw_get("//health"), 404);
}

static void test_runs_unknown(void **state)
{
  struct answer a;
  request("GET", API "/runs/run_0_nope", NULL, NULL, &a);
  assert_error(&a, 404, "RUN_NOT_FOUND", NULL);
  answer_cleanup(&a);
}

static void test_request_id(void **state)
{
  struct answer a;
  const char *const mine[] = { "X-Request-Id: abc.DEF_123-x", NULL };
  const char *const bad[] = { "X-Request-Id: has space/slash", NULL };
  char *v;

  request("GET", "/health", mine, NULL, &a);
  assert_header(&a, "X-Request-Id", "abc.DEF_123-x");
  answer_cleanup(&a);

  request("GET", "/health", bad, NULL, &a);
  v = tu_header(&a.resp, "X-Request-Id");
  assert_non_null(v);
  assert_int_equal(strncmp(v, "req_", 4), 0);
  free(v);
  answer_cleanup(&a);

  request("GET", "/nope", NULL, NULL, &a);
  v = tu_header(&a.resp, "X-Request-Id");
  assert_non_null(v);
  assert_int_equal(strncmp(v, "req_", 4), 0);
  free(v);
  answer_cleanup(&a);
}

/* ---- the other endpoints ---- */

static void test_ops(void **state)
{
  struct answer a;
  char *ct;

  request("GET", "/health", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  assert_json_content_type(&a);
  assert_string_equal(nrd_json_str(a.json, "status"), "ok");
  assert_non_null(nrd_json_str(a.json, "version"));
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(a.json, "uptimeSeconds")));
  /* The exact bytes: the body is built by hand. */
  char expected[128];
  snprintf(expected, sizeof expected, "{\"status\":\"ok\",\"version\":\"%s\",\"uptimeSeconds\":%d}",
           NRD_VERSION, cJSON_GetObjectItem(a.json, "uptimeSeconds")->valueint);
  assert_string_equal(a.resp.body, expected);
  assert_int_equal(a.resp.body_len, strlen(expected));
  answer_cleanup(&a);

  request("GET", "/ready", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  assert_string_equal(nrd_json_str(a.json, "status"), "ready");
  answer_cleanup(&a);

  request("GET", "/metrics", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  ct = tu_header(&a.resp, "Content-Type");
  assert_non_null(ct);
  assert_non_null(strstr(ct, "text/plain"));
  free(ct);
  assert_non_null(strstr(a.resp.body, "nrd_"));
  assert_non_null(strstr(a.resp.body, "nrd_ledger_rows{state=\"pending\"}"));
  assert_non_null(strstr(a.resp.body, "health")); /* the route counter of earlier requests */
  answer_cleanup(&a);
}

static void test_recoveries(void **state)
{
  struct answer a;

  request("GET", API "/recoveries", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  assert_true(cJSON_IsArray(cJSON_GetObjectItem(a.json, "recoveries")));
  answer_cleanup(&a);

  request("GET", API "/recoveries?state=created&limit=5", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(a.json, "recoveries")) <= 5);
  answer_cleanup(&a);

  request("GET", API "/recoveries?state=%63reated", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  answer_cleanup(&a);

  request("GET", API "/recoveries?state=bogus", NULL, NULL, &a);
  assert_error(&a, 400, "INVALID_STATE", "pending");
  answer_cleanup(&a);

  request("GET", API "/recoveries?limit=0", NULL, NULL, &a);
  assert_error(&a, 400, "INVALID_LIMIT", NULL);
  answer_cleanup(&a);

  request("GET", API "/recoveries?limit=1001", NULL, NULL, &a);
  assert_error(&a, 400, "INVALID_LIMIT", NULL);
  answer_cleanup(&a);

  request("POST", API "/recoveries/no-such-job/retry", NULL, NULL, &a);
  assert_error(&a, 404, "RECOVERY_NOT_FOUND", NULL);
  answer_cleanup(&a);

  request("POST", API "/recoveries/no-such-job/abandon", NULL, "{\"reason\":\"x\"}", &a);
  assert_error(&a, 404, "RECOVERY_NOT_FOUND", NULL);
  answer_cleanup(&a);

  request("POST", API "/recoveries/no-such-job/abandon", NULL, "{\"why\":\"x\"}", &a);
  assert_error(&a, 400, "UNKNOWN_FIELD", "allowed: reason");
  answer_cleanup(&a);
}

static void test_events(void **state)
{
  struct answer a;
  char path[256];
  const cJSON *events, *first;

  /* the runs of the earlier tests each recorded run.completed */
  request("GET", API "/events?limit=2", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  events = cJSON_GetObjectItem(a.json, "events");
  assert_true(cJSON_IsArray(events));
  assert_int_equal(cJSON_GetArraySize(events), 2);
  first = cJSON_GetArrayItem(events, 0);
  assert_non_null(nrd_json_str(first, "id"));
  snprintf(path, sizeof path, API "/events?since=%s", nrd_json_str(first, "id"));
  answer_cleanup(&a);

  request("GET", path, NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  events = cJSON_GetObjectItem(a.json, "events");
  assert_true(cJSON_IsArray(events));
  assert_true(cJSON_GetArraySize(events) >= 1);
  answer_cleanup(&a);

  request("GET", API "/events?limit=abc", NULL, NULL, &a);
  assert_error(&a, 400, "INVALID_LIMIT", NULL);
  answer_cleanup(&a);

  request("GET", API "/events?since=%00x", NULL, NULL, &a);
  assert_error(&a, 400, "INVALID_QUERY", NULL);
  answer_cleanup(&a);
}

static void test_scheduler_disabled(void **state)
{
  static const char *const paths[][2] = {
    { "GET", API "/scheduler/status" },
    { "POST", API "/scheduler/trigger" },
    { "POST", API "/scheduler/pause" },
    { "POST", API "/scheduler/resume" },
  };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    struct answer a;
    request(paths[i][0], paths[i][1], NULL, NULL, &a);
    assert_error(&a, 503, "SCHEDULER_DISABLED", NULL);
    answer_cleanup(&a);
  }
}

/* ---- with a token ---- */

static char g_logpath[600];
static int g_logfd = -1;

static int setup_token(void **state)
{
  tu_stack_init(&g_stack, NULL);
  free(g_stack.cfg.api_token);
  g_stack.cfg.api_token = nrd_xstrdup(TOKEN);
  g_stack.cfg.log_level = NRD_LOG_INFO;
  snprintf(g_logpath, sizeof g_logpath, "%s/service.log", g_stack.dir);
  g_logfd = open(g_logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  assert_true(g_logfd >= 0);
  nrd_log_set_fd(g_logfd);
  tu_stack_start(&g_stack);
  return 0;
}

static int teardown_token(void **state)
{
  tu_stack_cleanup(&g_stack);
  nrd_log_set_fd(1);
  close(g_logfd);
  return 0;
}

static void test_auth(void **state)
{
  struct answer a;
  const char *const good[] = { "Authorization: Bearer " TOKEN, NULL };
  const char *const wrong[] = { "Authorization: Bearer nope", NULL };
  const char *const basic[] = { "Authorization: Basic " TOKEN, NULL };

  request("POST", API "/check-failed", NULL, "{\"dryRun\":true}", &a);
  assert_error(&a, 401, "UNAUTHORIZED", NULL);
  assert_header(&a, "WWW-Authenticate", "Bearer");
  answer_cleanup(&a);

  request("GET", API "/runs/run_0_x", wrong, NULL, &a);
  assert_error(&a, 401, "UNAUTHORIZED", NULL);
  answer_cleanup(&a);

  request("GET", API "/runs/run_0_x", basic, NULL, &a);
  assert_error(&a, 401, "UNAUTHORIZED", NULL);
  answer_cleanup(&a);

  request("GET", API "/no-such-route", NULL, NULL, &a);
  assert_error(&a, 401, "UNAUTHORIZED", NULL);
  answer_cleanup(&a);

  request("GET", API "/runs/run_0_x", good, NULL, &a);
  assert_error(&a, 404, "RUN_NOT_FOUND", NULL);
  answer_cleanup(&a);

  request("GET", "/health", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  answer_cleanup(&a);
  request("GET", "/ready", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  answer_cleanup(&a);
  request("GET", "/metrics", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  answer_cleanup(&a);
}

/* The access line of request id rid, read back from the log file. */
static cJSON *access_line(const char *rid)
{
  for (int tries = 0; tries < 50; tries++) {
    FILE *f = fopen(g_logpath, "r");
    char line[4096];
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
      cJSON *j = nrd_json_parse(line, strlen(line));
      const char *msg = nrd_json_str(j, "msg"), *id = nrd_json_str(j, "requestId");
      if (msg && id && strcmp(msg, "request") == 0 && strcmp(id, rid) == 0) {
        fclose(f);
        return j;
      }
      cJSON_Delete(j);
    }
    fclose(f);
    nrd_sleep_ms(20);
  }
  fail_msg("no access line for %s", rid);
  return NULL;
}

static void test_access_log(void **state)
{
  struct answer a;
  const char *const proxied[] = { "X-Request-Id: xff-test-1", "Authorization: Bearer " TOKEN,
                                  "X-Forwarded-For: 198.51.100.9, 203.0.113.7, 127.0.0.1", NULL };
  const char *const direct[] = { "X-Request-Id: direct-test-1", NULL };
  cJSON *line;

  request("GET", API "/recoveries?limit=3", proxied, NULL, &a);
  assert_int_equal(a.status, 200);
  answer_cleanup(&a);
  line = access_line("xff-test-1");
  assert_string_equal(nrd_json_str(line, "method"), "GET");
  assert_string_equal(nrd_json_str(line, "path"), API "/recoveries");
  assert_string_equal(nrd_json_str(line, "client"), "203.0.113.7");
  assert_int_equal(cJSON_GetObjectItem(line, "status")->valueint, 200);
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(line, "durationMs")));
  cJSON_Delete(line);

  request("GET", "/health", direct, NULL, &a);
  answer_cleanup(&a);
  line = access_line("direct-test-1");
  assert_string_equal(nrd_json_str(line, "client"), "127.0.0.1");
  cJSON_Delete(line);

  /* the token never reaches the log */
  FILE *f = fopen(g_logpath, "r");
  char buf[4096];
  size_t n;
  assert_non_null(f);
  while ((n = fread(buf, 1, sizeof buf - 1, f)) > 0) {
    buf[n] = '\0';
    assert_null(strstr(buf, TOKEN));
  }
  fclose(f);
}

/* ---- suspended requests: client gone, server stopped ---- */

static int connect_service(void)
{
  struct sockaddr_in sin = { 0 };
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)nrd_http_port(g_stack.http));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  return fd;
}

static void send_immediate(int fd)
{
  static const char req[] = "POST " API "/check-failed HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\nContent-Length: 18\r\n\r\n"
                            "{\"immediate\":true}";
  assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
}

/* The client leaves while its request waits; the run still ends and the
 * server goes on answering. */
static void test_client_gone_while_waiting(void **state)
{
  struct answer a;
  int fd;

  nrd_sim_set_latency(g_stack.sim, 200);
  fd = connect_service();
  send_immediate(fd);
  nrd_sleep_ms(300);
  close(fd);
  for (int i = 0; i < 300 && nrd_runner_busy(g_stack.runner); i++)
    nrd_sleep_ms(50);
  assert_false(nrd_runner_busy(g_stack.runner));
  nrd_sim_set_latency(g_stack.sim, 0);
  request("GET", "/health", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  answer_cleanup(&a);
}

/* Stopping the server answers a waiting request 503 SHUTTING_DOWN; the run's
 * later callback touches nothing that is gone. */
static void test_stop_while_waiting(void **state)
{
  char buf[4096];
  size_t got = 0;
  struct timeval tv = { .tv_sec = 10 };
  int fd;
  cJSON *fleet = nrd_sim_make_fleet(FLEET + 4, FLEET + 4, nrd_now_ms() / 1000);

  tu_stack_load(&g_stack, fleet);
  cJSON_Delete(fleet);
  nrd_sim_set_latency(g_stack.sim, 300);
  fd = connect_service();
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  send_immediate(fd);
  nrd_sleep_ms(400);
  assert_true(nrd_runner_busy(g_stack.runner));

  nrd_http_quiesce(g_stack.http);
  nrd_http_stop(g_stack.http);
  g_stack.http = NULL;

  for (;;) {
    ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
    if (r <= 0)
      break;
    got += (size_t)r;
    if (got == sizeof buf - 1)
      break;
  }
  buf[got] = '\0';
  close(fd);
  assert_int_equal(strncmp(buf, "HTTP/1.1 503", 12), 0);
  assert_non_null(strstr(buf, "SHUTTING_DOWN"));
  nrd_sim_set_latency(g_stack.sim, 0);
}

/* ---- with a scheduler ---- */

static int setup_scheduler(void **state)
{
  cJSON *fleet;
  tu_stack_init(&g_stack, NULL);
  fleet = nrd_sim_make_fleet(FLEET, FAILED, nrd_now_ms() / 1000);
  tu_stack_load(&g_stack, fleet);
  cJSON_Delete(fleet);
  g_stack.cfg.migration_interval_minutes = 600; /* never fires on its own here */
  tu_stack_start(&g_stack);
  return 0;
}

static void test_scheduler(void **state)
{
  struct answer a;
  char *final;

  request("GET", API "/scheduler/status", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a.json, "enabled")));
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a.json, "paused")));
  answer_cleanup(&a);

  request("POST", API "/scheduler/pause", NULL, "{\"now\":true}", &a);
  assert_error(&a, 400, "UNKNOWN_FIELD", "allowed: none");
  answer_cleanup(&a);

  request("POST", API "/scheduler/pause", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a.json, "paused")));
  answer_cleanup(&a);

  request("GET", API "/scheduler/status", NULL, NULL, &a);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a.json, "paused")));
  answer_cleanup(&a);

  request("POST", API "/scheduler/trigger", NULL, "{}", &a);
  assert_error(&a, 409, "SCHEDULER_PAUSED", NULL);
  answer_cleanup(&a);

  request("POST", API "/scheduler/resume", NULL, NULL, &a);
  assert_int_equal(a.status, 200);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(a.json, "paused")));
  answer_cleanup(&a);

  request("POST", API "/scheduler/trigger", NULL, NULL, &a);
  assert_int_equal(a.status, 202);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a.json, "success")));
  const char *run_id = nrd_json_str(a.json, "runId");
  assert_non_null(run_id);
  assert_string_equal(nrd_json_str(a.json, "jobId"), run_id);
  final = wait_run(run_id);
  assert_string_equal(final, "done");
  free(final);
  answer_cleanup(&a);
}

/* The run cannot list instances: 502 with what was gathered. */
static void test_novita_unavailable(void **state)
{
  struct answer a;
  struct nrd_sim_fault f = { .kind = NRD_SIM_STATUS,
                             .match = "GET /gpu-instance/openapi/v1/gpu/instances",
                             .status = 500 };

  assert_int_equal(nrd_sim_add_fault(g_stack.sim, &f), 0);
  request("POST", API "/check-failed", NULL, "{\"immediate\":true,\"dryRun\":true}", &a);
  nrd_sim_clear_faults(g_stack.sim);
  assert_error(&a, 502, "NOVITA_UNAVAILABLE", NULL);
  assert_true(cJSON_IsObject(cJSON_GetObjectItem(a.json, "result")));
  answer_cleanup(&a);
}

int main(void)
{
  const struct CMUnitTest open_tests[] = {
    cmocka_unit_test(test_immediate_dry_report),
    cmocka_unit_test(test_health_during_immediate),
    cmocka_unit_test(test_background_then_poll),
    cmocka_unit_test(test_bodies),
    cmocka_unit_test(test_too_large),
    cmocka_unit_test(test_not_found_and_method),
    cmocka_unit_test(test_raw_paths),
    cmocka_unit_test(test_head),
    cmocka_unit_test(test_runs_unknown),
    cmocka_unit_test(test_request_id),
    cmocka_unit_test(test_ops),
    cmocka_unit_test(test_recoveries),
    cmocka_unit_test(test_events),
    cmocka_unit_test(test_scheduler_disabled),
  };
  const struct CMUnitTest token_tests[] = {
    cmocka_unit_test(test_auth),
    cmocka_unit_test(test_access_log),
  };
  const struct CMUnitTest waiting_tests[] = {
    cmocka_unit_test(test_client_gone_while_waiting),
    cmocka_unit_test(test_stop_while_waiting),
  };
  int failed = cmocka_run_group_tests_name("open", open_tests, setup_open, teardown);
  failed += cmocka_run_group_tests_name("token", token_tests, setup_token, teardown_token);
  const struct CMUnitTest scheduler_tests[] = {
    cmocka_unit_test(test_scheduler),
    cmocka_unit_test(test_novita_unavailable),
  };
  failed += cmocka_run_group_tests_name("scheduler", scheduler_tests, setup_scheduler, teardown);
  failed += cmocka_run_group_tests_name("waiting", waiting_tests, setup_open, teardown);
  return failed;
}
