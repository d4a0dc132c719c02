/* Unit tests for the JSON-lines logger: lines captured through nrd_log_set_fd
 * into a temporary file and parsed back as JSON. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nrd/log.h"
#include "nrd/util.h"

struct capture {
  FILE *fp;
};

static int setup(void **state)
{
  struct capture *c = nrd_xcalloc(1, sizeof *c);
  c->fp = tmpfile();
  if (!c->fp)
    return -1;
  nrd_log_set_fd(fileno(c->fp));
  nrd_log_set_level(NRD_LOG_INFO);
  *state = c;
  return 0;
}

static int teardown(void **state)
{
  struct capture *c = *state;
  nrd_log_set_fd(1);
  nrd_log_set_request_id(NULL);
  nrd_log_set_run_id(NULL);
  fclose(c->fp);
  free(c);
  return 0;
}

/* Everything written so far; caller frees. */
static char *captured(struct capture *c)
{
  int fd = fileno(c->fp);
  off_t size = lseek(fd, 0, SEEK_END);
  assert_true(size >= 0);
  char *data = nrd_xmalloc((size_t)size + 1);
  assert_int_equal(pread(fd, data, (size_t)size, 0), size);
  data[size] = '\0';
  return data;
}

/* Parses the only line captured; checks it is one line ending in '\n'. */
static cJSON *only_line(struct capture *c, char **raw)
{
  char *data = captured(c);
  size_t len = strlen(data);
  assert_true(len > 1);
  assert_int_equal(data[len - 1], '\n');
  assert_null(memchr(data, '\n', len - 1));
  cJSON *obj = cJSON_ParseWithLength(data, len - 1);
  assert_non_null(obj);
  if (raw)
    *raw = data;
  else
    free(data);
  return obj;
}

static void test_fields_and_order(void **state)
{
  struct capture *c = *state;
  nrd_log_set_request_id("req-1");
  nrd_log_set_run_id("run_1");
  LOG_INFO("recreated", "instanceId", "i-a", "#count", NRD_I64(42), "#ok", NRD_BOOL(1),
           "missing", (const char *)NULL);
  char *raw = NULL;
  cJSON *obj = only_line(c, &raw);

  assert_string_equal(cJSON_GetObjectItem(obj, "level")->valuestring, "info");
  assert_string_equal(cJSON_GetObjectItem(obj, "msg")->valuestring, "recreated");
  const char *ts = cJSON_GetObjectItem(obj, "ts")->valuestring;
  assert_int_equal(strlen(ts), 24);
  assert_int_equal(ts[23], 'Z');
  assert_string_equal(cJSON_GetObjectItem(obj, "requestId")->valuestring, "req-1");
  assert_string_equal(cJSON_GetObjectItem(obj, "runId")->valuestring, "run_1");
  assert_string_equal(cJSON_GetObjectItem(obj, "instanceId")->valuestring, "i-a");
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(obj, "count")));
  assert_int_equal(cJSON_GetObjectItem(obj, "count")->valueint, 42);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(obj, "ok")));
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(obj, "missing")));
  assert_null(cJSON_GetObjectItem(obj, "#count"));

  /* Order: ts, level, msg, requestId, runId, then the pairs. */
  const char *order[] = { "\"ts\"", "\"level\"", "\"msg\"", "\"requestId\"", "\"runId\"",
                          "\"instanceId\"", "\"count\"", "\"ok\"", "\"missing\"" };
  const char *prev = raw;
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    const char *at = strstr(raw, order[i]);
    assert_non_null(at);
    assert_true(at >= prev);
    prev = at;
  }
  free(raw);
  cJSON_Delete(obj);
}

