/* The JSON bodies of the read endpoints, rendered from the plain data core
 * returns (nrd/domain.h, nrd/run.h): a run's record, ledger rows, outbox
 * events, and the console's runs, overview and hourly buckets. Each returns
 * the body as heap text for http_reply_json. */

#include <stdlib.h>

#include "http_internal.h"
#include "nrd/json.h"
#include "nrd/util.h"

/* An ISO 8601 time, or null when unset (ms <= 0). */
static void add_time(cJSON *o, const char *key, int64_t ms)
{
  char at[32];
  if (ms <= 0) {
    cJSON_AddNullToObject(o, key);
    return;
  }
  nrd_iso8601(ms, at);
  nrd_json_add_str(o, key, at);
}

/* A count from a report, or null when the report did not have it. */
static void add_count(cJSON *o, const char *key, int64_t v)
{
  if (v < 0)
    cJSON_AddNullToObject(o, key);
  else
    nrd_json_add_num(o, key, (double)v);
}

/* Stored JSON text as a value, null when absent or unreadable. */
static void add_stored(cJSON *o, const char *key, const char *text)
{
  cJSON *v = text ? cJSON_Parse(text) : NULL;
  cJSON_AddItemToObject(o, key, v ? v : cJSON_CreateNull());
}

/* An object {key: array, "count": n}, printed; takes arr. */
static char *print_list(const char *key, cJSON *arr, size_t n)
{
  cJSON *o = nrd_json_object();
  cJSON_AddItemToObject(o, key, arr);
  nrd_json_add_num(o, "count", (double)n);
  char *text = nrd_json_print(o);
  cJSON_Delete(o);
  return text;
}

char *http_render_run(const struct nrd_run_record *rec)
{
  char at[32];
  cJSON *o = nrd_json_object();
  nrd_json_add_str(o, "runId", rec->run_id);
  nrd_json_add_str(o, "state", rec->state);
  nrd_json_add_str(o, "trigger", rec->trigger);
  nrd_json_add_bool(o, "dryRun", rec->dry_run);
  nrd_iso8601(rec->started_ms, at);
  nrd_json_add_str(o, "startedAt", at);
  if (rec->finished_ms) {
    nrd_iso8601(rec->finished_ms, at);
    nrd_json_add_str(o, "finishedAt", at);
  } else {
    cJSON_AddNullToObject(o, "finishedAt");
  }
  add_stored(o, "result", rec->report_json);
  char *text = nrd_json_print(o);
  cJSON_Delete(o);
  return text;
}

/* A row's start fields: acceptedAt, runningAt, statusError {state,
 * message}, each when set. */
static void row_start_json(cJSON *o, const struct nrd_ledger_row *row)
{
  char at[32];
  if (row->accepted_ms) {
    nrd_iso8601(row->accepted_ms, at);
    nrd_json_add_str(o, "acceptedAt", at);
  }
  if (row->running_ms) {
    nrd_iso8601(row->running_ms, at);
    nrd_json_add_str(o, "runningAt", at);
  }
  if (row->status_error_state || row->status_error_message) {
    cJSON *se = nrd_json_checked(cJSON_AddObjectToObject(o, "statusError"));
    nrd_json_add_str(se, "state", row->status_error_state ? row->status_error_state : "");
    nrd_json_add_str(se, "message", row->status_error_message ? row->status_error_message : "");
  }
}

static cJSON *row_json(const struct nrd_ledger_row *row)
{
  char at[32];
  cJSON *o = nrd_json_object();
  nrd_json_add_str(o, "jobId", row->job_id);
  nrd_json_add_str(o, "jobType", row->job_type);
  nrd_json_add_str(o, "instanceId", row->instance_id);
  nrd_json_add_str(o, "instanceName", row->instance_name);
  nrd_json_add_str(o, "state", nrd_row_state_name(row->state));
  nrd_json_add_str(o, "newName", row->new_name);
  nrd_json_add_str(o, "newInstanceId", row->new_instance_id);
  nrd_json_add_bool(o, "deleteSent", row->delete_sent);
  nrd_json_add_bool(o, "createSent", row->create_sent);
  nrd_json_add_bool(o, "adopted", row->adopted);
  nrd_json_add_num(o, "attempts", row->attempts);
  nrd_json_add_str(o, "lastError", row->last_error);
  nrd_json_add_str(o, "runId", row->run_id);
  row_start_json(o, row);
  nrd_iso8601(row->created_ms, at);
  nrd_json_add_str(o, "createdAt", at);
  nrd_iso8601(row->updated_ms, at);
  nrd_json_add_str(o, "updatedAt", at);
  return o;
}

char *http_render_recoveries(const struct nrd_ledger_row *rows, size_t n)
{
  cJSON *arr = nrd_json_array();
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, row_json(&rows[i]));
  return print_list("recoveries", arr, n);
}

