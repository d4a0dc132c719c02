/* Requests with one meaning or none (issue 16), over real HTTP against the
 * service and its simulator: a JSON body with a repeated member at any depth
 * gets 400 DUPLICATE_FIELD; each ambiguous framing shape, sent on a raw
 * socket with a second request pipelined behind it, gets its refusal, one
 * answer only and a closed connection; two Authorization headers get 401.
 * Nothing of it reaches Novita: the failed fleet is never deleted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define API "/api/instances/migration"
#define CF API "/check-failed"
#define TOKEN "framing-test-token"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define JSON_CT "Content-Type: application/json\r\n"
#define BODY "{\"dryRun\":true}" /* 15 bytes */
/* What a refused shape carries: a real run, were it ever served. */
#define REAL_BODY "{\"dryRun\":false}" /* 16 bytes */
#define PIPELINED "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

static struct tu_stack g_stack;

static int setup(void **state)
{
  (void)state;
  tu_stack_init(&g_stack, NULL);
  cJSON *sc = tu_failed_fleet(3, 1);
  tu_stack_load(&g_stack, sc);
  cJSON_Delete(sc);
  g_stack.cfg.api_token = nrd_xstrdup(TOKEN);
  tu_stack_start(&g_stack);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  tu_stack_cleanup(&g_stack);
  return 0;
}

/* Nothing was deleted or created, and no run is still under way: a dry run
 * waits for any run before it and sends neither itself. */
static void assert_novita_untouched(void)
{
  const char *hdrs[] = { "Authorization: Bearer " TOKEN, "Content-Type: application/json", NULL };
  char url[200];
  struct tu_resp r;
  snprintf(url, sizeof url, "%s%s", g_stack.base, CF);
  assert_int_equal(tu_http("POST", url, hdrs, "{\"immediate\":true,\"dryRun\":true}", &r), 0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);
  assert_int_equal(nrd_sim_count(g_stack.sim, "POST", "/gpu/instance/delete"), 0);
  assert_int_equal(nrd_sim_count(g_stack.sim, "POST", "/gpu/instance/create"), 0);
}

/* ---- duplicate members ---- */

static void post_dup(const char *body, const char *path_in_message)
{
  const char *hdrs[] = { "Authorization: Bearer " TOKEN, "Content-Type: application/json", NULL };
  char url[200];
  struct tu_resp r;
  snprintf(url, sizeof url, "%s%s", g_stack.base, CF);
  assert_int_equal(tu_http("POST", url, hdrs, body, &r), 0);
  tu_record_response("POST", CF, &r);
  assert_int_equal(r.status, 400);
  cJSON *j = nrd_json_parse(r.body, r.body_len);
  assert_non_null(j);
  const cJSON *err = cJSON_GetObjectItem(j, "error");
  assert_string_equal(nrd_json_str(err, "code"), "DUPLICATE_FIELD");
  char want[128];
  snprintf(want, sizeof want, "'%s'", path_in_message);
  assert_non_null(strstr(nrd_json_str(err, "message"), want));
  cJSON_Delete(j);
  tu_resp_cleanup(&r);
}

static void test_duplicate_members(void **state)
{
  (void)state;
  post_dup("{\"immediate\":true,\"dryRun\":false,\"dryRun\":true}", "dryRun");
  post_dup("{\"dryRun\":true,\"immediate\":false,\"dryRun\":false}", "dryRun");
  post_dup("{\"immediate\":true,\"immediate\":true}", "immediate");
  post_dup("{\"x\":{\"a\":1,\"b\":{\"c\":1,\"c\":2}}}", "x.b.c");
  post_dup("{\"x\":[1,{\"a\":1},{\"a\":1,\"a\":2}]}", "x[2].a");
  post_dup("{\"x\":[[{\"k\":{\"\":1,\"\":2}}]]}", "x[0][0].k.");
  assert_novita_untouched();
}

/* ---- framing on raw sockets ---- */

struct raw_answer {
  long status;
  int answers; /* status lines received */
  bool closed; /* the service closed the connection (read gave 0) */
  char text[8192];
};

static void raw_send(const char *data, struct raw_answer *a)
{
  struct sockaddr_in sin = { 0 };
  struct timeval tv = { .tv_sec = 10 };
  size_t got = 0, len = strlen(data);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  memset(a, 0, sizeof *a);
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
  for (;;) {
    ssize_t r = recv(fd, a->text + got, sizeof a->text - 1 - got, 0);
    if (r == 0)
      a->closed = true;
    if (r <= 0 || got + (size_t)r >= sizeof a->text - 1)
      break;
    got += (size_t)r;
  }
  a->text[got] = '\0';
  close(fd);
  if (strncmp(a->text, "HTTP/1.", 7) == 0)
    a->status = strtol(a->text + 9, NULL, 10);
  for (const char *p = a->text; (p = strstr(p, "HTTP/1.")) != NULL; p++)
    if (p[8] == ' ' && p[9] >= '1' && p[9] <= '5' && p[12] == ' ')
      a->answers++;
}

