/* The operator console's read-only views: recent runs, an overview of the
 * ledger, breaker and outbox, finished recoveries per hour. Each takes the
 * runner's query connection under its lock, like the other queries. */

#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/util.h"

#define HOUR_MS 3600000LL

static cJSON *checked(cJSON *item)
{
  if(!item)
    abort();
  return item;
}

static void add_time(cJSON *o, const char *key, int64_t ms)
{
  char at[32];
  if(ms <= 0) {
    cJSON_AddNullToObject(o, key);
    return;
  }
  nrd_iso8601(ms, at);
  nrd_json_add_str(o, key, at);
}

/* A count from a report, or null when the report did not have it. */
static void add_count(cJSON *o, const char *key, int64_t v)
{
  if(v < 0)
    cJSON_AddNullToObject(o, key);
  else
    nrd_json_add_num(o, key, (double)v);
}

static cJSON *run_summary_json(const struct nrd_run_summary *rs)
{
  cJSON *o = checked(cJSON_CreateObject());
  nrd_json_add_str(o, "runId", rs->run_id);
  nrd_json_add_str(o, "state", rs->state);
  nrd_json_add_str(o, "trigger", rs->trigger);
  nrd_json_add_bool(o, "dryRun", rs->dry_run);
  add_time(o, "startedAt", rs->started_ms);
  add_time(o, "finishedAt", rs->finished_ms);
  add_count(o, "durationMs", rs->finished_ms ? rs->finished_ms - rs->started_ms : -1);
  add_count(o, "totalChecked", rs->total_checked);
  add_count(o, "failedJobsFound", rs->failed_found);
  add_count(o, "instancesRecreated", rs->recreated);
  add_count(o, "errors", rs->errors);
  add_count(o, "deferred", rs->deferred);
  return o;
}

int nrd_runner_list_runs(struct nrd_runner *r, size_t limit, char **json)
{
  struct nrd_run_summary *runs = NULL;
  size_t n = 0;

  *json = NULL;
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_run_list(r->query_store, limit, &runs, &n);
  pthread_mutex_unlock(&r->query_lock);
  if(rc != NRD_OK)
    return rc;
  cJSON *o = checked(cJSON_CreateObject());
  cJSON *arr = checked(cJSON_CreateArray());
  for(size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, run_summary_json(&runs[i]));
  cJSON_AddItemToObject(o, "runs", arr);
  nrd_json_add_num(o, "count", (double)n);
  *json = nrd_json_print(o);
  cJSON_Delete(o);
  nrd_run_summaries_free(runs, n);
  return NRD_OK;
}

static const char *circuit_name(int state)
{
  switch(state) {
  case 0: return "closed";
  case 1: return "open";
  case 2: return "half-open";
  }
  return "unknown";
}

int nrd_runner_overview(struct nrd_runner *r, char **json)
{
  int64_t counts[NRD_ROW_STATE_COUNT];
  int64_t pending = 0, delivered = 0, dead = 0, open = 0;
  int64_t brake = r->cfg->max_recoveries_per_run;

  *json = NULL;
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_count_by_state(r->query_store, counts);
  if(rc == NRD_OK)
    rc = nrd_store_event_count_by_state(r->query_store, &pending, &delivered, &dead);
  pthread_mutex_unlock(&r->query_lock);
  if(rc != NRD_OK)
    return rc;

  cJSON *o = checked(cJSON_CreateObject());
  cJSON *ledger = checked(cJSON_CreateObject());
  for(int s = 0; s < NRD_ROW_STATE_COUNT; s++) {
    nrd_json_add_num(ledger, nrd_row_state_name((enum nrd_row_state)s), (double)counts[s]);
    if(nrd_row_state_is_open((enum nrd_row_state)s))
      open += counts[s];
  }
  cJSON_AddItemToObject(o, "ledger", ledger);
  nrd_json_add_num(o, "openRows", (double)open);
  cJSON *b = checked(cJSON_CreateObject());
  nrd_json_add_num(b, "maxRecoveriesPerRun", (double)brake);
  nrd_json_add_num(b, "held", (double)(open > brake ? open - brake : 0));
  cJSON_AddItemToObject(o, "brake", b);
  nrd_json_add_str(o, "circuit", circuit_name(nrd_novita_circuit_state(r->nv)));
  nrd_json_add_bool(o, "runInProgress", nrd_runner_busy(r));
  nrd_json_add_bool(o, "dryRunOnly", r->cfg->migration_dry_run);
  cJSON *w = checked(cJSON_CreateObject());
  nrd_json_add_bool(w, "configured", r->cfg->webhook_url && r->cfg->webhook_url[0]);
  nrd_json_add_num(w, "pending", (double)pending);
  nrd_json_add_num(w, "delivered", (double)delivered);
  nrd_json_add_num(w, "dead", (double)dead);
  cJSON_AddItemToObject(o, "webhooks", w);
  add_time(o, "generatedAt", nrd_now_ms());
  *json = nrd_json_print(o);
  cJSON_Delete(o);
  return NRD_OK;
}

/* recreated / adopted for a created row; the state's name otherwise. */
static const char *bucket_action(const struct nrd_hourly_bucket *e, bool *recovered)
{
  enum nrd_row_state st;
  *recovered = nrd_row_state_parse(e->state, &st) && st == NRD_ROW_CREATED;
  if(*recovered)
    return e->adopted ? "adopted" : "recreated";
  return e->state ? e->state : "unknown";
}

static cJSON *bucket_json(const struct nrd_hourly_bucket *e)
{
  bool recovered;
  cJSON *o = checked(cJSON_CreateObject());
  add_time(o, "hour", e->hour_ms);
  nrd_json_add_str(o, "action", bucket_action(e, &recovered));
  nrd_json_add_num(o, "count", (double)e->count);
  if(recovered && e->count > 0) {
    cJSON *t = checked(cJSON_CreateObject());
    nrd_json_add_num(t, "avg", (double)(e->ttr_sum_ms / e->count));
    nrd_json_add_num(t, "max", (double)e->ttr_max_ms);
    cJSON_AddItemToObject(o, "timeToRecoveryMs", t);
  } else {
    cJSON_AddNullToObject(o, "timeToRecoveryMs");
  }
  return o;
}

int nrd_runner_hourly_stats(struct nrd_runner *r, int hours, char **json)
{
  struct nrd_hourly_bucket *b = NULL;
  size_t n = 0;
  int64_t now = nrd_now_ms();
  /* From the start of the hour `hours - 1` hours ago: `hours` whole buckets. */
  int64_t from = (now / HOUR_MS - (hours - 1)) * HOUR_MS;

  *json = NULL;
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_hourly(r->query_store, from, &b, &n);
  pthread_mutex_unlock(&r->query_lock);
  if(rc != NRD_OK)
    return rc;
  cJSON *o = checked(cJSON_CreateObject());
  cJSON *arr = checked(cJSON_CreateArray());
  add_time(o, "from", from);
  add_time(o, "to", now);
  nrd_json_add_num(o, "hours", hours);
  for(size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, bucket_json(&b[i]));
  cJSON_AddItemToObject(o, "buckets", arr);
  *json = nrd_json_print(o);
  cJSON_Delete(o);
  nrd_hourly_buckets_free(b, n);
  return NRD_OK;
}
