/* Unit tests for the metrics: counts, histogram buckets, label tables,
 * concurrent increments, and the Prometheus text format of the output. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/metrics.h"

static int reset(void **state)
{
  nrd_metrics_reset();
  return 0;
}

static char *render(void)
{
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_metrics_render(&b);
  return nrd_buf_steal(&b);
}

/* The value of the sample line starting with series + ' ', or -1 if absent. */
static double sample(const char *text, const char *series)
{
  size_t len = strlen(series);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, series, len) == 0 && p[len] == ' ')
      return strtod(p + len + 1, NULL);
  }
  return -1;
}

static void test_novita_counts(void **state)
{
  nrd_metrics_novita_request(NRD_EP_CREATE, 200, 0.004);
  nrd_metrics_novita_request(NRD_EP_CREATE, 201, 0.2);
  nrd_metrics_novita_request(NRD_EP_CREATE, 400, 1.0);
  nrd_metrics_novita_request(NRD_EP_CREATE, 503, 45.0);
  nrd_metrics_novita_request(NRD_EP_CREATE, 0, 30.0);
  nrd_metrics_novita_request(NRD_EP_DELETE, 404, 0.01);
  nrd_metrics_novita_retry(NRD_EP_CREATE);
  nrd_metrics_novita_retry(NRD_EP_CREATE);
  nrd_metrics_circuit_set(1);
  assert_true(nrd_metrics_novita_requests_total(NRD_EP_CREATE) == 5);
  assert_true(nrd_metrics_novita_requests_total(NRD_EP_DELETE) == 1);
  assert_true(nrd_metrics_novita_requests_total(NRD_EP_PRODUCTS) == 0);
  assert_string_equal(nrd_endpoint_name(NRD_EP_LIST_INSTANCES), "list_instances");
  assert_string_equal(nrd_endpoint_name(NRD_EP_CREATE), "create");

  char *t = render();
  assert_true(sample(t, "nrd_novita_requests_total{endpoint=\"create\",class=\"2xx\"}") == 2);
  assert_true(sample(t, "nrd_novita_requests_total{endpoint=\"create\",class=\"4xx\"}") == 1);
  assert_true(sample(t, "nrd_novita_requests_total{endpoint=\"create\",class=\"5xx\"}") == 1);
  assert_true(sample(t, "nrd_novita_requests_total{endpoint=\"create\",class=\"network\"}") == 1);
  assert_true(sample(t, "nrd_novita_requests_total{endpoint=\"delete\",class=\"4xx\"}") == 1);
  assert_true(sample(t, "nrd_novita_retries_total{endpoint=\"create\"}") == 2);
  assert_true(sample(t, "nrd_novita_circuit_state") == 1);

  /* Cumulative buckets: 0.004 | 0.2 | 1.0 | 30 | 45 (above the last bound). */
  const char *h = "nrd_novita_request_duration_seconds";
  char series[160];
  snprintf(series, sizeof series, "%s_bucket{endpoint=\"create\",le=\"0.005\"}", h);
  assert_true(sample(t, series) == 1);
  snprintf(series, sizeof series, "%s_bucket{endpoint=\"create\",le=\"0.25\"}", h);
  assert_true(sample(t, series) == 2);
  snprintf(series, sizeof series, "%s_bucket{endpoint=\"create\",le=\"1\"}", h);
  assert_true(sample(t, series) == 3);
  snprintf(series, sizeof series, "%s_bucket{endpoint=\"create\",le=\"30\"}", h);
  assert_true(sample(t, series) == 4);
  snprintf(series, sizeof series, "%s_bucket{endpoint=\"create\",le=\"+Inf\"}", h);
  assert_true(sample(t, series) == 5);
  snprintf(series, sizeof series, "%s_count{endpoint=\"create\"}", h);
  assert_true(sample(t, series) == 5);
  snprintf(series, sizeof series, "%s_sum{endpoint=\"create\"}", h);
  double sum = sample(t, series);
  assert_true(sum > 76.2 && sum < 76.21);
  free(t);

  nrd_metrics_reset();
  assert_true(nrd_metrics_novita_requests_total(NRD_EP_CREATE) == 0);
  t = render();
  assert_true(sample(t, "nrd_novita_circuit_state") == 0);
  free(t);
}

