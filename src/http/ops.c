/* Operations endpoints, open without a token: /health (liveness), /ready
 * (the database is sound and can be written), /metrics (Prometheus text). */

#include <stdint.h>
#include <string.h>

#include "http_internal.h"
#include "nrd/metrics.h"
#include "nrd/run.h"
#include "nrd/scheduler.h"
#include "nrd/util.h"

/* The body is built without printf: snprintf was two thirds of the
 * handler's cost, and liveness probes call it often. */
enum http_handler_rc http_h_health(struct http_ctx *c, struct http_reply *out)
{
  static const char head[] =
      "{\"status\":\"ok\",\"version\":\"" NRD_VERSION "\",\"uptimeSeconds\":";
  char digits[24];
  char *p = digits + sizeof digits;
  uint64_t up = (uint64_t)http_uptime_seconds(c); /* a monotonic difference: never negative */

  do {
    *--p = (char)('0' + up % 10);
    up /= 10;
  } while (up);
  size_t nd = (size_t)(digits + sizeof digits - p);
  char *body = nrd_xmalloc(sizeof head - 1 + nd + 2);
  memcpy(body, head, sizeof head - 1);
  memcpy(body + sizeof head - 1, p, nd);
  memcpy(body + sizeof head - 1 + nd, "}", 2);
  http_reply_json(out, 200, body);
  return HTTP_REPLY;
}

enum http_handler_rc http_h_ready(struct http_ctx *c, struct http_reply *out)
{
  if (nrd_runner_store_ok(http_runner(c)))
    http_reply_json(out, 200, nrd_xstrdup("{\"status\":\"ready\"}"));
  else
    http_error(out, HTTP_E_NOT_READY, NULL, NULL);
  return HTTP_REPLY;
}

enum http_handler_rc http_h_metrics(struct http_ctx *c, struct http_reply *out)
{
  int64_t counts[NRD_ROW_STATE_COUNT];
  struct nrd_buf b;

  nrd_buf_init(&b);
  nrd_metrics_render(&b);
  if (nrd_runner_count_states(http_runner(c), counts) == NRD_OK) {
    nrd_buf_puts(&b, "# HELP nrd_ledger_rows Recovery ledger rows by state.\n"
                     "# TYPE nrd_ledger_rows gauge\n");
    for (int s = 0; s < NRD_ROW_STATE_COUNT; s++)
      nrd_buf_printf(&b, "nrd_ledger_rows{state=\"%s\"} %lld\n",
                     nrd_row_state_name((enum nrd_row_state)s), (long long)counts[s]);
  }
  nrd_buf_puts(&b, "# HELP nrd_ready 1 when /ready answers 200 (the database is sound and"
                   " can be written).\n"
                   "# TYPE nrd_ready gauge\n");
  nrd_buf_printf(&b, "nrd_ready %d\n", nrd_runner_store_ok(http_runner(c)) ? 1 : 0);
  struct nrd_scheduler *sched = http_scheduler(c);
  nrd_buf_puts(&b, "# HELP nrd_scheduler_paused 1 while the scheduler is paused (no run starts).\n"
                   "# TYPE nrd_scheduler_paused gauge\n");
  nrd_buf_printf(&b, "nrd_scheduler_paused %d\n", sched && nrd_scheduler_paused(sched) ? 1 : 0);
  nrd_buf_puts(&b, "# HELP nrd_scheduler_interval_seconds The scheduler's period (0 = off).\n"
                   "# TYPE nrd_scheduler_interval_seconds gauge\n");
  nrd_buf_printf(&b, "nrd_scheduler_interval_seconds %u\n",
                 sched ? http_cfg(c)->migration_interval_minutes * 60u : 0u);
  http_reply_json(out, 200, nrd_buf_steal(&b));
  out->content_type = "text/plain; version=0.0.4";
  return HTTP_REPLY;
}
