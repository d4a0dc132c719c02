/* Issue 15's metrics: the watch loop's ticks by result, its
 * failure-to-detection and failure-to-recovery histograms, and the token
 * bucket's current rate. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "nrd/metrics.h"

static const char *const tick_results[] = { "ok", "skipped", "failed" };
#define N_RESULTS (sizeof tick_results / sizeof tick_results[0])
static atomic_uint_fast64_t ticks[N_RESULTS];

/* Seconds from a job's failure to its detection, to a create accepted and to
 * the replacement running:
 * one tick (seconds) up to the 15-minute timer and beyond. */
static const double bounds[] = { 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 900, 1800, 3600 };
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])
struct hist {
  uint64_t bucket[N_BOUNDS + 1]; /* per bucket, not cumulative */
  double sum;
};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct hist detect, recovery[2]; /* by enum nrd_ttr_stage */
static double novita_rate;              /* under lock */

void nrd_metrics_novita_rate(double rps)
{
  pthread_mutex_lock(&lock);
  novita_rate = rps;
  pthread_mutex_unlock(&lock);
}

void nrd_metrics_watch_tick(const char *result)
{
  for (size_t i = 0; i < N_RESULTS; i++)
    if (strcmp(result, tick_results[i]) == 0)
      atomic_fetch_add(&ticks[i], 1);
}

static void observe(struct hist *h, double seconds)
{
  size_t i = 0;
  if (seconds < 0)
    seconds = 0;
  while (i < N_BOUNDS && seconds > bounds[i])
    i++;
  pthread_mutex_lock(&lock);
  h->bucket[i]++;
  h->sum += seconds;
  pthread_mutex_unlock(&lock);
}

void nrd_metrics_watch_detected(double seconds)
{
  observe(&detect, seconds);
}

void nrd_metrics_time_to_recovery(enum nrd_ttr_stage stage, double seconds)
{
  observe(&recovery[stage == NRD_TTR_RUNNING], seconds);
}

/* One histogram; label ("" for none) is `name="value"`. */
static void render_hist(struct nrd_buf *out, const char *name, const char *help, const char *label,
                        const struct hist *h)
{
  unsigned long long cumulative = 0;
  const char *sep = *label ? "," : "";
  if (help) /* NULL: the next series of a histogram already described */
    nrd_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  for (size_t i = 0; i <= N_BOUNDS; i++) {
    cumulative += (unsigned long long)h->bucket[i];
    if (i < N_BOUNDS)
      nrd_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, label, sep, bounds[i],
                     cumulative);
    else
      nrd_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, label, sep, cumulative);
  }
  if (*label)
    nrd_buf_printf(out, "%s_sum{%s} %.3f\n%s_count{%s} %llu\n", name, label, h->sum, name, label,
                   cumulative);
  else
    nrd_buf_printf(out, "%s_sum %.3f\n%s_count %llu\n", name, h->sum, name, cumulative);
}

void nrd_metrics_render_watch(struct nrd_buf *out)
{
  nrd_buf_puts(out, "# HELP nrd_watch_ticks_total Watch loop ticks by result (skipped: a run "
                    "was active or the scheduler paused).\n"
                    "# TYPE nrd_watch_ticks_total counter\n");
  for (size_t i = 0; i < N_RESULTS; i++)
    nrd_buf_printf(out, "nrd_watch_ticks_total{result=\"%s\"} %llu\n", tick_results[i],
                   (unsigned long long)atomic_load(&ticks[i]));
  pthread_mutex_lock(&lock);
  render_hist(out, "nrd_watch_detect_seconds",
              "From a failed migration job's createdAt to the watch seeing it fail.", "", &detect);
  render_hist(out, "nrd_time_to_recovery_seconds",
              "From a watched failed job's createdAt to its replacement, by stage "
              "(create_accepted, running).",
              "stage=\"create_accepted\"", &recovery[NRD_TTR_CREATE_ACCEPTED]);
  render_hist(out, "nrd_time_to_recovery_seconds", NULL, "stage=\"running\"",
              &recovery[NRD_TTR_RUNNING]);
  nrd_buf_printf(out,
                 "# HELP nrd_novita_rate_limit_rps The token bucket's current rate to "
                 "Novita, requests a second (0 = unlimited); adaptive unless "
                 "NOVITA_RATE_LIMIT_ADAPTIVE=false.\n"
                 "# TYPE nrd_novita_rate_limit_rps gauge\n"
                 "nrd_novita_rate_limit_rps %.3f\n",
                 novita_rate);
  pthread_mutex_unlock(&lock);
}

void nrd_metrics_reset_watch(void)
{
  for (size_t i = 0; i < N_RESULTS; i++)
    atomic_store(&ticks[i], 0);
  pthread_mutex_lock(&lock);
  memset(&detect, 0, sizeof detect);
  memset(&recovery, 0, sizeof recovery);
  pthread_mutex_unlock(&lock);
}
