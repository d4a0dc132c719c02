/* The operator console's read-only views: recent runs, an overview of the
 * ledger, breaker and outbox, finished recoveries per hour. Each takes the
 * runner's query connection under its lock, like the other queries; src/http
 * renders what they return. */

#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "nrd/util.h"

#define HOUR_MS 3600000LL

int nrd_runner_run_summaries(struct nrd_runner *r, size_t limit, struct nrd_run_summary **runs,
                             size_t *n)
{
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_run_list(r->query_store, limit, runs, n);
  pthread_mutex_unlock(&r->query_lock);
  return rc;
}

static const char *circuit_name(int state)
{
  static const char *const names[] = { "closed", "open", "half-open" };
  return NRD_ENUM_NAME(names, state);
}

int nrd_runner_overview(struct nrd_runner *r, struct nrd_overview *out)
{
  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_count_by_state(r->query_store, out->ledger);
  if (rc == NRD_OK)
    rc = nrd_store_event_count_by_state(r->query_store, &out->pending, &out->delivered, &out->dead);
  pthread_mutex_unlock(&r->query_lock);
  if (rc != NRD_OK)
    return rc;
  out->max_recoveries_per_run = r->cfg->max_recoveries_per_run;
  out->circuit = circuit_name(nrd_novita_circuit_state(r->nv));
  out->run_in_progress = nrd_runner_busy(r);
  out->dry_run_only = r->cfg->migration_dry_run;
  out->webhooks_configured = r->cfg->webhook_url && r->cfg->webhook_url[0];
  out->generated_ms = nrd_now_ms();
  return NRD_OK;
}

int nrd_runner_hourly(struct nrd_runner *r, int hours, int64_t *from_ms, int64_t *to_ms,
                      struct nrd_hourly_bucket **buckets, size_t *n)
{
  *to_ms = nrd_now_ms();
  /* From the start of the hour `hours - 1` hours ago: `hours` whole buckets. */
  *from_ms = (*to_ms / HOUR_MS - (hours - 1)) * HOUR_MS;
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_hourly(r->query_store, *from_ms, buckets, n);
  pthread_mutex_unlock(&r->query_lock);
  return rc;
}