static void test_labelled(void **state)
{
  nrd_metrics_http_request("/health", 200, 0.0005);
  nrd_metrics_http_request("/health", 200, 0.0005);
  nrd_metrics_http_request("/api/instances/migration/check-failed", 415, 0.02);
  nrd_metrics_run("api", "done");
  nrd_metrics_run("scheduler", "failed");
  nrd_metrics_run("api", "done");
  nrd_metrics_recovery("recreated");
  nrd_metrics_recovery("failed");
  nrd_metrics_recovery("recreated");
  nrd_metrics_webhook("delivered");
  nrd_metrics_webhook("dead");

  char *t = render();
  assert_true(sample(t, "nrd_http_requests_total{route=\"/health\",status=\"200\"}") == 2);
  assert_true(sample(t, "nrd_http_requests_total{route=\"/api/instances/migration/"
                        "check-failed\",status=\"415\"}") == 1);
  assert_true(sample(t, "nrd_runs_total{trigger=\"api\",outcome=\"done\"}") == 2);
  assert_true(sample(t, "nrd_runs_total{trigger=\"scheduler\",outcome=\"failed\"}") == 1);
  assert_true(sample(t, "nrd_recoveries_total{action=\"recreated\"}") == 2);
  assert_true(sample(t, "nrd_recoveries_total{action=\"failed\"}") == 1);
  assert_true(sample(t, "nrd_webhook_events_total{result=\"delivered\"}") == 1);
  assert_true(sample(t, "nrd_webhook_events_total{result=\"dead\"}") == 1);
  /* Known label values are there before their first event, at 0. */
  assert_true(sample(t, "nrd_recoveries_total{action=\"adopted\"}") == 0);
  assert_true(sample(t, "nrd_webhook_events_total{result=\"retried\"}") == 0);
  assert_true(sample(t, "nrd_runs_total{trigger=\"cli\",outcome=\"failed\"}") == 0);
  assert_true(sample(t, "nrd_recoveries_total{action=\"unknown\"}") == -1);
  free(t);
}

/* Before any event: every series an alert or the dashboard reads is present. */
static void test_present_from_start(void **state)
{
  char *t = render();
  static const char *const series[] = {
    "nrd_runs_total{trigger=\"scheduler\",outcome=\"done\"}",
    "nrd_recoveries_total{action=\"failed\"}",
    "nrd_webhook_events_total{result=\"dead\"}",
    "nrd_webhook_events_total{result=\"delivered\"}",
    "nrd_brake_held_rows{brake=\"account\"}",
    "nrd_brake_held_rows{brake=\"capacity\"}",
    "nrd_last_run_timestamp_seconds{outcome=\"done\"}",
    "nrd_last_run_timestamp_seconds{outcome=\"failed\"}",
    "nrd_last_successful_run_timestamp_seconds",
    "nrd_run_duration_seconds_count",
    "nrd_run_duration_seconds_bucket{le=\"+Inf\"}",
  };
  for (size_t i = 0; i < sizeof series / sizeof series[0]; i++) {
    if (sample(t, series[i]) != 0)
      fail_msg("%s is not 0 from start", series[i]);
  }
  assert_non_null(strstr(t, "nrd_build_info{version=\"" NRD_VERSION "\",commit=\""));
  assert_true(sample(t, "process_start_time_seconds") > 1.6e9);
  assert_true(sample(t, "process_resident_memory_bytes") > 0);
  assert_true(sample(t, "process_open_fds") > 0);
  assert_true(sample(t, "process_max_fds") > 0);
  assert_true(sample(t, "process_cpu_seconds_total") >= 0);
  free(t);
}

