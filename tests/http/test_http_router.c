/* The HTTP layer's pure parts: path rules, route matching (404/405 + Allow,
 * {param} segments), body checks and the error shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "nrd/json.h"

#define API "/api/instances/migration"

static void test_path_rules(void **state)
{
  char longp[HTTP_MAX_PATH + 2];

  assert_true(http_path_ok("/health"));
  assert_true(http_path_ok(API "/runs/run_1_abc.x~y-z"));
  assert_false(http_path_ok(""));
  assert_false(http_path_ok("health"));
  assert_false(http_path_ok("/api/../health"));
  assert_false(http_path_ok("/api//instances"));
  assert_false(http_path_ok("/api%2Finstances"));
  assert_false(http_path_ok("/health%00"));
  assert_false(http_path_ok("/a b"));
  assert_false(http_path_ok("/a?b"));

  memset(longp, 'a', sizeof longp);
  longp[0] = '/';
  longp[HTTP_MAX_PATH] = '\0';
  assert_true(http_path_ok(longp));
  longp[HTTP_MAX_PATH] = 'a';
  longp[HTTP_MAX_PATH + 1] = '\0';
  assert_false(http_path_ok(longp));
}

static enum http_match find(const char *method, const char *path, const struct http_route **rt,
                            char *params[HTTP_MAX_PARAMS], char allow[64])
{
  return http_route_find(method, path, rt, params, allow, 64);
}

static void free_params(char *params[HTTP_MAX_PARAMS])
{
  for (size_t i = 0; i < HTTP_MAX_PARAMS; i++)
    free(params[i]);
}

static void test_routes(void **state)
{
  const struct http_route *rt;
  char *params[HTTP_MAX_PARAMS];
  char allow[64];

  assert_int_equal(find("GET", "/health", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "health");
  assert_null(params[0]);

  /* Near misses of a literal route, and paths that share only the first
   * byte of a route's first segment. */
  assert_int_equal(find("GET", "/healthz", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("GET", "/h", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  /* The operator console: its page at /, /ui and /ui/, its files by name. */
  assert_int_equal(find("GET", "/", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "ui");
  assert_int_equal(find("GET", "/ui/", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "ui");
  assert_null(params[0]);
  assert_int_equal(find("GET", "/ui/app.js", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "ui");
  assert_string_equal(params[0], "app.js");
  free_params(params);
  assert_int_equal(find("GET", "/ui/a/b.js", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("POST", "/", &rt, params, allow), HTTP_MATCH_BAD_METHOD);
  assert_int_equal(find("GET", "/r", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("GET", "/apx/instances/migration/events", &rt, params, allow),
                   HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("GET", "/ready", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "ready");
  assert_int_equal(find("GET", "/metrics", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "metrics");

  /* HEAD is answered wherever GET is, under the GET route's name. */
  assert_int_equal(find("HEAD", "/metrics", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "metrics");
  assert_int_equal(find("HEAD", "/ready", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "ready");
  assert_int_equal(find("HEAD", API "/check-failed", &rt, params, allow), HTTP_MATCH_BAD_METHOD);
  assert_string_equal(allow, "POST");

  assert_int_equal(find("POST", "/health", &rt, params, allow), HTTP_MATCH_BAD_METHOD);
  assert_null(rt);
  assert_string_equal(allow, "GET, HEAD");

  assert_int_equal(find("GET", API "/check-failed", &rt, params, allow), HTTP_MATCH_BAD_METHOD);
  assert_string_equal(allow, "POST");

  assert_int_equal(find("POST", API "/check-failed", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "check_failed");
  assert_true(rt->body);

  assert_int_equal(find("GET", API "/runs/run_1_x", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "get_run");
  assert_string_equal(params[0], "run_1_x");
  free_params(params);

  assert_int_equal(find("POST", API "/recoveries/job-7/abandon", &rt, params, allow),
                   HTTP_MATCH_OK);
  assert_string_equal(rt->name, "abandon_recovery");
  assert_string_equal(params[0], "job-7");
  free_params(params);

  assert_int_equal(find("GET", API "/recoveries/job-7/retry", &rt, params, allow),
                   HTTP_MATCH_BAD_METHOD);
  assert_string_equal(allow, "POST");

  assert_int_equal(find("GET", API "/recoveries", &rt, params, allow), HTTP_MATCH_OK);
  assert_int_equal(find("GET", API "/scheduler/status", &rt, params, allow), HTTP_MATCH_OK);
  assert_int_equal(find("POST", API "/scheduler/trigger", &rt, params, allow), HTTP_MATCH_OK);

  assert_int_equal(find("GET", API "/runs/", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("GET", API "/runs", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "list_runs");
  assert_int_equal(find("POST", API "/runs", &rt, params, allow), HTTP_MATCH_BAD_METHOD);
  assert_int_equal(find("GET", API "/stats/hourly", &rt, params, allow), HTTP_MATCH_OK);
  assert_int_equal(find("GET", API "/overview", &rt, params, allow), HTTP_MATCH_OK);
  assert_int_equal(find("GET", API "/runs/a/b", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("GET", "/health/", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("GET", "/nope", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  /* The operator console: its page at /, /ui and /ui/, its files by name. */
  assert_int_equal(find("GET", "/", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "ui");
  assert_int_equal(find("GET", "/ui/", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "ui");
  assert_null(params[0]);
  assert_int_equal(find("GET", "/ui/app.js", &rt, params, allow), HTTP_MATCH_OK);
  assert_string_equal(rt->name, "ui");
  assert_string_equal(params[0], "app.js");
  free_params(params);
  assert_int_equal(find("GET", "/ui/a/b.js", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("POST", "/", &rt, params, allow), HTTP_MATCH_BAD_METHOD);
  assert_int_equal(find("GET", API "%2Fruns/x", &rt, params, allow), HTTP_MATCH_NOT_FOUND);
  assert_int_equal(find("OPTIONS", "/health", &rt, params, allow), HTTP_MATCH_BAD_METHOD);
  assert_null(params[0]);
}

/* The error code of a rendered reply. */
static void assert_error(const struct http_reply *r, unsigned status, const char *code,
                         const char *message_part)
{
  cJSON *j = nrd_json_parse(r->body, strlen(r->body));
  const cJSON *err;

  assert_non_null(j);
  assert_int_equal(r->status, status);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "success")));
  err = cJSON_GetObjectItem(j, "error");
  assert_string_equal(nrd_json_str(err, "code"), code);
  assert_non_null(nrd_json_str(err, "message"));
  if (message_part)
    assert_non_null(strstr(nrd_json_str(err, "message"), message_part));
  cJSON_Delete(j);
}

static void test_content_type(void **state)
{
  assert_true(http_content_type_ok(NULL));
  assert_true(http_content_type_ok("application/json"));
  assert_true(http_content_type_ok("Application/JSON; charset=utf-8"));
  assert_true(http_content_type_ok("application/json ;charset=utf-8"));
  assert_false(http_content_type_ok("application/jsonx"));
  assert_false(http_content_type_ok("text/plain"));
  assert_false(http_content_type_ok(""));
}

static void test_body_parse(void **state)
{
  struct http_reply r = { 0 };
  cJSON *json = (cJSON *)1;

  assert_int_equal(http_body_parse("text/plain", NULL, 0, &json, &r), 0);
  assert_null(json);

  assert_int_equal(http_body_parse("text/plain", "{}", 2, &json, &r), -1);
  assert_error(&r, 415, "UNSUPPORTED_MEDIA_TYPE", "application/json");

  assert_int_equal(http_body_parse(NULL, "{\"a\":", 5, &json, &r), -1);
  assert_error(&r, 400, "INVALID_JSON", NULL);

  assert_int_equal(http_body_parse("application/json", "[1]", 3, &json, &r), -1);
  assert_error(&r, 400, "INVALID_BODY", NULL);

  /* not NUL-terminated: only len bytes count */
  assert_int_equal(http_body_parse(NULL, "{\"a\":1}garbage", 7, &json, &r), 0);
  assert_non_null(json);
  cJSON_Delete(json);
  http_reply_cleanup(&r);
}

static void test_fields(void **state)
{
  static const struct http_field fields[] = { { "immediate", HTTP_FIELD_BOOL },
                                              { "dryRun", HTTP_FIELD_BOOL } };
  struct http_reply r = { 0 };
  cJSON *j;

  assert_int_equal(http_body_fields(NULL, fields, 2, &r), 0);

  j = cJSON_Parse("{\"immediate\":true,\"dryRun\":false}");
  assert_int_equal(http_body_fields(j, fields, 2, &r), 0);
  cJSON_Delete(j);

  j = cJSON_Parse("{\"immediate\":true,\"dry_run\":true}");
  assert_int_equal(http_body_fields(j, fields, 2, &r), -1);
  assert_error(&r, 400, "UNKNOWN_FIELD", "unknown field 'dry_run'; allowed: immediate, dryRun");
  cJSON_Delete(j);

  j = cJSON_Parse("{\"immediate\":\"true\"}");
  assert_int_equal(http_body_fields(j, fields, 2, &r), -1);
  assert_error(&r, 400, "INVALID_FIELD", "'immediate'");
  cJSON_Delete(j);

  j = cJSON_Parse("{\"x\":1}");
  assert_int_equal(http_body_fields(j, NULL, 0, &r), -1);
  assert_error(&r, 400, "UNKNOWN_FIELD", "allowed: none");
  cJSON_Delete(j);
  http_reply_cleanup(&r);
}

static void test_error_shape(void **state)
{
  struct http_reply r = { 0 };

  http_error(&r, HTTP_E_NOVITA_UNAVAILABLE, "listing failed: \"quoted\"", "{\"totalChecked\":0}");
  assert_error(&r, 502, "NOVITA_UNAVAILABLE", "listing failed: \"quoted\"");
  cJSON *j = nrd_json_parse(r.body, strlen(r.body));
  assert_non_null(cJSON_GetObjectItem(j, "result"));
  cJSON_Delete(j);

  for (int e = 0; e < HTTP_E_COUNT; e++) {
    unsigned st = http_err_status((enum http_err)e);
    assert_true(st >= 400 && st < 600);
    assert_non_null(http_err_code((enum http_err)e));
  }
  http_reply_cleanup(&r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_path_rules),   cmocka_unit_test(test_routes),
    cmocka_unit_test(test_content_type), cmocka_unit_test(test_body_parse),
    cmocka_unit_test(test_fields),       cmocka_unit_test(test_error_shape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
