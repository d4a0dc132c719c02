/* GET /metrics after a run: valid Prometheus text (0.0.4) and values that
 * match what happened: runs by trigger and outcome, recoveries by outcome,
 * ledger rows by state, the Novita latency histogram by endpoint, HTTP
 * requests by route and status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/metrics.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define FAILED 6 /* one of them without an image: 5 recreated, 1 failed */
#define LATENCY_MS 30

#define NAME "[a-zA-Z_:][a-zA-Z0-9_:]*"
#define LABEL "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
#define VALUE "(-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?|[-+]Inf|NaN)"
#define SAMPLE_RE "^(" NAME ")(\\{" LABEL "(," LABEL ")*\\})? " VALUE "$"
#define HELP_RE "^# HELP (" NAME ") [^\n]+$"
#define TYPE_RE "^# TYPE (" NAME ") (counter|gauge|histogram|summary|untyped)$"

#define MAX_FAMILIES 64
struct family {
  char name[128];
  char type[16];
  bool help, sampled, closed;
};

static struct family *family_get(struct family *f, size_t *n, const char *name, bool create)
{
  for (size_t i = 0; i < *n; i++)
    if (!strcmp(f[i].name, name))
      return &f[i];
  if (!create)
    return NULL;
  assert_true(*n < MAX_FAMILIES);
  memset(&f[*n], 0, sizeof(f[*n]));
  snprintf(f[*n].name, sizeof(f[*n].name), "%s", name);
  return &f[(*n)++];
}

static void copy_match(const char *line, const regmatch_t *m, char *out, size_t outlen)
{
  size_t len = (size_t)(m->rm_eo - m->rm_so);
  if (len >= outlen)
    len = outlen - 1;
  memcpy(out, line + m->rm_so, len);
  out[len] = '\0';
}

/* The family a sample belongs to: histogram samples carry a suffix. */
static struct family *family_of_sample(struct family *f, size_t n, const char *name)
{
  size_t nn = n;
  struct family *fam = family_get(f, &nn, name, false);
  static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
  for (size_t i = 0; !fam && i < 3; i++) {
    size_t len = strlen(name), sl = strlen(suffixes[i]);
    if (len > sl && !strcmp(name + len - sl, suffixes[i])) {
      char base[128];
      snprintf(base, sizeof(base), "%.*s", (int)(len - sl), name);
      fam = family_get(f, &nn, base, false);
      if (fam && strcmp(fam->type, "histogram"))
        fam = NULL;
    }
  }
  return fam;
}

/* Every line is a HELP, a TYPE or a sample; HELP and TYPE come once per
 * family and before its samples; a family's samples are one group. */
static void check_exposition(const char *text)
{
  regex_t sample, help, type;
  regmatch_t m[4];
  struct family fams[MAX_FAMILIES];
  size_t nf = 0;
  struct family *current = NULL;
  char *copy = nrd_xstrdup(text);
  char *save = NULL;
  size_t samples = 0;

  assert_int_equal(regcomp(&sample, SAMPLE_RE, REG_EXTENDED), 0);
  assert_int_equal(regcomp(&help, HELP_RE, REG_EXTENDED), 0);
  assert_int_equal(regcomp(&type, TYPE_RE, REG_EXTENDED), 0);
  assert_true(strlen(text) > 0 && text[strlen(text) - 1] == '\n');

  for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char name[128];
    if (!regexec(&help, line, 2, m, 0)) {
      copy_match(line, &m[1], name, sizeof(name));
      struct family *f = family_get(fams, &nf, name, true);
      if (f->help || f->sampled)
        fail_msg("HELP for %s repeated or after its samples", name);
      f->help = true;
    } else if (!regexec(&type, line, 3, m, 0)) {
      copy_match(line, &m[1], name, sizeof(name));
      struct family *f = family_get(fams, &nf, name, true);
      if (f->type[0] || f->sampled)
        fail_msg("TYPE for %s repeated or after its samples", name);
      copy_match(line, &m[2], f->type, sizeof(f->type));
    } else if (!regexec(&sample, line, 2, m, 0)) {
      copy_match(line, &m[1], name, sizeof(name));
      struct family *f = family_of_sample(fams, nf, name);
      if (!f || !f->type[0] || !f->help)
        fail_msg("sample before its HELP and TYPE: %s", line);
      if (f->closed)
        fail_msg("samples of %s are not one group: %s", f->name, line);
      if (current && current != f)
        current->closed = true;
      current = f;
      f->sampled = true;
      samples++;
    } else {
      fail_msg("not Prometheus text: '%s'", line);
    }
  }
  assert_true(samples > 0);
  regfree(&sample);
  regfree(&help);
  regfree(&type);
  free(copy);
}

