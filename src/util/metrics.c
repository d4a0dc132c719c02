/* Process-wide metrics rendered as Prometheus text.
 *
 * Enum-indexed series (Novita endpoints) are C11 atomics: the hot path takes
 * no lock. Series labelled by caller strings (routes, triggers, actions) live
 * in small fixed tables under one mutex; their label values are static strings
 * from the callers, so the table keeps the pointers. */

#include "nrd/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "nrd/util.h"

#ifndef NRD_COMMIT
#define NRD_COMMIT "unknown"
#endif

enum status_class {
  CLASS_2XX = 0,
  CLASS_3XX,
  CLASS_4XX,
  CLASS_5XX,
  CLASS_OTHER,
  CLASS_NETWORK,
  CLASS_COUNT
};

static const char *const class_names[CLASS_COUNT] = {
  "2xx", "3xx", "4xx", "5xx", "other", "network",
};

static const char *const endpoint_names[NRD_EP_COUNT] = {
  "list_instances", "list_jobs", "delete", "create", "products", "clusters", "get_instance",
};

static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };
#define N_BUCKETS (sizeof buckets / sizeof buckets[0])

static atomic_uint_fast64_t novita_requests[NRD_EP_COUNT][CLASS_COUNT];
static atomic_uint_fast64_t novita_retries[NRD_EP_COUNT];
/* Per-bucket (not cumulative) counts; the last slot is above the largest bound. */
static atomic_uint_fast64_t latency_bucket[NRD_EP_COUNT][N_BUCKETS + 1];
static atomic_uint_fast64_t latency_sum_us[NRD_EP_COUNT];
static atomic_int circuit_state;

/* A labelled counter: up to two string labels and an optional status code. */
struct labelled {
  const char *a, *b;
  unsigned status;
  uint64_t count;
};

#define TABLE_CAP 256
struct table {
  struct labelled rows[TABLE_CAP];
  size_t n;
  uint64_t dropped; /* increments that found the table full */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct table http_requests, runs, recoveries, webhooks, unhandled;

/* Label values known in advance: their series are rendered from start at 0,
 * so a rate() or an alert sees a series before its first event. */
static const char *const known_triggers[] = { "api", "scheduler", "cli", "watch" };
static const char *const known_outcomes[] = { "done", "failed" };
static const char *const known_actions[] = { "recreated", "adopted", "planned",
                                             "deferred",  "failed",  "abandoned",
                                             "skipped",   "running", "start_failed" };
static const char *const known_webhook_results[] = { "delivered", "retried", "dead" };
/* Novita's documented instance statuses; any other is counted as "other". */
static const char *const known_statuses[] = { "toCreate",  "creating",  "pulling",    "running",
                                              "toStart",   "starting",  "toStop",     "stopping",
                                              "exited",    "toRestart", "restarting", "toRemove",
                                              "removing",  "removed",   "toReset",    "resetting",
                                              "migrating", "freezing",  "other" };
#define N_STATUSES (sizeof known_statuses / sizeof known_statuses[0])
static const char *const brake_names[] = { "account", "capacity" };
#define N_OUTCOMES (sizeof known_outcomes / sizeof known_outcomes[0])
#define N_BRAKES (sizeof brake_names / sizeof brake_names[0])

/* HTTP request latency by route: from a fast probe to an immediate run. */
static const double http_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,  0.5,    1,     2.5,  10,    60,   300 };
#define N_HTTP_BUCKETS (sizeof http_buckets / sizeof http_buckets[0])
struct route_hist {
  const char *route;
  uint64_t bucket[N_HTTP_BUCKETS + 1]; /* per bucket, not cumulative */
  double sum;
};
#define ROUTE_CAP 64
static struct route_hist route_hists[ROUTE_CAP];
static size_t n_route_hists;
static uint64_t route_hists_dropped;

/* Run duration, seconds: a sync of a few pages up to RUN_DEADLINE_SECONDS. */
static const double run_buckets[] = { 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800 };
#define N_RUN_BUCKETS (sizeof run_buckets / sizeof run_buckets[0])
static uint64_t run_bucket[N_RUN_BUCKETS + 1];
static double run_sum;
static double last_run_at[N_OUTCOMES]; /* Unix seconds; 0 = never */
/* Create accepted -> replacement running, seconds: an image pull takes from
 * seconds to RECOVERY_START_TIMEOUT_SECONDS. */