static void test_escaping(void **state)
{
  struct capture *c = *state;
  LOG_WARN("odd \"msg\"\n", "k", "quote\" back\\ nl\n tab\t ctl\x01 bad\xff end");
  cJSON *obj = only_line(c, NULL);
  assert_string_equal(cJSON_GetObjectItem(obj, "msg")->valuestring, "odd \"msg\"\n");
  assert_string_equal(cJSON_GetObjectItem(obj, "k")->valuestring,
                      "quote\" back\\ nl\n tab\t ctl\x01 bad\xef\xbf\xbd end");
  assert_string_equal(cJSON_GetObjectItem(obj, "level")->valuestring, "warn");
  cJSON_Delete(obj);
}

static int evaluated;
static const char *count_eval(void)
{
  evaluated++;
  return "v";
}

static void test_levels(void **state)
{
  struct capture *c = *state;
  evaluated = 0;
  nrd_log_set_level(NRD_LOG_WARN);
  assert_false(nrd_log_enabled(NRD_LOG_INFO));
  assert_true(nrd_log_enabled(NRD_LOG_ERROR));
  LOG_INFO("hidden", "k", count_eval());
  LOG_DEBUG("hidden", "k", count_eval());
  assert_int_equal(evaluated, 0);  /* arguments not evaluated below the level */
  char *data = captured(c);
  assert_string_equal(data, "");
  free(data);
  LOG_ERROR("shown", "k", count_eval());
  assert_int_equal(evaluated, 1);
  cJSON *obj = only_line(c, NULL);
  assert_string_equal(cJSON_GetObjectItem(obj, "level")->valuestring, "error");
  cJSON_Delete(obj);

  enum nrd_log_level lv;
  assert_true(nrd_log_level_parse("debug", &lv));
  assert_int_equal(lv, NRD_LOG_DEBUG);
  assert_true(nrd_log_level_parse("WARN", &lv));
  assert_int_equal(lv, NRD_LOG_WARN);
  assert_false(nrd_log_level_parse("loud", &lv));
  assert_false(nrd_log_level_parse("", &lv));
}

static void test_bad_raw_value_stays_json(void **state)
{
  struct capture *c = *state;
  LOG_INFO("raw", "#empty", "", "#nl", "1\n2");
  cJSON *obj = only_line(c, NULL);
  assert_string_equal(cJSON_GetObjectItem(obj, "empty")->valuestring, "");
  assert_string_equal(cJSON_GetObjectItem(obj, "nl")->valuestring, "1\n2");
  cJSON_Delete(obj);
}

#define THREADS 8
#define LINES 200

static void *writer(void *arg)
{
  char id[32];
  snprintf(id, sizeof id, "req-%d", (int)(intptr_t)arg);
  nrd_log_set_request_id(id);
  char big[600];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  for (int i = 0; i < LINES; i++)
    LOG_INFO("line", "#i", NRD_I64(i), "big", big);
  nrd_log_set_request_id(NULL);
  return NULL;
}

/* Concurrent writers never interleave within a line, and each thread's
 * requestId stays its own. */
static void test_threads(void **state)
{
  struct capture *c = *state;
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);

  char *data = captured(c);
  int per_thread[THREADS] = { 0 };
  int lines = 0;
  char *save = NULL;
  for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *obj = cJSON_Parse(line);
    assert_non_null(obj);
    const char *rid = cJSON_GetObjectItem(obj, "requestId")->valuestring;
    int n = atoi(rid + 4);
    assert_true(n >= 0 && n < THREADS);
    per_thread[n]++;
    lines++;
    cJSON_Delete(obj);
  }
  assert_int_equal(lines, THREADS * LINES);
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(per_thread[i], LINES);
  free(data);
}

static void test_context_cleared(void **state)
{
  struct capture *c = *state;
  nrd_log_set_request_id("r");
  nrd_log_set_request_id(NULL);
  LOG_INFO("no context");
  cJSON *obj = only_line(c, NULL);
  assert_null(cJSON_GetObjectItem(obj, "requestId"));
  assert_null(cJSON_GetObjectItem(obj, "runId"));
  cJSON_Delete(obj);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_fields_and_order, setup, teardown),
    cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
    cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_raw_value_stays_json, setup, teardown),
    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    cmocka_unit_test_setup_teardown(test_context_cleared, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
