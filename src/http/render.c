/* The JSON bodies of the read endpoints, rendered from the plain data core
 * returns (nrd/domain.h, nrd/run.h): a run's record, ledger rows, outbox
 * events, and the console's runs, overview and hourly buckets. Each returns
 * the body as heap text for http_reply_json. */

#include <stdlib.h>

#include "http_internal.h"
#include "nrd/json.h"
#include "nrd/util.h"

/* An ISO 8601 time. */
static void add_iso(cJSON *o, const char *key, int64_t ms)
{
  char at[32];
  nrd_iso8601(ms, at);
  nrd_json_add_str(o, key, at);
}

/* An ISO 8601 time, or null when unset (ms <= 0). */
static void add_time(cJSON *o, const char *key, int64_t ms)
{
  if (ms <= 0)
    cJSON_AddNullToObject(o, key);
  else
    add_iso(o, key, ms);
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

/* One item of a list as JSON. */
typedef cJSON *(*item_json_fn)(const void *item);

/* The n items (size bytes each) as a JSON array, each rendered by one. */
static cJSON *array_of(const void *items, size_t n, size_t size, item_json_fn one)
{
  cJSON *arr = nrd_json_array();
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, one((const char *)items + i * size));
  return arr;
}

/* An object {key: [the items], "count": n}, printed. */
static char *print_list(const char *key, const void *items, size_t n, size_t size, item_json_fn one)
{
  cJSON *o = nrd_json_object();
  cJSON_AddItemToObject(o, key, array_of(items, n, size, one));
  nrd_json_add_num(o, "count", (double)n);
  char *text = nrd_json_print(o);
  cJSON_Delete(o);
  return text;
}

char *http_render_run(const struct nrd_run_record *rec)
{
  cJSON *o = nrd_json_object();
  nrd_json_add_str(o, "runId", rec->run_id);
  nrd_json_add_str(o, "state", rec->state);
  nrd_json_add_str(o, "trigger", rec->trigger);
  nrd_json_add_bool(o, "dryRun", rec->dry_run);
  add_iso(o, "startedAt", rec->started_ms);
  if (rec->finished_ms) {
    add_iso(o, "finishedAt", rec->finished_ms);
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
  if (row->accepted_ms) {
    add_iso(o, "acceptedAt", row->accepted_ms);
  }
  if (row->running_ms) {
    add_iso(o, "runningAt", row->running_ms);
  }
  if (row->status_error_state || row->status_error_message) {
    cJSON *se = nrd_json_checked(cJSON_AddObjectToObject(o, "statusError"));
    nrd_json_add_str(se, "state", row->status_error_state ? row->status_error_state : "");
    nrd_json_add_str(se, "message", row->status_error_message ? row->status_error_message : "");
  }
}

static cJSON *row_json(const void *item)
{
  const struct nrd_ledger_row *row = item;
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
  add_iso(o, "createdAt", row->created_ms);
  add_iso(o, "updatedAt", row->updated_ms);
  return o;
}

char *http_render_recoveries(const struct nrd_ledger_row *rows, size_t n)
{
  return print_list("recoveries", rows, n, sizeof *rows, row_json);
}

static cJSON *event_json(const void *item)
{
  const struct nrd_event *ev = item;
  cJSON *e = nrd_json_object();
  nrd_json_add_str(e, "id", ev->id);
  nrd_json_add_str(e, "type", ev->type);
  add_iso(e, "createdAt", ev->created_ms);
  nrd_json_add_str(e, "state", ev->state);
  nrd_json_add_num(e, "attempts", ev->attempts);
  nrd_json_add_str(e, "lastError", ev->last_error);
  add_stored(e, "event", ev->body_json);
  return e;
}

char *http_render_events(const struct nrd_event *ev, size_t n)
{
  return print_list("events", ev, n, sizeof *ev, event_json);
}

static cJSON *run_summary_json(const void *item)
{
  const struct nrd_run_summary *rs = item;
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
  return print_list("runs", runs, n, sizeof *runs, run_summary_json);
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

static cJSON *bucket_json(const void *item)
{
  const struct nrd_hourly_bucket *e = item;
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
  add_time(o, "from", from_ms);
  add_time(o, "to", to_ms);
  nrd_json_add_num(o, "hours", hours);
  cJSON_AddItemToObject(o, "buckets", array_of(b, n, sizeof *b, bucket_json));
  char *text = nrd_json_print(o);
  cJSON_Delete(o);
  return text;
}