static const double start_buckets[] = { 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600 };
#define N_START_BUCKETS (sizeof start_buckets / sizeof start_buckets[0])
static uint64_t start_bucket[N_START_BUCKETS + 1];
static double start_sum;
static atomic_long brake_rows[N_BRAKES];

static void seed_locked(void)
{
  for (size_t t = 0; t < sizeof known_triggers / sizeof known_triggers[0]; t++)
    for (size_t o = 0; o < N_OUTCOMES; o++)
      runs.rows[runs.n++] = (struct labelled){ .a = known_triggers[t], .b = known_outcomes[o] };
  for (size_t i = 0; i < sizeof known_actions / sizeof known_actions[0]; i++)
    recoveries.rows[recoveries.n++] = (struct labelled){ .a = known_actions[i] };
  for (size_t i = 0; i < sizeof known_webhook_results / sizeof known_webhook_results[0]; i++)
    webhooks.rows[webhooks.n++] = (struct labelled){ .a = known_webhook_results[i] };
  for (size_t i = 0; i < N_STATUSES; i++)
    unhandled.rows[unhandled.n++] = (struct labelled){ .a = known_statuses[i] };
}

static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_first(void)
{
  pthread_mutex_lock(&table_lock);
  seed_locked();
  pthread_mutex_unlock(&table_lock);
}

/* Takes table_lock, seeding the tables on first use. */
static void lock_tables(void)
{
  pthread_once(&seed_once, seed_first);
  pthread_mutex_lock(&table_lock);
}

const char *nrd_endpoint_name(enum nrd_endpoint ep)
{
  return NRD_ENUM_NAME(endpoint_names, ep);
}

static enum status_class classify(int status)
{
  if (status == 0)
    return CLASS_NETWORK;
  if (status >= 200 && status < 300)
    return CLASS_2XX;
  if (status >= 300 && status < 400)
    return CLASS_3XX;
  if (status >= 400 && status < 500)
    return CLASS_4XX;
  if (status >= 500 && status < 600)
    return CLASS_5XX;
  return CLASS_OTHER;
}

void nrd_metrics_novita_request(enum nrd_endpoint ep, int http_status, double seconds)
{
  if ((unsigned)ep >= NRD_EP_COUNT)
    return;
  atomic_fetch_add(&novita_requests[ep][classify(http_status)], 1);
  if (!(seconds >= 0))
    seconds = 0; /* also catches NaN */
  size_t i = 0;
  while (i < N_BUCKETS && seconds > buckets[i])
    i++;
  atomic_fetch_add(&latency_bucket[ep][i], 1);
  double us = seconds * 1e6;
  atomic_fetch_add(&latency_sum_us[ep], us < 1e15 ? (uint_fast64_t)us : (uint_fast64_t)1e15);
}

void nrd_metrics_novita_retry(enum nrd_endpoint ep)
{
  if ((unsigned)ep < NRD_EP_COUNT)
    atomic_fetch_add(&novita_retries[ep], 1);
}

void nrd_metrics_circuit_set(int open)
{
  atomic_store(&circuit_state, open);
}

static bool same(const char *x, const char *y)
{
  if (!x || !y)
    return x == y;
  return x == y || strcmp(x, y) == 0;
}

static void table_inc(struct table *t, const char *a, const char *b, unsigned status)
{
  lock_tables();
  size_t i = 0;
  while (i < t->n &&
         !(same(t->rows[i].a, a) && same(t->rows[i].b, b) && t->rows[i].status == status))
    i++;
  if (i == t->n) {
    if (t->n == TABLE_CAP) {
      t->dropped++;
      goto out;
    }
    t->rows[i] = (struct labelled){ .a = a, .b = b, .status = status, .count = 0 };
    t->n++;
  }
  t->rows[i].count++;
out:
  pthread_mutex_unlock(&table_lock);
}

/* The histogram of route, added when new; NULL when the table is full.
 * Called with table_lock held. */
static struct route_hist *route_hist_locked(const char *route)
{
  for (size_t i = 0; i < n_route_hists; i++)
    if (same(route_hists[i].route, route))
      return &route_hists[i];
  if (n_route_hists == ROUTE_CAP)
    return NULL;
  struct route_hist *h = &route_hists[n_route_hists++];
  memset(h, 0, sizeof *h);
  h->route = route;
  return h;
}

static size_t bucket_index(const double *bounds, size_t n, double v)
{
  size_t i = 0;
  while (i < n && v > bounds[i])
    i++;
  return i;
}

