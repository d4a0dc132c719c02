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
#include <sys/wait.h>
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
  LOG_INFO("recreated", "instanceId", "i-a", "#count", NRD_I64(42), "#ok", NRD_BOOL(1), "missing",
           (const char *)NULL);
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
  const char *order[] = { "\"ts\"",         "\"level\"", "\"msg\"", "\"requestId\"", "\"runId\"",
                          "\"instanceId\"", "\"count\"", "\"ok\"",  "\"missing\"" };
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

/* The exact bytes of a line (the timestamp aside): what log readers parse. */
static void test_exact_bytes(void **state)
{
  struct capture *c = *state;
  nrd_log_set_request_id("req-1");
  nrd_log_set_run_id("run_1");
  LOG_WARN("m \"q\"", "k", "v\n", "#n", NRD_I64(-5), "#b", NRD_BOOL(0), "z", (const char *)NULL,
           "#e", "", "k\"2", "\xff");
  LOG_ACCESS("request", "method", "GET");
  char *data = captured(c);
  for (char *line = data; *line; line = strchr(line, '\n') + 1) {
    assert_true(strlen(line) > 33);
    assert_memory_equal(line, "{\"ts\":\"", 7);
    assert_memory_equal(line + 31, "\",", 2);
    memset(line + 7, 'T', 24);
  }
  assert_string_equal(data,
                      "{\"ts\":\"TTTTTTTTTTTTTTTTTTTTTTTT\",\"level\":\"warn\","
                      "\"msg\":\"m \\\"q\\\"\","
                      "\"requestId\":\"req-1\",\"runId\":\"run_1\",\"k\":\"v\\n\",\"n\":-5,"
                      "\"b\":false,\"z\":null,\"e\":\"\",\"k\\\"2\":\"\\ufffd\"}\n"
                      "{\"ts\":\"TTTTTTTTTTTTTTTTTTTTTTTT\",\"level\":\"info\",\"msg\":\"request\","
                      "\"requestId\":\"req-1\",\"runId\":\"run_1\",\"method\":\"GET\"}\n");
  free(data);
}

/* Whose fault: "fault" right after msg, one of four names; plain lines
 * carry none. */
static void test_fault_field(void **state)
{
  struct capture *c = *state;
  LOG_ERROR_AT(NRD_FAULT_DISK, "store: sqlite error", "op", "x");
  LOG_WARN("a notice");
  char *data = captured(c);
  for (char *line = data; *line; line = strchr(line, '\n') + 1)
    memset(line + 7, 'T', 24);
  assert_string_equal(data, "{\"ts\":\"TTTTTTTTTTTTTTTTTTTTTTTT\",\"level\":\"error\","
                            "\"msg\":\"store: sqlite error\",\"fault\":\"disk\",\"op\":\"x\"}\n"
                            "{\"ts\":\"TTTTTTTTTTTTTTTTTTTTTTTT\",\"level\":\"warn\","
                            "\"msg\":\"a notice\"}\n");
  free(data);
  assert_string_equal(nrd_fault_name(NRD_FAULT_OURS), "ours");
  assert_string_equal(nrd_fault_name(NRD_FAULT_NOVITA), "novita");
  assert_string_equal(nrd_fault_name(NRD_FAULT_CLIENT), "client");
  assert_string_equal(nrd_fault_name(NRD_FAULT_DISK), "disk");
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
  assert_int_equal(evaluated, 0); /* arguments not evaluated below the level */
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

/* ---- access lines held back (nrd_log_buffer_start) ---- */

/* Long enough that the flusher never writes during a test that does not
 * wait for it: what is written comes from the rule under test. */
#define NO_TIMER_MS 600000

/* The msg of each captured line, in order, joined by spaces. */
static char *captured_msgs(struct capture *c)
{
  char *data = captured(c);
  struct nrd_buf out;
  char *save = NULL;
  nrd_buf_init(&out);
  nrd_buf_puts(&out, "");
  for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *obj = cJSON_Parse(line);
    assert_non_null(obj);
    if (out.len > 0)
      nrd_buf_puts(&out, " ");
    nrd_buf_puts(&out, cJSON_GetObjectItem(obj, "msg")->valuestring);
    cJSON_Delete(obj);
  }
  free(data);
  return nrd_buf_steal(&out);
}

static void assert_msgs(struct capture *c, const char *expected)
{
  char *msgs = captured_msgs(c);
  assert_string_equal(msgs, expected);
  free(msgs);
}

static void test_access_written_at_once_when_not_started(void **state)
{
  struct capture *c = *state;
  LOG_ACCESS("a1", "k", "v");
  assert_msgs(c, "a1");
}

