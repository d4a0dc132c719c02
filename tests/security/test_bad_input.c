/* Malformed and hostile requests over real HTTP against the whole service
 * in-process (simulator, runner on a temp SQLite file, server on 127.0.0.1
 * port 0). Every case goes out on a raw socket, so nothing cleans it up on the
 * way, and each must get its status (our JSON error where the service
 * answers; libmicrohttpd's own 4xx where it answers malformed HTTP itself),
 * with GET /health answering 200 right after. Then slow clients, a held-idle
 * connection, hundreds of idle sockets and the per-address limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "stack.h"
#include "testutil.h"

#define API "/api/instances/migration"
#define CF API "/check-failed"
#define MAX_BODY 4096
#define TOKEN "bad-input-suite-token-7f3a"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define JSON_CT "Content-Type: application/json\r\n"
/* The connection closed without an answer (libmicrohttpd's choice for some
 * malformed requests). */
#define CLOSED 0

static struct tu_stack g_stack;

/* ---- raw HTTP ---- */

struct raw_answer {
  long status; /* 0: the connection closed without an answer */
  char *head;  /* status line and headers (heap) */
  char *body;  /* heap, NUL-terminated */
  size_t body_len;
};

/* Case-insensitive strstr (strcasestr is a GNU extension). */
static const char *find_ci(const char *hay, const char *needle)
{
  size_t n = strlen(needle);
  for (const char *p = hay; p && *p; p++) {
    if (strncasecmp(p, needle, n) == 0)
      return p;
  }
  return NULL;
}

static void raw_answer_cleanup(struct raw_answer *a)
{
  free(a->head);
  free(a->body);
  memset(a, 0, sizeof *a);
}

static int connect_from(const char *src_ip)
{
  struct sockaddr_in sin = { 0 };
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  assert_true(fd >= 0);
  if (src_ip) {
    struct sockaddr_in src = { 0 };
    src.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, src_ip, &src.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
  }
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)nrd_http_port(g_stack.http));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
  return fd;
}

static void set_rcv_timeout(int fd, int seconds)
{
  struct timeval tv = { .tv_sec = seconds };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static void send_all(int fd, const char *data, size_t len)
{
  for (size_t off = 0; off < len;) {
    ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL);
    if (w <= 0)
      return; /* the server may close early (413, 401): fine */
    off += (size_t)w;
  }
}

/* Reads one answer (until the connection closes or Content-Length is met). */
static void read_answer(int fd, struct raw_answer *a)
{
  struct nrd_buf in;
  char buf[8192];
  char *end;

  memset(a, 0, sizeof *a);
  nrd_buf_init(&in);
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r <= 0)
      break;
    nrd_buf_append(&in, buf, (size_t)r);
    end = in.data ? strstr(in.data, "\r\n\r\n") : NULL;
    if (end) {
      const char *cl = find_ci(in.data, "\r\nContent-Length:");
      size_t head = (size_t)(end - in.data) + 4;
      if (cl && cl < end && in.len >= head + strtoul(cl + 17, NULL, 10))
        break;
    }
  }
  if (in.len >= 12 && strncmp(in.data, "HTTP/1.", 7) == 0) {
    end = strstr(in.data, "\r\n\r\n");
    a->status = strtol(in.data + 9, NULL, 10);
    size_t head = end ? (size_t)(end - in.data) : in.len;
    a->head = nrd_xstrndup(in.data, head);
    a->body_len = end ? in.len - head - 4 : 0;
    a->body = nrd_xmalloc(a->body_len + 1);
    memcpy(a->body, in.data + in.len - a->body_len, a->body_len);
    a->body[a->body_len] = '\0';
  }
  nrd_buf_cleanup(&in);
}

static void raw_exchange(const char *data, size_t len, struct raw_answer *a)
{
  int fd = connect_from(NULL);
  set_rcv_timeout(fd, 10);
  send_all(fd, data, len);
  shutdown(fd, SHUT_WR);
  read_answer(fd, a);
  close(fd);
}

