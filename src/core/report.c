/* Step 4, report: the run's tally (its outcomes and counts, the store's
 * failure), the report's text, and the run.completed event. A leaf: the
 * other steps hand their outcomes here (the row executor through
 * ctx->outcome), nothing here calls back into them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/util.h"

const char *nrd_trigger_name(enum nrd_trigger t)
{
  static const char *const names[] = {
    [NRD_TRIGGER_API] = "api",
    [NRD_TRIGGER_SCHEDULER] = "scheduler",
    [NRD_TRIGGER_CLI] = "cli",
    [NRD_TRIGGER_WATCH] = "watch",
  };
  return NRD_ENUM_NAME(names, t);
}

cJSON *nrd_outcome_new(const struct nrd_ledger_row *row, const char *action)
{
  cJSON *o = nrd_json_object();
  nrd_json_add_str(o, "instanceId", row->instance_id);
  nrd_json_add_str(o, "instanceName", row->instance_name);
  nrd_json_add_str(o, "jobId", row->job_id);
  nrd_json_add_str(o, "action", action);
  return o;
}

void nrd_report_add_outcome(struct run_ctx *ctx, cJSON *item)
{
  /* The metric label must be a static string: the item's own goes away. */
  static const char *const actions[] = { "recreated", "adopted",   "planned", "deferred",
                                         "failed",    "abandoned", "skipped" };
  const char *action = nrd_json_str(item, "action");
  const char *label = NULL;
  for (size_t i = 0; action && i < sizeof(actions) / sizeof(actions[0]); i++)
    if (!strcmp(action, actions[i]))
      label = actions[i];
  /* Kept as text: a tree per outcome held for the whole run, duplicated for
   * the report, costs memory by the row (BENCHMARKS.md, "Figures behind the
   * code"). */
  char *text = nrd_json_print(item);
  cJSON_Delete(item);
  pthread_mutex_lock(&ctx->lock);
  if (label == actions[0] || label == actions[1])
    ctx->recreated++;
  else if (label == actions[4])
    ctx->errors++;
  else if (label == actions[3])
    ctx->deferred++;
  if (ctx->outcomes.len)
    nrd_buf_append(&ctx->outcomes, ",", 1);
  nrd_buf_puts(&ctx->outcomes, text);
  pthread_mutex_unlock(&ctx->lock);
  free(text);
  if (label)
    nrd_metrics_recovery(label);
}

void nrd_report_defer(struct run_ctx *ctx, const struct nrd_ledger_row *row, const char *reason)
{
  cJSON *o = nrd_outcome_new(row, "deferred");
  nrd_json_add_str(o, "reason", reason);
  ctx->outcome(ctx, o);
}

void nrd_run_store_failed_msg(struct run_ctx *ctx, const char *what)
{
  pthread_mutex_lock(&ctx->lock);
  if (!ctx->store_failed) {
    ctx->store_failed = true;
    snprintf(ctx->store_error, sizeof(ctx->store_error), "store unavailable: %s", what);
  }
  pthread_mutex_unlock(&ctx->lock);
}

void nrd_run_store_failed(struct run_ctx *ctx, struct nrd_store *st)
{
  nrd_run_store_failed_msg(ctx,
                           st ? nrd_store_last_error(st) : "the database could not be written");
}

bool nrd_run_store_reason(struct run_ctx *ctx, char *out, size_t outlen)
{
  pthread_mutex_lock(&ctx->lock);
  bool failed = ctx->store_failed;
  if (failed)
    snprintf(out, outlen, "%s", ctx->store_error);
  pthread_mutex_unlock(&ctx->lock);
  return failed;
}

void nrd_report_defer_open_rows(struct run_ctx *ctx, struct nrd_worker *w)
{
  struct nrd_ledger_row *rows = NULL, after = { 0 };
  size_t n = 0;
  char reason[400];
  nrd_run_store_reason(ctx, reason, sizeof(reason));
  while (nrd_store_ledger_open(w->store, after.job_id ? &after : NULL, 256, &rows, &n) == NRD_OK &&
         n > 0) {
    for (size_t i = 0; i < n; i++)
      nrd_report_defer(ctx, &rows[i], reason);
    nrd_ledger_row_cleanup(&after);
    after.job_id = nrd_xstrdup(rows[n - 1].job_id);
    after.created_ms = rows[n - 1].created_ms;
    nrd_ledger_rows_free(rows, n);
    rows = NULL;
  }
  nrd_ledger_row_cleanup(&after);
}