static void test_access_held_until_flush(void **state)
{
  struct capture *c = *state;
  nrd_log_set_request_id("req-7");
  nrd_log_buffer_start(NO_TIMER_MS);
  LOG_ACCESS("a1", "#status", NRD_I64(200));
  LOG_ACCESS("a2");
  assert_msgs(c, "");
  nrd_log_flush();
  assert_msgs(c, "a1 a2");

  /* The line is the one LOG_INFO would have written. */
  char *data = captured(c);
  cJSON *obj = cJSON_ParseWithLength(data, (size_t)(strchr(data, '\n') - data));
  free(data);
  assert_non_null(obj);
  assert_string_equal(cJSON_GetObjectItem(obj, "level")->valuestring, "info");
  assert_string_equal(cJSON_GetObjectItem(obj, "requestId")->valuestring, "req-7");
  assert_int_equal(cJSON_GetObjectItem(obj, "status")->valueint, 200);
  cJSON_Delete(obj);
  nrd_log_buffer_stop();
}

/* Any other line (warn, error, or an info line that is not an access line)
 * writes what is held first, then itself, at once. */
static void test_other_line_writes_held_first(void **state)
{
  struct capture *c = *state;
  nrd_log_buffer_start(NO_TIMER_MS);
  LOG_ACCESS("a1");
  LOG_ACCESS("a2");
  LOG_WARN("w1");
  assert_msgs(c, "a1 a2 w1");
  LOG_ACCESS("a3");
  LOG_INFO("i1");
  assert_msgs(c, "a1 a2 w1 a3 i1");
  LOG_ACCESS("a4");
  LOG_ERROR("e1");
  LOG_ERROR("e2"); /* nothing held: written alone */
  assert_msgs(c, "a1 a2 w1 a3 i1 a4 e1 e2");
  nrd_log_buffer_stop();
}

/* The captured text is whole lines, a prefix of what was logged. */
static size_t assert_whole_lines(struct capture *c)
{
  char *data = captured(c);
  size_t len = strlen(data);
  assert_true(len == 0 || data[len - 1] == '\n');
  free(data);
  return len;
}

static void test_full_buffer_written(void **state)
{
  struct capture *c = *state;
  char big[1000];
  size_t logged = 0, line_len = 0;
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';

  nrd_log_buffer_start(NO_TIMER_MS);
  /* Lines of ~1 KB, all of one length, until three buffers' worth: each time
   * the next line would not fit, what is held is written, so at most a
   * buffer is held. */
  for (int i = 0; logged < 3 * NRD_LOG_BUFFER_BYTES; i++) {
    char seq[16];
    snprintf(seq, sizeof seq, "%06d", i);
    LOG_ACCESS("a", "seq", seq, "big", big);
    size_t written = assert_whole_lines(c);
    if (i == 0) {
      assert_int_equal(written, 0);
      nrd_log_flush();
      line_len = assert_whole_lines(c);
      logged = line_len;
      continue;
    }
    logged += line_len;
    assert_true(written <= logged);
    assert_true(logged - written <= NRD_LOG_BUFFER_BYTES);
    assert_true(logged - written > 0); /* the newest line is held */
  }
  nrd_log_flush();
  assert_int_equal(assert_whole_lines(c), logged);

  /* Every line is there, in order. */
  char *data = captured(c);
  char *save = NULL;
  int want = 0;
  for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *obj = cJSON_Parse(line);
    assert_non_null(obj);
    assert_int_equal(atoi(cJSON_GetObjectItem(obj, "seq")->valuestring), want++);
    cJSON_Delete(obj);
  }
  free(data);
  assert_true((size_t)want * line_len >= 3 * NRD_LOG_BUFFER_BYTES);
  nrd_log_buffer_stop();
}

/* A line larger than the buffer is written at once, after what is held. */
static void test_line_over_buffer_written_at_once(void **state)
{
  struct capture *c = *state;
  char *huge = nrd_xmalloc(NRD_LOG_BUFFER_BYTES + 1);
  memset(huge, 'y', NRD_LOG_BUFFER_BYTES);
  huge[NRD_LOG_BUFFER_BYTES] = '\0';
  nrd_log_buffer_start(NO_TIMER_MS);
  LOG_ACCESS("a1");
  LOG_ACCESS("a2", "huge", huge);
  assert_msgs(c, "a1 a2");
  LOG_WARN("w1", "huge", huge);
  assert_msgs(c, "a1 a2 w1");
  nrd_log_buffer_stop();
  free(huge);
}

static void test_flusher_writes_within_its_delay(void **state)
{
  struct capture *c = *state;
  nrd_log_buffer_start(50);
  for (int round = 0; round < 2; round++) { /* the flusher sleeps and wakes again */
    size_t before = assert_whole_lines(c);
    int64_t t0 = nrd_mono_ms();
    LOG_ACCESS("a");
    while (assert_whole_lines(c) == before && nrd_mono_ms() - t0 < 5000)
      nrd_sleep_ms(5);
    int64_t waited = nrd_mono_ms() - t0;
    assert_true(waited >= 40);  /* held for its delay, not written at once */
    assert_true(waited < 5000); /* and then written without anyone asking */
    assert_msgs(c, round == 0 ? "a" : "a a");
  }
  nrd_log_buffer_stop();
}