/* The value of the sample whose name and labels are exactly series; -1 if absent. */
static double value_of(const char *text, const char *series)
{
  size_t n = strlen(series);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (!strncmp(p, series, n) && p[n] == ' ')
      return strtod(p + n + 1, NULL);
  }
  return -1;
}

static char *get_metrics(struct tu_stack *s, char **content_type)
{
  char url[128];
  struct tu_resp r = { 0 };
  snprintf(url, sizeof(url), "%s/metrics", s->base);
  assert_int_equal(tu_http("GET", url, NULL, NULL, &r), 0);
  assert_int_equal(r.status, 200);
  *content_type = tu_header(&r, "Content-Type");
  char *text = nrd_xstrdup(r.body);
  tu_resp_cleanup(&r);
  return text;
}

/* The histogram of one endpoint: buckets cumulative, +Inf equals _count. */
static void check_histogram(const char *text, const char *endpoint, double expect_count,
                            double min_seconds_each)
{
  static const char *const les[] = { "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                                     "1",     "2.5",  "5",     "10",   "30",  "+Inf" };
  char series[160];
  double prev = 0;
  for (size_t i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
    snprintf(series, sizeof(series),
             "nrd_novita_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%s\"}", endpoint,
             les[i]);
    double v = value_of(text, series);
    if (v < prev)
      fail_msg("%s = %g is below the previous bucket %g", series, v, prev);
    /* Every request took at least the simulator's latency. */
    if (strtod(les[i], NULL) < min_seconds_each && strcmp(les[i], "+Inf"))
      assert_true(v == 0);
    prev = v;
  }
  snprintf(series, sizeof(series), "nrd_novita_request_duration_seconds_count{endpoint=\"%s\"}",
           endpoint);
  assert_true(value_of(text, series) == expect_count);
  assert_true(prev == expect_count);
  snprintf(series, sizeof(series), "nrd_novita_request_duration_seconds_sum{endpoint=\"%s\"}",
           endpoint);
  double sum = value_of(text, series);
  if (!(sum >= expect_count * min_seconds_each))
    fail_msg("%s = %g; expected at least %g", series, sum, expect_count * min_seconds_each);
}

static void test_metrics_after_a_run(void **state)
{
  (void)state;
  struct tu_stack s;
  struct nrd_sim_options so = { .api_key = "test-key", .latency_ms = LATENCY_MS };
  long st = 0;
  char *ctype = NULL;

  nrd_metrics_reset();
  tu_stack_init(&s, &so);
  cJSON *sc = tu_failed_fleet(FAILED, 4);
  cJSON_DeleteItemFromObject(cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "instances"), 0),
                             "imageUrl");
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);

  cJSON *ans = tu_stack_check_failed(&s, "{\"immediate\":true}", &st);
  assert_int_equal(st, 200);
  assert_int_equal(tu_result_int(ans, "instancesRecreated"), FAILED - 1);
  assert_int_equal(tu_result_int(ans, "errors"), 1);
  cJSON_Delete(ans);
  cJSON_Delete(tu_stack_request(&s, "GET", "/no/such/route", NULL, &st));
  assert_int_equal(st, 404);
  cJSON_Delete(tu_stack_request(&s, "GET", "/health", NULL, &st));
  assert_int_equal(st, 200);

  /* Requests are counted when they complete, just after the client has its
   * answer: give the server a moment. */
  char *text = NULL;
  int64_t until = nrd_mono_ms() + 3000;
  for (;;) {
    free(ctype);
    free(text);
    text = get_metrics(&s, &ctype);
    if (value_of(text, "nrd_http_requests_total{route=\"health\",status=\"200\"}") == 1 ||
        nrd_mono_ms() > until)
      break;
    nrd_sleep_ms(20);
  }
  assert_non_null(ctype);
  assert_non_null(strstr(ctype, "text/plain"));
  assert_non_null(strstr(ctype, "version=0.0.4"));
  check_exposition(text);

  /* Runs by trigger and outcome. */
  assert_true(value_of(text, "nrd_runs_total{trigger=\"api\",outcome=\"done\"}") == 1);
  assert_true(value_of(text, "nrd_runs_total{trigger=\"api\",outcome=\"failed\"}") <= 0);
  /* Recoveries by outcome. */
  assert_true(value_of(text, "nrd_recoveries_total{action=\"recreated\"}") == FAILED - 1);
  assert_true(value_of(text, "nrd_recoveries_total{action=\"failed\"}") == 1);
  /* Ledger rows by state. */
  assert_true(value_of(text, "nrd_ledger_rows{state=\"created\"}") == FAILED - 1);
  assert_true(value_of(text, "nrd_ledger_rows{state=\"failed\"}") == 1);
  assert_true(value_of(text, "nrd_ledger_rows{state=\"pending\"}") == 0);
  assert_true(value_of(text, "nrd_ledger_rows{state=\"abandoned\"}") == 0);
  /* The Novita latency histogram by endpoint, against the simulator's log. */
  double seconds = LATENCY_MS / 1000.0;
  check_histogram(text, "create", (double)nrd_sim_count(s.sim, "POST", "/gpu/instance/create"),
                  seconds);
  check_histogram(text, "delete", (double)nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"),
                  seconds);
  check_histogram(text, "list_instances", (double)nrd_sim_count(s.sim, "GET", "/gpu/instances"),
                  seconds);
  check_histogram(text, "list_jobs", (double)nrd_sim_count(s.sim, "GET", "/v1/jobs"), seconds);
  assert_true(value_of(text, "nrd_novita_request_duration_seconds_count{endpoint=\"create\"}") ==
              FAILED - 1);
  assert_true(value_of(text, "nrd_novita_requests_total{endpoint=\"create\",class=\"2xx\"}") ==
              FAILED - 1);
  /* HTTP requests by route and status. */
  assert_true(value_of(text, "nrd_http_requests_total{route=\"check_failed\",status=\"200\"}") ==
              1);
  assert_true(value_of(text, "nrd_http_requests_total{route=\"unmatched\",status=\"404\"}") == 1);
  assert_true(value_of(text, "nrd_http_requests_total{route=\"health\",status=\"200\"}") == 1);
  assert_true(value_of(text, "nrd_metrics_dropped_total") == 0);
  /* The run's end and duration; the latency of each route (a route not yet
   * asked is there at 0); the scheduler; the brakes at 0. */
  double now = (double)nrd_now_ms() / 1000.0;
  double last_ok = value_of(text, "nrd_last_successful_run_timestamp_seconds");
  assert_true(last_ok > now - 600 && last_ok <= now);
  assert_true(value_of(text, "nrd_last_run_timestamp_seconds{outcome=\"done\"}") == last_ok);
  assert_true(value_of(text, "nrd_last_run_timestamp_seconds{outcome=\"failed\"}") == 0);
  assert_true(value_of(text, "nrd_run_duration_seconds_count") == 1);
  assert_true(value_of(text, "nrd_run_duration_seconds_sum") > 0);
  assert_true(value_of(text, "nrd_http_request_duration_seconds_count{route=\"check_failed\"}") ==
              1);
  assert_true(
      value_of(text,
               "nrd_http_request_duration_seconds_bucket{route=\"check_failed\",le=\"+Inf\"}") ==
      1);
  assert_true(value_of(text, "nrd_http_request_duration_seconds_count{route=\"ready\"}") == 0);
  assert_true(value_of(text, "nrd_scheduler_paused") == 0);
  assert_true(value_of(text, "nrd_ready") == 1);
  assert_true(value_of(text, "nrd_brake_held_rows{brake=\"account\"}") == 0);
  assert_true(value_of(text, "nrd_webhook_events_total{result=\"dead\"}") == 0);
  assert_true(value_of(text, "process_resident_memory_bytes") > 0);

  free(ctype);
  free(text);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_metrics_after_a_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