static void assert_health(void)
{
  char url[128];
  struct tu_resp r = { 0 };
  int64_t t0 = nrd_mono_ms();

  snprintf(url, sizeof url, "%s/health", g_stack.base);
  assert_int_equal(tu_http("GET", url, NULL, NULL, &r), 0);
  assert_int_equal(r.status, 200);
  assert_true(nrd_mono_ms() - t0 < 2000);
  tu_resp_cleanup(&r);
}

/* Our error shape: JSON {"success":false,"error":{"code","message"}}. */
static void assert_json_error(const struct raw_answer *a, const char *code, const char *name)
{
  cJSON *j = nrd_json_parse(a->body, a->body_len);
  const cJSON *err = cJSON_GetObjectItem(j, "error");

  if (!j || !cJSON_IsFalse(cJSON_GetObjectItem(j, "success")) || !nrd_json_str(err, "code") ||
      !nrd_json_str(err, "message") || strcmp(nrd_json_str(err, "code"), code) != 0)
    fail_msg("%s: want error code %s, got body %.300s", name, code, a->body);
  if (!find_ci(a->head, "\r\nContent-Type: application/json"))
    fail_msg("%s: error without a JSON content type", name);
  cJSON_Delete(j);
}

/* ---- the table ---- */

struct bad_case {
  const char *name;
  const char *raw; /* the whole request; NUL bytes spelled as "\\0" are not used:
                          len gives the size when non-zero */
  size_t len;
  long status;      /* CLOSED: no answer, the connection closed */
  const char *code; /* our error code, or NULL (success, or not our answer) */
};

#define REQ(method, path, headers)                   \
  method " " path " HTTP/1.1\r\nHost: 127.0.0.1\r\n" \
         "Connection: close\r\n" headers "\r\n"
#define POST_CF(headers, body)                                                    \
  "POST " CF " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" AUTH headers \
  "Content-Length: " body

/* POST check-failed with a JSON body of the given text (Content-Length set
 * by post_body below). */
struct body_case {
  const char *name;
  const char *body;
  size_t len;        /* 0: strlen */
  const char *ctype; /* NULL: application/json */
  long status;
  const char *code;
};

static const struct body_case body_cases[] = {
  { "unterminated object", "{", 0, NULL, 400, "INVALID_JSON" },
  { "trailing comma", "{\"immediate\":true,}", 0, NULL, 400, "INVALID_JSON" },
  { "single quotes", "{'dryRun':true}", 0, NULL, 400, "INVALID_JSON" },
  { "second document after the first", "{\"dryRun\":true} {\"dryRun\":false}", 0, NULL, 400,
    "INVALID_JSON" },
  { "garbage after the object", "{\"dryRun\":true}xyz", 0, NULL, 400, "INVALID_JSON" },
  { "NUL after the object", "{\"dryRun\":true}\0", 16, NULL, 400, "INVALID_JSON" },
  { "whitespace only", "   \r\n", 0, NULL, 400, "INVALID_JSON" },
  { "65 levels deep",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    0, NULL, 400, "INVALID_JSON" },
  { "a string", "\"dryRun\"", 0, NULL, 400, "INVALID_BODY" },
  { "null", "null", 0, NULL, 400, "INVALID_BODY" },
  { "a number", "123", 0, NULL, 400, "INVALID_BODY" },
  { "an array", "[{\"dryRun\":true}]", 0, NULL, 400, "INVALID_BODY" },
  { "typo dry_run", "{\"dry_run\":true}", 0, NULL, 400, "UNKNOWN_FIELD" },
  { "extra field", "{\"dryRun\":true,\"force\":true}", 0, NULL, 400, "UNKNOWN_FIELD" },
  { "field named by a NUL escape", "{\"\\u0000\":1}", 0, NULL, 400, "UNKNOWN_FIELD" },
  { "field of invalid UTF-8", "{\"\xff\xfe\":1}", 0, NULL, 400, "UNKNOWN_FIELD" },
  { "dryRun null", "{\"dryRun\":null}", 0, NULL, 400, "INVALID_FIELD" },
  { "immediate as a string", "{\"immediate\":\"true\"}", 0, NULL, 400, "INVALID_FIELD" },
  { "dryRun as an object", "{\"dryRun\":{\"a\":1}}", 0, NULL, 400, "INVALID_FIELD" },
  { "dryRun as a huge number", "{\"dryRun\":1e999999}", 0, NULL, 400, "INVALID_FIELD" },
  { "text/plain", "{\"dryRun\":true}", 0, "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE" },
  { "form encoded", "dryRun=true", 0, "application/x-www-form-urlencoded", 415,
    "UNSUPPORTED_MEDIA_TYPE" },
  { "multipart", "--x\r\n\r\n--x--", 0, "multipart/form-data; boundary=x", 415,
    "UNSUPPORTED_MEDIA_TYPE" },
  { "json lookalike type", "{\"dryRun\":true}", 0, "application/jsonx", 415,
    "UNSUPPORTED_MEDIA_TYPE" },
  { "json-patch type", "{\"dryRun\":true}", 0, "application/json-patch+json", 415,
    "UNSUPPORTED_MEDIA_TYPE" },
  { "empty content type", "{\"dryRun\":true}", 0, "", 415, "UNSUPPORTED_MEDIA_TYPE" },
  { "json with parameters (accepted)", "{\"dryRun\":true}", 0, "Application/JSON ; charset=utf-8",
    202, NULL },
};