static void test_stop_writes_held_lines(void **state)
{
  struct capture *c = *state;
  nrd_log_buffer_start(NO_TIMER_MS);
  nrd_log_buffer_start(NO_TIMER_MS); /* counted: two servers */
  LOG_ACCESS("a1");
  nrd_log_buffer_stop(); /* writes, and the other start still holds */
  assert_msgs(c, "a1");
  LOG_ACCESS("a2");
  assert_msgs(c, "a1");
  nrd_log_buffer_stop();
  assert_msgs(c, "a1 a2");
  LOG_ACCESS("a3"); /* no longer held */
  assert_msgs(c, "a1 a2 a3");
  nrd_log_buffer_stop(); /* an extra stop is harmless */
}

static void test_set_fd_writes_held_lines_to_the_old_fd(void **state)
{
  struct capture *c = *state;
  FILE *other = tmpfile();
  assert_non_null(other);
  nrd_log_buffer_start(NO_TIMER_MS);
  LOG_ACCESS("a1");
  nrd_log_set_fd(fileno(other));
  assert_msgs(c, "a1");
  LOG_ACCESS("a2");
  nrd_log_buffer_stop();
  assert_msgs(c, "a1");
  nrd_log_set_fd(fileno(c->fp));
  fclose(other);
}

/* A process that exits while lines are held writes them (atexit). */
static void test_exit_writes_held_lines(void **state)
{
  struct capture *c = *state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    nrd_log_buffer_start(NO_TIMER_MS);
    LOG_ACCESS("a1");
    exit(0);
  }
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_msgs(c, "a1");
}

static void *mixed_writer(void *arg)
{
  char id[32];
  snprintf(id, sizeof id, "req-%d", (int)(intptr_t)arg);
  nrd_log_set_request_id(id);
  char big[600];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  for (int i = 0; i < LINES; i++) {
    if (i % 5 == 4)
      LOG_WARN("line", "#i", NRD_I64(i), "big", big);
    else
      LOG_ACCESS("line", "#i", NRD_I64(i), "big", big);
  }
  nrd_log_set_request_id(NULL);
  return NULL;
}

/* Held and direct lines of many threads, a short flush delay: every line
 * whole, none lost, each thread's lines in the order it logged them. */
static void test_threads_with_held_lines(void **state)
{
  struct capture *c = *state;
  pthread_t t[THREADS];
  nrd_log_buffer_start(2);
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, mixed_writer, (void *)(intptr_t)i), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  nrd_log_buffer_stop();

  char *data = captured(c);
  int next[THREADS] = { 0 };
  int lines = 0;
  char *save = NULL;
  for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    cJSON *obj = cJSON_Parse(line);
    assert_non_null(obj);
    int n = atoi(cJSON_GetObjectItem(obj, "requestId")->valuestring + 4);
    assert_true(n >= 0 && n < THREADS);
    assert_int_equal(cJSON_GetObjectItem(obj, "i")->valueint, next[n]);
    next[n]++;
    lines++;
    cJSON_Delete(obj);
  }
  assert_int_equal(lines, THREADS * LINES);
  free(data);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_fields_and_order, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fault_field, setup, teardown),
    cmocka_unit_test_setup_teardown(test_exact_bytes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
    cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
    cmocka_unit_test_setup_teardown(test_bad_raw_value_stays_json, setup, teardown),
    cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    cmocka_unit_test_setup_teardown(test_context_cleared, setup, teardown),
    cmocka_unit_test_setup_teardown(test_access_written_at_once_when_not_started, setup, teardown),
    cmocka_unit_test_setup_teardown(test_access_held_until_flush, setup, teardown),
    cmocka_unit_test_setup_teardown(test_other_line_writes_held_first, setup, teardown),
    cmocka_unit_test_setup_teardown(test_full_buffer_written, setup, teardown),
    cmocka_unit_test_setup_teardown(test_line_over_buffer_written_at_once, setup, teardown),
    cmocka_unit_test_setup_teardown(test_flusher_writes_within_its_delay, setup, teardown),
    cmocka_unit_test_setup_teardown(test_stop_writes_held_lines, setup, teardown),
    cmocka_unit_test_setup_teardown(test_set_fd_writes_held_lines_to_the_old_fd, setup, teardown),
    cmocka_unit_test_setup_teardown(test_exit_writes_held_lines, setup, teardown),
    cmocka_unit_test_setup_teardown(test_threads_with_held_lines, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
