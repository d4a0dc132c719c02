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
  NRD_EP_COUNT
};
const char *nrd_endpoint_name(enum nrd_endpoint ep);  /* "list_instances", ... */

/* One Novita request attempt: status 0 for a network error/timeout. */
void nrd_metrics_novita_request(enum nrd_endpoint ep, int http_status, double seconds);
void nrd_metrics_novita_retry(enum nrd_endpoint ep);
void nrd_metrics_circuit_set(int open);               /* 0 closed, 1 open, 2 half-open */
void nrd_metrics_http_request(const char *route, unsigned status);
void nrd_metrics_run(const char *trigger, const char *outcome);   /* outcome: done|failed */
void nrd_metrics_recovery(const char *action);       /* recreated|adopted|failed|abandoned|deferred|planned|skipped */
void nrd_metrics_webhook(const char *result);        /* delivered|retried|dead */
/* Rows a brake held in the last run: brake "account" or "capacity" (a gauge,
 * both label values rendered from the start, at 0). */
void nrd_metrics_brake_held(const char *brake, long rows);

/* Appends all metrics to out as Prometheus text (version 0.0.4). Gauges read
 * elsewhere (ledger rows by state) are appended to the same buffer by the
 * caller afterwards. */
void nrd_metrics_render(struct nrd_buf *out);

/* For tests. */
void nrd_metrics_reset(void);
double nrd_metrics_novita_requests_total(enum nrd_endpoint ep);

#endif
