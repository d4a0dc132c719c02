/* What we do not handle (issue 14): an instance whose newest migration job
 * failed but whose status is not one of RECOVER_STATUSES. Nothing is deleted
 * for it; the run reports it as `ignored` with reason "not migrating (status
 * <s>)", and the first time this process sees the job it is logged (with
 * status and statusError) and counted in nrd_failed_jobs_unhandled_total. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/recovery.h"
#include "nrd/util.h"

#define SEEN_MAX 100000

/* Job ids already logged and counted by this process, sorted. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char **seen;
static size_t n_seen;

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* true the first time job_id is seen (then remembered, up to SEEN_MAX). */
static bool first_sight(const char *job_id)
{
  pthread_mutex_lock(&seen_lock);
  bool first = !n_seen || !bsearch(&job_id, seen, n_seen, sizeof(*seen), cmp_str);
  if (first && n_seen < SEEN_MAX) {
    seen = nrd_xrealloc(seen, (n_seen + 1) * sizeof(*seen));
    seen[n_seen++] = nrd_xstrdup(job_id);
    qsort(seen, n_seen, sizeof(*seen), cmp_str);
  }
  pthread_mutex_unlock(&seen_lock);
  return first;
}

/* Jobs by instance, the newest of each instance first. */
static int cmp_job(const void *a, const void *b)
{
  const struct nrd_job *x = *(const struct nrd_job *const *)a;
  const struct nrd_job *y = *(const struct nrd_job *const *)b;
  int c = strcmp(x->instance_id, y->instance_id);
  if (c)
    return c;
  if (x->created_at != y->created_at)
    return x->created_at > y->created_at ? -1 : 1;
  return strcmp(y->id, x->id);
}

/* statusError {state, message} of the snapshot's raw JSON, for the log. */
static void status_error(const struct nrd_instance *snap, char *out, size_t len)
{
  cJSON *raw = snap->raw_json ? nrd_json_parse(snap->raw_json, strlen(snap->raw_json)) : NULL;
  const cJSON *se = cJSON_GetObjectItemCaseSensitive(raw, "statusError");
  const char *state = nrd_json_str(se, "state"), *message = nrd_json_str(se, "message");
  snprintf(out, len, "%s%s%s", state ? state : "", message ? ": " : "", message ? message : "");
  cJSON_Delete(raw);
}

/* One newest failed job: ignored when its instance was listed by this run
 * in a status not recovered, and no ledger row has it. */
static void consider(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_job *job)
{
  struct nrd_instance snap;
  struct nrd_ledger_row row = { 0 };
  if (nrd_store_snapshot_seen_since(w->store, job->instance_id, ctx->sync_started_ms) != NRD_OK)
    return; /* not listed: nothing to say about it */
  if (nrd_store_snapshot_get(w->store, job->instance_id, &snap) != NRD_OK)
    return;
  if (!nrd_status_recoverable(snap.status) &&
      nrd_store_ledger_get(w->store, job->id, &row) == NRD_NONE) {
    char reason[128], se[600];
    snprintf(reason, sizeof(reason), "not migrating (status %s)",
             snap.status ? snap.status : "unknown");
    if (first_sight(job->id)) {
      status_error(&snap, se, sizeof(se));
      LOG_WARN("failed migration job on an instance not in RECOVER_STATUSES; nothing done",
               "instanceId", job->instance_id, "jobId", job->id, "status", snap.status,
               "statusError", se);
      nrd_metrics_failed_job_unhandled(snap.status);
    }
    struct nrd_ledger_row shown = { .instance_id = job->instance_id,
                                    .instance_name = snap.name,
                                    .job_id = job->id };
    cJSON *o = nrd_outcome_new(&shown, "ignored");
    nrd_json_add_str(o, "reason", reason);
    nrd_json_add_str(o, "status", snap.status);
    ctx->outcome(ctx, o);
  } else if (!nrd_status_recoverable(snap.status)) {
    nrd_ledger_row_cleanup(&row);
  }
  nrd_instance_cleanup(&snap);
}

void nrd_report_ignored(struct run_ctx *ctx, struct nrd_worker *w, struct nrd_job *jobs[2],
                        const size_t n_jobs[2], nrd_recovering_fn recovering, void *ud)
{
  size_t n = 0;
  const struct nrd_job **all = nrd_xcalloc(n_jobs[0] + n_jobs[1] + 1, sizeof(*all));
  for (int t = 0; t < 2; t++)
    for (size_t i = 0; i < n_jobs[t]; i++)
      if (jobs[t][i].id && jobs[t][i].instance_id)
        all[n++] = &jobs[t][i];
  qsort(all, n, sizeof(*all), cmp_job);
  for (size_t i = 0; i < n; i++) {
    bool newest = i == 0 || strcmp(all[i]->instance_id, all[i - 1]->instance_id);
    if (newest && all[i]->state && !strcmp(all[i]->state, "fail") &&
        !recovering(ud, all[i]->instance_id))
      consider(ctx, w, all[i]);
  }
  free(all);
}