static void post_body(const struct body_case *c, struct raw_answer *a)
{
  size_t len = c->len ? c->len : strlen(c->body);
  struct nrd_buf req;

  nrd_buf_init(&req);
  nrd_buf_printf(&req,
                 "POST " CF " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" AUTH
                 "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                 c->ctype ? c->ctype : "application/json", len);
  nrd_buf_append(&req, c->body, len);
  raw_exchange(req.data, req.len, a);
  nrd_buf_cleanup(&req);
}

/* status: ours (with code) or libmicrohttpd's own for malformed HTTP (code
 * NULL), as libmicrohttpd 0.9.75 answers; CLOSED when it answers nothing. */
static void check(const char *name, const struct raw_answer *a, long status, const char *code)
{
  if (a->status != status)
    fail_msg("%s: want %ld, got %ld (%.200s)", name, status, a->status,
             a->body ? a->body : "no answer");
  if (code)
    assert_json_error(a, code, name);
  assert_health();
}

static void test_bodies(void **state)
{
  for (size_t i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
    struct raw_answer a;
    post_body(&body_cases[i], &a);
    check(body_cases[i].name, &a, body_cases[i].status, body_cases[i].code);
    raw_answer_cleanup(&a);
  }
}

static const struct bad_case raw_cases[] = {
  /* sizes */
  { "Content-Length over the limit, no body sent", POST_CF(JSON_CT, "4097\r\n\r\n"), 0, 413,
    "PAYLOAD_TOO_LARGE" },
  { "Content-Length of 10 GB", POST_CF(JSON_CT, "10000000000\r\n\r\n{}"), 0, 413,
    "PAYLOAD_TOO_LARGE" },
  { "Content-Length overflowing 64 bits", POST_CF(JSON_CT, "99999999999999999999999\r\n\r\n{}"), 0,
    413, NULL },
  { "negative Content-Length", POST_CF(JSON_CT, "-1\r\n\r\n{}"), 0, 400, NULL },
  { "Content-Length not a number", POST_CF(JSON_CT, "abc\r\n\r\n{}"), 0, 400, NULL },
  { "two different Content-Lengths", POST_CF(JSON_CT "Content-Length: 5\r\n", "2\r\n\r\n{}"), 0,
    400, "BAD_FRAMING" },
  { "chunked with a bad chunk size",
    REQ("POST", CF, AUTH JSON_CT "Transfer-Encoding: chunked\r\n") "zz\r\n{}\r\n0\r\n\r\n", 0, 400,
    NULL },
  { "unknown transfer coding", REQ("POST", CF, AUTH JSON_CT "Transfer-Encoding: gzip\r\n") "{}", 0,
    501, "NOT_IMPLEMENTED" },
  /* methods */
  { "GET on check-failed", REQ("GET", CF, AUTH), 0, 405, "METHOD_NOT_ALLOWED" },
  { "PUT on check-failed", REQ("PUT", CF, AUTH "Content-Length: 0\r\n"), 0, 405,
    "METHOD_NOT_ALLOWED" },
  { "DELETE on /health", REQ("DELETE", "/health", ""), 0, 405, "METHOD_NOT_ALLOWED" },
  { "PATCH on a run", REQ("PATCH", API "/runs/run_1_x", AUTH), 0, 405, "METHOD_NOT_ALLOWED" },
  { "OPTIONS on /ready", REQ("OPTIONS", "/ready", ""), 0, 405, "METHOD_NOT_ALLOWED" },
  { "an invented method", REQ("BREW", "/health", ""), 0, 405, "METHOD_NOT_ALLOWED" },
  { "lower-case method", REQ("get", "/health", ""), 0, 405, "METHOD_NOT_ALLOWED" },
  { "POST on events", REQ("POST", API "/events", AUTH "Content-Length: 0\r\n"), 0, 405,
    "METHOD_NOT_ALLOWED" },
  /* auth and headers */
  { "no Authorization", REQ("GET", API "/recoveries", ""), 0, 401, "UNAUTHORIZED" },
  { "wrong token", REQ("GET", API "/recoveries", "Authorization: Bearer nope\r\n"), 0, 401,
    "UNAUTHORIZED" },
  { "token with a suffix", REQ("GET", API "/recoveries", "Authorization: Bearer " TOKEN "x\r\n"), 0,
    401, "UNAUTHORIZED" },
  { "token prefix only", REQ("GET", API "/recoveries", "Authorization: Bearer bad-input-suite\r\n"),
    0, 401, "UNAUTHORIZED" },
  { "Bearer without a token", REQ("GET", API "/recoveries", "Authorization: Bearer\r\n"), 0, 401,
    "UNAUTHORIZED" },
  { "Basic scheme", REQ("GET", API "/recoveries", "Authorization: Basic " TOKEN "\r\n"), 0, 401,
    "UNAUTHORIZED" },
  { "401 before a 1 MB body is read", REQ("POST", CF, JSON_CT "Content-Length: 1000000\r\n"), 0,
    401, "UNAUTHORIZED" },
  { "lower-case bearer scheme (accepted)",
    REQ("GET", API "/recoveries", "Authorization: bearer " TOKEN "\r\n"), 0, 200, NULL },
  /* libmicrohttpd's lenient mode serves this; the proxy always sends Host */
  { "no Host in HTTP/1.1 (served)", "GET /health HTTP/1.1\r\nConnection: close\r\n\r\n", 0, 200,
    NULL },
  { "header line without a colon", REQ("GET", "/health", "NoColonHere\r\n"), 0, 400, NULL },
  { "header name with a space (not a token: refused)", REQ("GET", "/health", "Bad Name: x\r\n"), 0,
    400, "BAD_FRAMING" },
  { "garbage X-Forwarded-For", REQ("GET", "/health", "X-Forwarded-For: ::::,,,zz, 999.1.1.1\r\n"),
    0, 200, NULL },
  { "odd X-Request-Id", REQ("GET", "/health", "X-Request-Id: \"><script>\r\n"), 0, 200, NULL },
  /* paths */
  { "dot segments", REQ("GET", "/x/../health", ""), 0, 404, "NOT_FOUND" },
  { "dot segments out of /api (token first)", REQ("GET", "/api/../health", ""), 0, 401,
    "UNAUTHORIZED" },
  { "encoded dot segments", REQ("GET", API "/%2e%2e/%2e%2e/%2e%2e/health", AUTH), 0, 404,
    "NOT_FOUND" },
  { "encoded slash", REQ("GET", "/api%2Finstances%2Fmigration%2Frecoveries", AUTH), 0, 404,
    "NOT_FOUND" },
  { "encoded NUL", REQ("GET", "/health%00", ""), 0, 404, "NOT_FOUND" },
  { "encoded letter", REQ("GET", "/%68ealth", ""), 0, 404, "NOT_FOUND" },
  { "double slash", REQ("GET", "//health", ""), 0, 404, "NOT_FOUND" },
  { "trailing slash", REQ("GET", "/health/", ""), 0, 404, "NOT_FOUND" },
  { "backslash", REQ("GET", "/api\\..\\health", ""), 0, 404, "NOT_FOUND" },
  { "raw UTF-8",
    REQ("GET",
        "/h\xc3\xa9"
        "alth",
        ""),
    0, 404, "NOT_FOUND" },
  { "encoded right-to-left mark in a run id", REQ("GET", API "/runs/%E2%80%AE", AUTH), 0, 404,
    "NOT_FOUND" },
  { "absolute-form target", REQ("GET", "http://127.0.0.1/health", ""), 0, 404, "NOT_FOUND" },
  { "asterisk target", REQ("OPTIONS", "*", ""), 0, 404, "NOT_FOUND" },
  { "bad escape in a query value", REQ("GET", API "/recoveries?state=%zz", AUTH), 0, 400, NULL },
  { "NUL in a query value", REQ("GET", API "/events?since=%00", AUTH), 0, 400, "INVALID_QUERY" },
  { "query junk on /health", REQ("GET", "/health?%%%&&==", ""), 0, 200, NULL },
  /* request lines */
  { "garbage request line", "GARBAGE\r\n\r\n", 0, CLOSED, NULL },
  { "HTTP/0.9 request", "GET /health\r\n\r\n", 0, 400, NULL },
  { "HTTP/9.9", "GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 0, 505, NULL },
  { "NUL in the request line (path cut there)", "GET /he\0alth HTTP/1.1\r\nHost: x\r\n\r\n", 34,
    404, "NOT_FOUND" },
  { "TLS hello on the plain port", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, CLOSED,
    NULL },
  { "only line breaks", "\r\n\r\n\r\n", 0, CLOSED, NULL },
  { "bare LF line ends (served)", "GET /health HTTP/1.1\nHost: x\nConnection: close\n\n", 0, 200,
    NULL },
};

static void test_raw(void **state)
{
  for (size_t i = 0; i < sizeof raw_cases / sizeof raw_cases[0]; i++) {
    const struct bad_case *c = &raw_cases[i];
    struct raw_answer a;
    raw_exchange(c->raw, c->len ? c->len : strlen(c->raw), &a);
    check(c->name, &a, c->status, c->code);
    raw_answer_cleanup(&a);
  }
}

/* Requests built at run time: big bodies, long paths, big headers. */
static void test_sizes(void **state)
{
  struct nrd_buf req;
  struct raw_answer a;
  char *pad = nrd_xmalloc(300 * 1024);

  memset(pad, 'a', 300 * 1024);

  /* a body over the limit, sent in full */
  nrd_buf_init(&req);
  nrd_buf_printf(&req, REQ("POST", CF, AUTH JSON_CT "Content-Length: %d\r\n"), MAX_BODY + 1);
  nrd_buf_puts(&req, "{\"x\":\"");
  nrd_buf_append(&req, pad, MAX_BODY + 1 - 8);
  nrd_buf_puts(&req, "\"}");
  raw_exchange(req.data, req.len, &a);
  check("body one byte over the limit", &a, 413, "PAYLOAD_TOO_LARGE");
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* exactly at the limit: read and judged (an unknown field) */
  nrd_buf_init(&req);
  nrd_buf_printf(&req, REQ("POST", CF, AUTH JSON_CT "Content-Length: %d\r\n"), MAX_BODY);
  nrd_buf_puts(&req, "{\"x\":\"");
  nrd_buf_append(&req, pad, MAX_BODY - 8);
  nrd_buf_puts(&req, "\"}");
  raw_exchange(req.data, req.len, &a);
  check("body exactly at the limit", &a, 400, "UNKNOWN_FIELD");
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* chunked, 64 KiB in 1 KiB chunks: judged while reading */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, REQ("POST", CF, AUTH JSON_CT "Transfer-Encoding: chunked\r\n"));
  for (int i = 0; i < 64; i++) {
    nrd_buf_puts(&req, "400\r\n");
    nrd_buf_append(&req, pad, 1024);
    nrd_buf_puts(&req, "\r\n");
  }
  nrd_buf_puts(&req, "0\r\n\r\n");
  raw_exchange(req.data, req.len, &a);
  check("chunked body over the limit", &a, 413, "PAYLOAD_TOO_LARGE");
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* chunked, 2 MiB: past the discard budget the connection may just close */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, REQ("POST", CF, AUTH JSON_CT "Transfer-Encoding: chunked\r\n"));
  for (int i = 0; i < 8; i++) {
    nrd_buf_printf(&req, "%x\r\n", 256 * 1024);
    nrd_buf_append(&req, pad, 256 * 1024);
    nrd_buf_puts(&req, "\r\n");
  }
  nrd_buf_puts(&req, "0\r\n\r\n");
  raw_exchange(req.data, req.len, &a);
  check("chunked body of 2 MiB", &a, a.status == CLOSED ? CLOSED : 413,
        a.status == CLOSED ? NULL : "PAYLOAD_TOO_LARGE");
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* a 10k path: ours to refuse (over HTTP_MAX_PATH) */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, "GET /");
  nrd_buf_append(&req, pad, 10 * 1024);
  nrd_buf_puts(&req, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  raw_exchange(req.data, req.len, &a);
  check("10 KiB path", &a, 404, "NOT_FOUND");
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* a 10k path under /api: the token is checked first */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, "GET " API "/runs/");
  nrd_buf_append(&req, pad, 10 * 1024);
  nrd_buf_puts(&req, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
  raw_exchange(req.data, req.len, &a);
  check("10 KiB run id", &a, 404, "NOT_FOUND");
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* a 200k path: past the connection memory, libmicrohttpd answers */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, "GET /");
  nrd_buf_append(&req, pad, 200 * 1024);
  nrd_buf_puts(&req, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  raw_exchange(req.data, req.len, &a);
  check("200 KiB path", &a, 414, NULL);
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* a 200k header */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ");
  nrd_buf_append(&req, pad, 200 * 1024);
  nrd_buf_puts(&req, "\r\n\r\n");
  raw_exchange(req.data, req.len, &a);
  check("200 KiB header", &a, 431, NULL);
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* 2000 small headers */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
  for (int i = 0; i < 2000; i++)
    nrd_buf_printf(&req, "X-H%d: %d\r\n", i, i);
  nrd_buf_puts(&req, "\r\n");
  raw_exchange(req.data, req.len, &a);
  check("2000 headers", &a, 431, NULL);
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  /* a long Request-Id is replaced, the request still served */
  nrd_buf_init(&req);
  nrd_buf_puts(&req, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: ");
  nrd_buf_append(&req, pad, 10 * 1024);
  nrd_buf_puts(&req, "\r\n\r\n");
  raw_exchange(req.data, req.len, &a);
  check("10 KiB X-Request-Id", &a, 200, NULL);
  assert_null(strstr(a.head, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
  raw_answer_cleanup(&a);
  nrd_buf_cleanup(&req);

  free(pad);
}

/* ---- slow and idle clients ---- */

struct drip {
  atomic_bool done;
  long status;
};

/* Sends a whole GET /health one byte per 100 ms, then reads the answer. */
static void *drip_thread(void *arg)
{
  static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  struct drip *d = arg;
  struct raw_answer a;
  int fd = connect_from(NULL);

  set_rcv_timeout(fd, 10);
  for (size_t i = 0; i < sizeof req - 1; i++) {
    send_all(fd, req + i, 1);
    nrd_sleep_ms(100);
  }
  read_answer(fd, &a);
  d->status = a.status;
  raw_answer_cleanup(&a);
  close(fd);
  atomic_store(&d->done, true);
  return NULL;
}

/* Three clients dripping their headers a byte per 100 ms: every other request
 * is served at once meanwhile, and the slow ones are served when complete
 * (libmicrohttpd's timeout is an idle timeout: a client that keeps sending
 * is not cut off; the proxy's client_header_timeout is what bounds it). */
static void test_slow_clients(void **state)
{
  struct drip d[3];
  pthread_t th[3];
  int served = 0;

  for (int i = 0; i < 3; i++) {
    atomic_init(&d[i].done, false);
    d[i].status = 0;
    assert_int_equal(pthread_create(&th[i], NULL, drip_thread, &d[i]), 0);
  }
  while (!atomic_load(&d[0].done)) {
    int64_t t0 = nrd_mono_ms();
    assert_health();
    assert_true(nrd_mono_ms() - t0 < 300);
    served++;
    nrd_sleep_ms(100);
  }
  for (int i = 0; i < 3; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(d[i].status, 200);
  }
  assert_true(served >= 20);
}

/* A client that sends half a request and goes quiet is cut off by the
 * request-head deadline (HTTP_REQUEST_TIMEOUT_SECONDS, 10 s), and nobody
 * else waits for it. */
static void test_idle_client_cut_off(void **state)
{
  static const char half[] = "GET /health HTTP/1.1\r\nHost: x\r\nX-Wait: ";
  int fd = connect_from(NULL);
  int64_t t0 = nrd_mono_ms(), closed_after = -1;
  char buf[256];

  send_all(fd, half, sizeof half - 1);
  while (nrd_mono_ms() - t0 < 45000) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    assert_health();
    if (poll(&p, 1, 500) > 0) {
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r <= 0) {
        closed_after = nrd_mono_ms() - t0;
        break;
      }
    }
  }
  close(fd);
  if (closed_after < 0)
    fail_msg("a half-sent request was still open after 45 s");
  /* not before the deadline */
  assert_true(closed_after >= (int64_t)g_stack.cfg.http_request_timeout_seconds * 1000 - 500);
  assert_health();
}

/* ---- many connections ---- */

static void raise_fd_limit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_max > rl.rlim_cur) {
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* 300 idle sockets from two other loopback addresses (each under the
 * per-address limit), each with a partial request: /health still answers,
 * and again once they are gone. */
static void test_many_idle_connections(void **state)
{
  enum { N = 300 };
  int fds[N];

  raise_fd_limit();
  for (int i = 0; i < N; i++) {
    fds[i] = connect_from(i % 2 ? "127.0.0.2" : "127.0.0.3");
    send_all(fds[i], "GET /hea", 8);
  }
  nrd_sleep_ms(200);
  for (int k = 0; k < 5; k++)
    assert_health();
  /* the idle sockets are still open (not dropped by the server) */
  int open_count = 0;
  for (int i = 0; i < N; i++) {
    struct pollfd p = { .fd = fds[i], .events = POLLIN };
    if (poll(&p, 1, 0) == 0)
      open_count++;
  }
  assert_int_equal(open_count, N);
  for (int i = 0; i < N; i++)
    close(fds[i]);
  assert_health();
}

/* One address may hold at most HTTP_MAX_CONNECTIONS_PER_IP connections
 * (256 here; sized for a proxy's keep-alive pool); past that, its new
 * connections are refused while other addresses are still served. */
static void test_per_address_limit(void **state)
{
  enum { N = 270 };
  static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  int fds[N];
  int answered = 0;

  raise_fd_limit();
  for (int i = 0; i < N; i++) {
    fds[i] = connect_from("127.0.0.4");
    set_rcv_timeout(fds[i], 5);
    send_all(fds[i], req, sizeof req - 1);
  }
  for (int i = 0; i < N; i++) {
    char buf[512];
    ssize_t r = recv(fds[i], buf, sizeof buf - 1, 0);
    if (r > 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0)
      answered++;
  }
  assert_health(); /* another address: served */
  for (int i = 0; i < N; i++)
    close(fds[i]);
  assert_int_equal(answered, 256);
  assert_health();
}

/* ---- setup ---- */

static int setup(void **state)
{
  cJSON *fleet;

  tu_stack_init(&g_stack, NULL);
  fleet = nrd_sim_make_fleet(6, 2, nrd_now_ms() / 1000);
  tu_stack_load(&g_stack, fleet);
  cJSON_Delete(fleet);
  g_stack.cfg.max_body_bytes = MAX_BODY;
  g_stack.cfg.http_max_connections_per_ip = 256; /* the many-connection tests below */
  g_stack.cfg.migration_dry_run = true;          /* accepted check-failed calls change nothing */
  free(g_stack.cfg.api_token);
  g_stack.cfg.api_token = nrd_xstrdup(TOKEN);
  tu_stack_start(&g_stack);
  return 0;
}

static int teardown(void **state)
{
  tu_stack_cleanup(&g_stack);
  return 0;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bodies),
    cmocka_unit_test(test_raw),
    cmocka_unit_test(test_sizes),
    cmocka_unit_test(test_slow_clients),
    cmocka_unit_test(test_many_idle_connections),
    cmocka_unit_test(test_per_address_limit),
    cmocka_unit_test(test_idle_client_cut_off),
  };
  return cmocka_run_group_tests_name("bad input", tests, setup, teardown);
}