char *http_render_events(const struct nrd_event *ev, size_t n)
{
  char at[32];
  cJSON *arr = nrd_json_array();
  for (size_t i = 0; i < n; i++) {
    cJSON *e = nrd_json_object();
    nrd_json_add_str(e, "id", ev[i].id);
    nrd_json_add_str(e, "type", ev[i].type);
    nrd_iso8601(ev[i].created_ms, at);
    nrd_json_add_str(e, "createdAt", at);
    nrd_json_add_str(e, "state", ev[i].state);
    nrd_json_add_num(e, "attempts", ev[i].attempts);
    nrd_json_add_str(e, "lastError", ev[i].last_error);
    add_stored(e, "event", ev[i].body_json);
    cJSON_AddItemToArray(arr, e);
  }
  return print_list("events", arr, n);
}

static cJSON *run_summary_json(const struct nrd_run_summary *rs)
{
  cJSON *o = nrd_json_object();
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

char *http_render_run_summaries(const struct nrd_run_summary *runs, size_t n)
{
  cJSON *arr = nrd_json_array();
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, run_summary_json(&runs[i]));
  return print_list("runs", arr, n);
}

char *http_render_overview(const struct nrd_overview *ov)
{
  int64_t open = 0, brake = ov->max_recoveries_per_run;
  cJSON *o = nrd_json_object();
  cJSON *ledger = nrd_json_object();
  for (int s = 0; s < NRD_ROW_STATE_COUNT; s++) {
    nrd_json_add_num(ledger, nrd_row_state_name((enum nrd_row_state)s), (double)ov->ledger[s]);
    if (nrd_row_state_is_open((enum nrd_row_state)s))
      open += ov->ledger[s];
  }
  cJSON_AddItemToObject(o, "ledger", ledger);
  nrd_json_add_num(o, "openRows", (double)open);
  cJSON *b = nrd_json_object();
  nrd_json_add_num(b, "maxRecoveriesPerRun", (double)brake);
  nrd_json_add_num(b, "held", (double)(open > brake ? open - brake : 0));
  cJSON_AddItemToObject(o, "brake", b);
  nrd_json_add_str(o, "circuit", ov->circuit);
  nrd_json_add_bool(o, "runInProgress", ov->run_in_progress);
  nrd_json_add_bool(o, "dryRunOnly", ov->dry_run_only);
  cJSON *w = nrd_json_object();
  nrd_json_add_bool(w, "configured", ov->webhooks_configured);
  nrd_json_add_num(w, "pending", (double)ov->pending);
  nrd_json_add_num(w, "delivered", (double)ov->delivered);
  nrd_json_add_num(w, "dead", (double)ov->dead);
  cJSON_AddItemToObject(o, "webhooks", w);
  add_time(o, "generatedAt", ov->generated_ms);
  char *text = nrd_json_print(o);
  cJSON_Delete(o);
  return text;
}

/* recreated / adopted for a created row; the state's name otherwise. */
static const char *bucket_action(const struct nrd_hourly_bucket *e, bool *recovered)
{
  enum nrd_row_state st;
  *recovered = nrd_row_state_parse(e->state, &st) && st == NRD_ROW_CREATED;
  if (*recovered)
    return e->adopted ? "adopted" : "recreated";
  return e->state ? e->state : "unknown";
}

static cJSON *bucket_json(const struct nrd_hourly_bucket *e)
{
  bool recovered;
  cJSON *o = nrd_json_object();
  add_time(o, "hour", e->hour_ms);
  nrd_json_add_str(o, "action", bucket_action(e, &recovered));
  nrd_json_add_num(o, "count", (double)e->count);
  if (recovered && e->count > 0) {
    cJSON *t = nrd_json_object();
    nrd_json_add_num(t, "avg", (double)(e->ttr_sum_ms / e->count));
    nrd_json_add_num(t, "max", (double)e->ttr_max_ms);
    cJSON_AddItemToObject(o, "timeToRecoveryMs", t);
  } else {
    cJSON_AddNullToObject(o, "timeToRecoveryMs");
  }
  return o;
}

char *http_render_hourly(int hours, int64_t from_ms, int64_t to_ms,
                         const struct nrd_hourly_bucket *b, size_t n)
{
  cJSON *o = nrd_json_object();
  cJSON *arr = nrd_json_array();
  add_time(o, "from", from_ms);
  add_time(o, "to", to_ms);
  nrd_json_add_num(o, "hours", hours);
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, bucket_json(&b[i]));
  cJSON_AddItemToObject(o, "buckets", arr);
  char *text = nrd_json_print(o);
  cJSON_Delete(o);
  return text;
}