void nrd_metrics_http_request(const char *route, unsigned status, double seconds)
{
  route = route ? route : "unmatched";
  if (!(seconds >= 0))
    seconds = 0; /* also catches NaN */
  table_inc(&http_requests, route, NULL, status);
  lock_tables();
  struct route_hist *h = route_hist_locked(route);
  if (h) {
    h->bucket[bucket_index(http_buckets, N_HTTP_BUCKETS, seconds)]++;
    h->sum += seconds;
  } else {
    route_hists_dropped++;
  }
  pthread_mutex_unlock(&table_lock);
}

void nrd_metrics_http_route(const char *route)
{
  lock_tables();
  if (!route_hist_locked(route ? route : "unmatched"))
    route_hists_dropped++;
  pthread_mutex_unlock(&table_lock);
}

void nrd_metrics_run_timing(const char *outcome, int64_t finished_ms, int64_t duration_ms)
{
  double seconds = duration_ms > 0 ? (double)duration_ms / 1000.0 : 0;
  lock_tables();
  for (size_t o = 0; o < N_OUTCOMES; o++)
    if (same(outcome, known_outcomes[o]))
      last_run_at[o] = (double)finished_ms / 1000.0;
  run_bucket[bucket_index(run_buckets, N_RUN_BUCKETS, seconds)]++;
  run_sum += seconds;
  pthread_mutex_unlock(&table_lock);
}

void nrd_metrics_replacement_started(int64_t ms)
{
  double seconds = ms > 0 ? (double)ms / 1000.0 : 0;
  lock_tables();
  start_bucket[bucket_index(start_buckets, N_START_BUCKETS, seconds)]++;
  start_sum += seconds;
  pthread_mutex_unlock(&table_lock);
}

void nrd_metrics_brake_held(const char *brake, long rows)
{
  for (size_t i = 0; i < N_BRAKES; i++)
    if (same(brake, brake_names[i]))
      atomic_store(&brake_rows[i], rows);
}

void nrd_metrics_run(const char *trigger, const char *outcome)
{
  table_inc(&runs, trigger ? trigger : "unknown", outcome ? outcome : "unknown", 0);
}

void nrd_metrics_recovery(const char *action)
{
  table_inc(&recoveries, action ? action : "unknown", NULL, 0);
}

void nrd_metrics_failed_job_unhandled(const char *status)
{
  const char *label = known_statuses[N_STATUSES - 1];
  for (size_t i = 0; status && i + 1 < N_STATUSES; i++)
    if (same(status, known_statuses[i]))
      label = known_statuses[i];
  table_inc(&unhandled, label, NULL, 0);
}

void nrd_metrics_webhook(const char *result)
{
  table_inc(&webhooks, result ? result : "unknown", NULL, 0);
}

/* ---- rendering ---- */