static void expect_refusal(const char *name, const char *head, long status, const char *code)
{
  struct raw_answer a;
  char req[2048];
  snprintf(req, sizeof req, "%s%s", head, PIPELINED);
  raw_send(req, &a);
  if (a.status != status || a.answers != 1 || !a.closed || !strstr(a.text, code))
    fail_msg("%s: status %ld (want %ld), %d answers, closed %d:\n%s", name, a.status, status,
             a.answers, a.closed, a.text);
}

static void test_framing_shapes(void **state)
{
  (void)state;
  expect_refusal("space before colon",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
                 "Content-Length : 16\r\n\r\n" REAL_BODY,
                 400, "BAD_FRAMING");
  expect_refusal("folded Content-Length",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
                 "Content-Length:\r\n 16\r\n\r\n" REAL_BODY,
                 400, "BAD_FRAMING");
  expect_refusal("folded other header",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
                 "X-Note: a\r\n b\r\nContent-Length: 16\r\n\r\n" REAL_BODY,
                 400, "BAD_FRAMING");
  expect_refusal("folded other header, long continuation",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
                 "X-Note: a\r\n\tcontinued at length\r\nContent-Length: 16\r\n\r\n" REAL_BODY,
                 400, "BAD_FRAMING");
  expect_refusal("Content-Length and Transfer-Encoding",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
                 "Content-Length: 16\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" REAL_BODY
                 "\r\n0\r\n\r\n",
                 400, "BAD_FRAMING");
  expect_refusal("two Content-Length values",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
                 "Content-Length: 16\r\nContent-Length: 0\r\n\r\n" REAL_BODY,
                 400, "BAD_FRAMING");
  /* libmicrohttpd refuses a Content-Length that is not a number itself,
   * before any of ours runs (its own HTML page, its status line written
   * twice): refused and closed all the same. */
  struct raw_answer a;
  raw_send("POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
           "Content-Length: 16, 16\r\n\r\n" REAL_BODY PIPELINED,
           &a);
  assert_int_equal(a.status, 400);
  assert_true(a.closed);
  assert_null(strstr(a.text, "200 OK"));
  expect_refusal("Transfer-Encoding gzip",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
                 "Transfer-Encoding: gzip\r\n\r\n" REAL_BODY,
                 501, "NOT_IMPLEMENTED");
  expect_refusal("Transfer-Encoding gzip, chunked",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
                 "Transfer-Encoding: gzip, chunked\r\n\r\n10\r\n" REAL_BODY "\r\n0\r\n\r\n",
                 501, "NOT_IMPLEMENTED");
  expect_refusal("HTTP/1.0 POST without Content-Length",
                 "POST " CF " HTTP/1.0\r\n" AUTH JSON_CT "\r\n" REAL_BODY, 411, "LENGTH_REQUIRED");
  expect_refusal("two Authorization headers",
                 "POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH AUTH JSON_CT
                 "Content-Length: 16\r\n\r\n" REAL_BODY,
                 401, "UNAUTHORIZED");
  /* Where no token is asked for (the probes), two Authorization headers are
   * nothing ambiguous: /health stays open. */
  struct raw_answer h = { 0 };
  raw_send("GET /health HTTP/1.1\r\nHost: x\r\n" AUTH AUTH "Connection: close\r\n\r\n", &h);
  assert_int_equal(h.status, 200);
  assert_novita_untouched();
}

/* The control: the same requests well framed are answered, and the
 * pipelined one after them too. */
static void test_well_framed_answered(void **state)
{
  (void)state;
  struct raw_answer a;
  raw_send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
           &a);
  assert_int_equal(a.status, 200);
  assert_int_equal(a.answers, 2);
  /* Empty and whitespace-only values, no space after the colon, tabs: all
   * plain headers, none taken for a folded line. */
  raw_send("GET /health HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Blank:  \t \r\nX-Tight:a\r\n"
           "X-Tab:\tv\t\r\nX:\r\nY:\r\nConnection: close\r\n\r\n",
           &a);
  assert_int_equal(a.status, 200);
  raw_send("POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
           "Content-Length: 15\r\nContent-Length: 15\r\nConnection: close\r\n\r\n" BODY,
           &a);
  assert_int_equal(a.status, 202);
  raw_send("POST " CF " HTTP/1.1\r\nHost: x\r\n" AUTH JSON_CT
           "Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\nf\r\n" BODY "\r\n0\r\n\r\n",
           &a);
  assert_int_equal(a.status, 202);
  assert_novita_untouched();
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_duplicate_members),
    cmocka_unit_test(test_framing_shapes),
    cmocka_unit_test(test_well_framed_answered),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
