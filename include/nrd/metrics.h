#ifndef NRD_METRICS_H
#define NRD_METRICS_H

#include "nrd/util.h"

/* Process-wide metrics, rendered as Prometheus text. Thread-safe. Names and
 * label values passed in must be static strings (they are kept, not copied). */

enum nrd_endpoint {
  NRD_EP_LIST_INSTANCES = 0,
  NRD_EP_LIST_JOBS,
  NRD_EP_DELETE,
  NRD_EP_CREATE,
  NRD_EP_PRODUCTS,
  NRD_EP_CLUSTERS,
  NRD_EP_GET_INSTANCE,
  NRD_EP_COUNT
};
const char *nrd_endpoint_name(enum nrd_endpoint ep); /* "list_instances", ... */

/* One Novita request attempt: status 0 for a network error/timeout. */
void nrd_metrics_novita_request(enum nrd_endpoint ep, int http_status, double seconds);
void nrd_metrics_novita_retry(enum nrd_endpoint ep);
void nrd_metrics_circuit_set(int open); /* 0 closed, 1 open, 2 half-open */
/* One HTTP request served: its route label, status and time to the answer. */
void nrd_metrics_http_request(const char *route, unsigned status, double seconds);
/* Makes route's duration histogram appear (at 0) before its first request. */
void nrd_metrics_http_route(const char *route);
void nrd_metrics_run(const char *trigger, const char *outcome); /* outcome: done|failed */
/* A finished run: its outcome (done|failed), when it ended (Unix ms) and how
 * long it took (ms). Feeds the last-run timestamps and the duration histogram. */
void nrd_metrics_run_timing(const char *outcome, int64_t finished_ms, int64_t duration_ms);
/* Rows a brake held in the last run ("account" or "capacity"; both are
 * rendered from start at 0). */
void nrd_metrics_brake_held(const char *brake, long rows);
void nrd_metrics_recovery(
    const char *
        action); /* recreated|adopted|failed|abandoned|deferred|planned|skipped|running|start_failed */
/* A replacement seen running, ms after its create was accepted. */
void nrd_metrics_replacement_started(int64_t ms);
void nrd_metrics_webhook(const char *result);
/* A failed migration job whose instance was in a status not in
 * RECOVER_STATUSES (Novita's documented statuses; any other as "other"). */
void nrd_metrics_failed_job_unhandled(const char *status); /* delivered|retried|dead */

/* Appends all metrics to out as Prometheus text (version 0.0.4): ours, the
 * build info and the standard process_* metrics. Every labelled series whose
 * label values are known in advance is present from start, at 0. Gauges read
 * elsewhere (ledger rows by state, the scheduler) are appended to the same
 * buffer by the caller afterwards. */
void nrd_metrics_render(struct nrd_buf *out);

/* Appends the standard process_* metrics (start time, CPU seconds, resident
 * and virtual memory, open and max fds) read from /proc; nrd_metrics_render
 * calls it. */
void nrd_metrics_render_process(struct nrd_buf *out);

/* For tests. */
void nrd_metrics_reset(void);

/* The watch loop (watch_metrics.c): a tick's result (ok|skipped|failed), the
 * seconds from a failed job's createdAt to its detection, to its
 * replacement's create accepted and to the replacement seen running.
 * Rendered by nrd_metrics_render. */
void nrd_metrics_watch_tick(const char *result);
void nrd_metrics_watch_detected(double seconds);
/* The stages of nrd_time_to_recovery_seconds. */
enum nrd_ttr_stage { NRD_TTR_CREATE_ACCEPTED, NRD_TTR_RUNNING };
void nrd_metrics_time_to_recovery(enum nrd_ttr_stage stage, double seconds);
/* The token bucket's current rate (0: unlimited), set by the Novita client. */
void nrd_metrics_novita_rate(double rps);
void nrd_metrics_render_watch(struct nrd_buf *out);
void nrd_metrics_reset_watch(void);
double nrd_metrics_novita_requests_total(enum nrd_endpoint ep);

#endif