static void header(struct nrd_buf *out, const char *name, const char *type, const char *help)
{
  nrd_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with Prometheus escapes for backslash, quote and newline. */
static void label_value(struct nrd_buf *out, const char *s)
{
  for (; *s; s++) {
    if (*s == '\\')
      nrd_buf_puts(out, "\\\\");
    else if (*s == '"')
      nrd_buf_puts(out, "\\\"");
    else if (*s == '\n')
      nrd_buf_puts(out, "\\n");
    else
      nrd_buf_append(out, s, 1);
  }
}

static void label(struct nrd_buf *out, const char *sep, const char *name, const char *value)
{
  nrd_buf_printf(out, "%s%s=\"", sep, name);
  label_value(out, value);
  nrd_buf_puts(out, "\"");
}

static void render_novita(struct nrd_buf *out)
{
  header(out, "nrd_novita_requests_total", "counter",
         "Novita API request attempts by endpoint and status class.");
  for (int ep = 0; ep < NRD_EP_COUNT; ep++) {
    for (int c = 0; c < CLASS_COUNT; c++) {
      nrd_buf_printf(out, "nrd_novita_requests_total{endpoint=\"%s\",class=\"%s\"} %llu\n",
                     endpoint_names[ep], class_names[c],
                     (unsigned long long)atomic_load(&novita_requests[ep][c]));
    }
  }

  header(out, "nrd_novita_request_duration_seconds", "histogram",
         "Novita API request attempt latency by endpoint.");
  for (int ep = 0; ep < NRD_EP_COUNT; ep++) {
    unsigned long long cumulative = 0;
    for (size_t i = 0; i <= N_BUCKETS; i++) {
      cumulative += (unsigned long long)atomic_load(&latency_bucket[ep][i]);
      if (i < N_BUCKETS)
        nrd_buf_printf(
            out, "nrd_novita_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
            endpoint_names[ep], buckets[i], cumulative);
      else
        nrd_buf_printf(
            out, "nrd_novita_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
            endpoint_names[ep], cumulative);
    }
    nrd_buf_printf(out, "nrd_novita_request_duration_seconds_sum{endpoint=\"%s\"} %.6f\n",
                   endpoint_names[ep], (double)atomic_load(&latency_sum_us[ep]) / 1e6);
    nrd_buf_printf(out, "nrd_novita_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                   endpoint_names[ep], cumulative);
  }

  header(out, "nrd_novita_retries_total", "counter", "Novita API retries by endpoint.");
  for (int ep = 0; ep < NRD_EP_COUNT; ep++)
    nrd_buf_printf(out, "nrd_novita_retries_total{endpoint=\"%s\"} %llu\n", endpoint_names[ep],
                   (unsigned long long)atomic_load(&novita_retries[ep]));

  header(out, "nrd_novita_circuit_state", "gauge",
         "Novita circuit breaker: 0 closed, 1 open, 2 half-open.");
  nrd_buf_printf(out, "nrd_novita_circuit_state %d\n", atomic_load(&circuit_state));
}

/* Renders one table; la/lb name the string labels (lb may be NULL), with_status
 * adds a "status" label. Called with table_lock held. */
static void render_table(struct nrd_buf *out, const struct table *t, const char *name,
                         const char *help, const char *la, const char *lb, bool with_status)
{
  header(out, name, "counter", help);
  for (size_t i = 0; i < t->n; i++) {
    const struct labelled *r = &t->rows[i];
    nrd_buf_puts(out, name);
    label(out, "{", la, r->a);
    if (lb)
      label(out, ",", lb, r->b);
    if (with_status)
      nrd_buf_printf(out, ",status=\"%u\"", r->status);
    nrd_buf_printf(out, "} %llu\n", (unsigned long long)r->count);
  }
}

/* One histogram series: per-bucket counts made cumulative. lname/lvalue name
 * its one label (NULL for none). */
static void render_histogram(struct nrd_buf *out, const char *name, const char *lname,
                             const char *lvalue, const double *bounds, size_t n,
                             const uint64_t *per_bucket, double sum)
{
  unsigned long long cumulative = 0;
  for (size_t i = 0; i <= n; i++) {
    cumulative += (unsigned long long)per_bucket[i];
    nrd_buf_printf(out, "%s_bucket{", name);
    if (lname) {
      label(out, "", lname, lvalue);
      nrd_buf_puts(out, ",");
    }
    if (i < n)
      nrd_buf_printf(out, "le=\"%g\"} %llu\n", bounds[i], cumulative);
    else
      nrd_buf_printf(out, "le=\"+Inf\"} %llu\n", cumulative);
  }
  const char *suffix[] = { "_sum", "_count" };
  for (int k = 0; k < 2; k++) {
    nrd_buf_printf(out, "%s%s", name, suffix[k]);
    if (lname) {
      label(out, "{", lname, lvalue);
      nrd_buf_puts(out, "}");
    }
    if (k == 0)
      nrd_buf_printf(out, " %.6f\n", sum);
    else
      nrd_buf_printf(out, " %llu\n", cumulative);
  }
}

static void render_build_and_brakes(struct nrd_buf *out)
{
  header(out, "nrd_build_info", "gauge", "The running build: version and commit (value 1).");
  nrd_buf_puts(out, "nrd_build_info");
  label(out, "{", "version", NRD_VERSION);
  label(out, ",", "commit", NRD_COMMIT);
  nrd_buf_puts(out, "} 1\n");
  header(out, "nrd_brake_held_rows", "gauge",
         "Rows a brake held (deferred, nothing deleted) in the last run.");
  for (size_t i = 0; i < N_BRAKES; i++)
    nrd_buf_printf(out, "nrd_brake_held_rows{brake=\"%s\"} %ld\n", brake_names[i],
                   atomic_load(&brake_rows[i]));
}

/* Called with table_lock held. */
static void render_timings_locked(struct nrd_buf *out)
{
  header(out, "nrd_http_request_duration_seconds", "histogram",
         "Time from a request to its answer, by route.");
  for (size_t i = 0; i < n_route_hists; i++)
    render_histogram(out, "nrd_http_request_duration_seconds", "route", route_hists[i].route,
                     http_buckets, N_HTTP_BUCKETS, route_hists[i].bucket, route_hists[i].sum);
  header(out, "nrd_run_duration_seconds", "histogram", "Check-failed run duration.");
  render_histogram(out, "nrd_run_duration_seconds", NULL, NULL, run_buckets, N_RUN_BUCKETS,
                   run_bucket, run_sum);
  header(out, "nrd_replacement_start_seconds", "histogram",
         "Time from an accepted create to the replacement running.");
  render_histogram(out, "nrd_replacement_start_seconds", NULL, NULL, start_buckets, N_START_BUCKETS,
                   start_bucket, start_sum);
  header(out, "nrd_last_run_timestamp_seconds", "gauge",
         "When the last run of each outcome ended, Unix seconds (0 = none yet).");
  for (size_t o = 0; o < N_OUTCOMES; o++)
    nrd_buf_printf(out, "nrd_last_run_timestamp_seconds{outcome=\"%s\"} %.3f\n", known_outcomes[o],
                   last_run_at[o]);
  header(out, "nrd_last_successful_run_timestamp_seconds", "gauge",
         "When the last run that completed ended, Unix seconds (0 = none yet).");
  nrd_buf_printf(out, "nrd_last_successful_run_timestamp_seconds %.3f\n", last_run_at[0]);
}

void nrd_metrics_render(struct nrd_buf *out)
{
  render_build_and_brakes(out);
  render_novita(out);
  lock_tables();
  render_timings_locked(out);
  render_table(out, &http_requests, "nrd_http_requests_total",
               "HTTP requests served by route and status code.", "route", NULL, true);
  render_table(out, &runs, "nrd_runs_total", "Check-failed runs by trigger and outcome.", "trigger",
               "outcome", false);
  render_table(out, &recoveries, "nrd_recoveries_total", "Recovery outcomes by action.", "action",
               NULL, false);
  render_table(out, &webhooks, "nrd_webhook_events_total", "Webhook deliveries by result.",
               "result", NULL, false);
  render_table(out, &unhandled, "nrd_failed_jobs_unhandled_total",
               "Failed migration jobs whose instance was in a status not recovered, by status.",
               "status", NULL, false);
  header(out, "nrd_metrics_dropped_total", "counter",
         "Increments lost because a label table was full (a bug if not 0).");
  nrd_buf_printf(out, "nrd_metrics_dropped_total %llu\n",
                 (unsigned long long)(http_requests.dropped + runs.dropped + recoveries.dropped +
                                      webhooks.dropped + unhandled.dropped + route_hists_dropped));
  pthread_mutex_unlock(&table_lock);
  nrd_metrics_render_watch(out);
  nrd_metrics_render_process(out);
}

void nrd_metrics_reset(void)
{
  for (int ep = 0; ep < NRD_EP_COUNT; ep++) {
    for (int c = 0; c < CLASS_COUNT; c++)
      atomic_store(&novita_requests[ep][c], 0);
    for (size_t i = 0; i <= N_BUCKETS; i++)
      atomic_store(&latency_bucket[ep][i], 0);
    atomic_store(&latency_sum_us[ep], 0);
    atomic_store(&novita_retries[ep], 0);
  }
  atomic_store(&circuit_state, 0);
  nrd_metrics_reset_watch();
  for (size_t i = 0; i < N_BRAKES; i++)
    atomic_store(&brake_rows[i], 0);
  lock_tables();
  struct table *tables[] = { &http_requests, &runs, &recoveries, &webhooks, &unhandled };
  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    tables[i]->n = 0;
    tables[i]->dropped = 0;
  }
  seed_locked();
  for (size_t i = 0; i < n_route_hists; i++) { /* declared routes stay, at 0 */
    memset(route_hists[i].bucket, 0, sizeof route_hists[i].bucket);
    route_hists[i].sum = 0;
  }
  route_hists_dropped = 0;
  memset(run_bucket, 0, sizeof run_bucket);
  memset(start_bucket, 0, sizeof start_bucket);
  start_sum = 0;
  run_sum = 0;
  memset(last_run_at, 0, sizeof last_run_at);
  pthread_mutex_unlock(&table_lock);
}

double nrd_metrics_novita_requests_total(enum nrd_endpoint ep)
{
  if ((unsigned)ep >= NRD_EP_COUNT)
    return 0;
  uint64_t total = 0;
  for (int c = 0; c < CLASS_COUNT; c++)
    total += atomic_load(&novita_requests[ep][c]);
  return (double)total;
}