/* The run's five counts, as the report and run.completed show them. Called
 * with ctx->lock held. */
static void add_counts(cJSON *o, const struct run_ctx *ctx)
{
  nrd_json_add_num(o, "totalChecked", ctx->total_checked);
  nrd_json_add_num(o, "failedJobsFound", ctx->failed_found);
  nrd_json_add_num(o, "instancesRecreated", ctx->recreated);
  nrd_json_add_num(o, "errors", ctx->errors);
  nrd_json_add_num(o, "deferred", ctx->deferred);
}

/* The report's counts and brakes, without its outcomes. Called with
 * ctx->lock held. */
static cJSON *report_head(struct run_ctx *ctx)
{
  cJSON *res = nrd_json_object();
  add_counts(res, ctx);
  nrd_json_add_bool(res, "dryRun", ctx->dry_run);
  nrd_json_add_str(res, "runId", ctx->run_id);
  if (ctx->account_blocked) {
    cJSON *b = nrd_json_object();
    nrd_json_add_str(b, "reason", ctx->account_reason);
    nrd_json_add_str(b, "message", ctx->account_message);
    nrd_json_add_num(b, "heldRows", (double)ctx->held_account);
    cJSON_AddItemToObject(res, "accountBrake", b);
  }
  if (ctx->held_capacity)
    nrd_json_add_num(res, "capacityHeldRows", (double)ctx->held_capacity);
  return res;
}

char *nrd_report_text(struct run_ctx *ctx)
{
  static const char outcomes_key[] = ",\"outcomes\":[";
  pthread_mutex_lock(&ctx->lock);
  cJSON *res = report_head(ctx);
  char *head = nrd_json_print(res);
  size_t head_len = strlen(head) - 1; /* without its closing brace */
  size_t key_len = sizeof(outcomes_key) - 1;
  size_t n = ctx->outcomes.len;
  char *text = nrd_buf_steal(&ctx->outcomes);
  text = nrd_xrealloc(text, head_len + key_len + n + 3);
  memmove(text + head_len + key_len, text, n);
  memcpy(text, head, head_len);
  memcpy(text + head_len, outcomes_key, key_len);
  memcpy(text + head_len + key_len + n, "]}", 3);
  pthread_mutex_unlock(&ctx->lock);
  free(head);
  cJSON_Delete(res);
  return text;
}

void nrd_report_event(struct run_ctx *ctx, struct nrd_store *st, const char *state, bool completed,
                      int64_t finished_ms)
{
  char id[64], at[32];
  cJSON *body = nrd_json_object();
  nrd_make_id("evt", id);
  nrd_iso8601(finished_ms, at);
  nrd_json_add_str(body, "id", id);
  nrd_json_add_str(body, "type", "run.completed");
  nrd_json_add_str(body, "createdAt", at);
  cJSON *d = cJSON_AddObjectToObject(body, "data");
  nrd_json_add_str(d, "runId", ctx->run_id);
  nrd_json_add_str(d, "trigger", nrd_trigger_name(ctx->trigger));
  nrd_json_add_str(d, "state", state);
  nrd_json_add_bool(d, "completed", completed);
  nrd_json_add_bool(d, "dryRun", ctx->dry_run);
  pthread_mutex_lock(&ctx->lock);
  add_counts(d, ctx);
  pthread_mutex_unlock(&ctx->lock);
  struct nrd_event ev = {
    .id = id, .type = "run.completed", .created_ms = finished_ms, .state = "pending"
  };
  ev.body_json = nrd_json_print(body);
  if (nrd_store_event_insert(st, &ev) != NRD_OK)
    LOG_ERROR("could not record the run.completed event", "runId", ctx->run_id);
  else if (ctx->runner->event_hook)
    ctx->runner->event_hook(ctx->runner->event_hook_ud);
  free(ev.body_json);
  cJSON_Delete(body);
}