static void test_timings(void **state)
{
  nrd_metrics_http_route("health");
  nrd_metrics_http_route("ready");
  nrd_metrics_http_request("health", 200, 0.0005);
  nrd_metrics_http_request("health", 503, 0.2);
  nrd_metrics_run_timing("done", 1764345600123, 4000);
  nrd_metrics_run_timing("failed", 1764345700000, 700000);
  nrd_metrics_run_timing("done", 1764345800500, 500);
  nrd_metrics_brake_held("capacity", 7);
  nrd_metrics_brake_held("nonsense", 9);

  char *t = render();
  assert_true(
      sample(t, "nrd_http_request_duration_seconds_bucket{route=\"health\",le=\"0.001\"}") == 1);
  assert_true(sample(t, "nrd_http_request_duration_seconds_bucket{route=\"health\",le=\"0.1\"}") ==
              1);
  assert_true(sample(t, "nrd_http_request_duration_seconds_bucket{route=\"health\",le=\"0.25\"}") ==
              2);
  assert_true(sample(t, "nrd_http_request_duration_seconds_bucket{route=\"health\",le=\"+Inf\"}") ==
              2);
  assert_true(sample(t, "nrd_http_request_duration_seconds_count{route=\"health\"}") == 2);
  assert_true(sample(t, "nrd_http_request_duration_seconds_sum{route=\"health\"}") > 0.2);
  assert_true(sample(t, "nrd_http_request_duration_seconds_count{route=\"ready\"}") == 0);
  assert_true(sample(t, "nrd_run_duration_seconds_bucket{le=\"0.5\"}") == 1);
  assert_true(sample(t, "nrd_run_duration_seconds_bucket{le=\"5\"}") == 2);
  assert_true(sample(t, "nrd_run_duration_seconds_bucket{le=\"600\"}") == 2);
  assert_true(sample(t, "nrd_run_duration_seconds_bucket{le=\"1800\"}") == 3);
  assert_true(sample(t, "nrd_run_duration_seconds_count") == 3);
  assert_true(sample(t, "nrd_last_run_timestamp_seconds{outcome=\"done\"}") == 1764345800.5);
  assert_true(sample(t, "nrd_last_run_timestamp_seconds{outcome=\"failed\"}") == 1764345700);
  assert_true(sample(t, "nrd_last_successful_run_timestamp_seconds") == 1764345800.5);
  assert_true(sample(t, "nrd_brake_held_rows{brake=\"capacity\"}") == 7);
  assert_true(sample(t, "nrd_brake_held_rows{brake=\"account\"}") == 0);
  assert_null(strstr(t, "nonsense"));
  free(t);
}

/* Every line is a comment (# HELP / # TYPE) or "name{labels} value"; every
 * sample's family was declared by a TYPE line before it; names start nrd_. */
static void test_exposition_format(void **state)
{
  nrd_metrics_novita_request(NRD_EP_LIST_JOBS, 200, 0.3);
  nrd_metrics_http_request("/metrics", 200, 0.002);
  nrd_metrics_run("cli", "done");
  char *t = render();
  size_t len = strlen(t);
  assert_true(len > 0);
  assert_int_equal(t[len - 1], '\n');

  char families[64][96];
  size_t n_families = 0;
  char *save = NULL;
  for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "# HELP nrd_", 11) == 0 || strncmp(line, "# HELP process_", 15) == 0)
      continue;
    if (strncmp(line, "# TYPE ", 7) == 0) {
      char name[96], type[32];
      assert_int_equal(sscanf(line + 7, "%95s %31s", name, type), 2);
      assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
                  strcmp(type, "histogram") == 0);
      assert_true(n_families < 64);
      strcpy(families[n_families++], name);
      continue;
    }
    assert_true(strncmp(line, "nrd_", 4) == 0 || strncmp(line, "process_", 8) == 0);
    size_t name_len = strspn(line, "abcdefghijklmnopqrstuvwxyz_0123456789");
    char *rest = line + name_len;
    if (*rest == '{') {
      char *close = strchr(rest, '}');
      assert_non_null(close);
      rest = close + 1;
    }
    assert_int_equal(*rest, ' ');
    char *end = NULL;
    strtod(rest + 1, &end);
    assert_true(end != rest + 1 && *end == '\0');
    bool declared = false;
    for (size_t i = 0; i < n_families; i++) {
      size_t fl = strlen(families[i]);
      if (strncmp(line, families[i], fl) == 0 && (fl == name_len || line[fl] == '_'))
        declared = true;
    }
    assert_true(declared);
  }
  free(t);
}

#define THREADS 8
#define PER_THREAD 5000

static void *hammer(void *arg)
{
  for (int i = 0; i < PER_THREAD; i++) {
    nrd_metrics_novita_request(NRD_EP_LIST_INSTANCES, 200, 0.001);
    nrd_metrics_http_request("/health", 200, 0.0005);
  }
  return NULL;
}

static void test_threads(void **state)
{
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, hammer, NULL), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  assert_true(nrd_metrics_novita_requests_total(NRD_EP_LIST_INSTANCES) == THREADS * PER_THREAD);
  char *text = render();
  assert_true(sample(text, "nrd_http_requests_total{route=\"/health\",status=\"200\"}") ==
              THREADS * PER_THREAD);
  free(text);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_novita_counts, reset),
    cmocka_unit_test_setup(test_labelled, reset),
    cmocka_unit_test_setup(test_present_from_start, reset),
    cmocka_unit_test_setup(test_timings, reset),
    cmocka_unit_test_setup(test_exposition_format, reset),
    cmocka_unit_test_setup(test_threads, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
