/* Step 2, detect: the newest migration job of each migrating instance the
 * sync saw; a failed one becomes a ledger row (all in one transaction). A
 * failed job on an instance in another status is reported as ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steps.h"
#include "nrd/log.h"
#include "nrd/recreate.h"
#include "nrd/util.h"

/* Newer by createdAt; ties broken by job id so the choice is stable. */
static bool job_newer(const struct nrd_job *a, const struct nrd_job *b)
{
  if (a->created_at != b->created_at)
    return a->created_at > b->created_at;
  return strcmp(a->id, b->id) > 0;
}

/* Waits for both job listings (one the pool refused is listed here), then
 * records the newest job of each migrating instance. */
static enum nrd_nv_rc newest_jobs(struct nrd_worker *w, struct sync_state *s,
                                  struct nrd_nv_error *err)
{
  enum nrd_nv_rc rc = NRD_NV_OK;
  nrd_pool_wait_idle(s->ctx->runner->pool, 0);
  for (int t = 0; t < 2; t++) {
    struct job_listing *l = &s->listings[t];
    if (!l->queued)
      nrd_sync_list_jobs(l, w);
    s->jobs[t] = l->jobs;
    s->n_jobs[t] = l->n;
    l->jobs = NULL;
    l->n = 0;
    if (l->rc != NRD_NV_OK && rc == NRD_NV_OK) {
      rc = l->rc;
      *err = l->err;
    }
  }
  if (rc != NRD_NV_OK)
    return rc;
  for (int t = 0; t < 2; t++) {
    for (size_t i = 0; i < s->n_jobs[t]; i++) {
      const struct nrd_job *job = &s->jobs[t][i];
      struct migrating *m;
      if (!job->id)
        continue;
      m = nrd_sync_find(s, job->instance_id);
      if (m && (!m->newest || job_newer(job, m->newest)))
        m->newest = job;
    }
  }
  return NRD_NV_OK;
}

/* Listed by this run's sync in a recovered status (nrd_report_ignored). */
static bool sync_recovering(void *ud, const char *instance_id)
{
  return nrd_sync_find(ud, instance_id) != NULL;
}

/* One ledger row per failed job, all in one transaction. */
static int record_found(struct run_ctx *ctx, struct nrd_worker *w, struct sync_state *s)
{
  int64_t now = nrd_now_ms();
  struct nrd_ledger_new *found = nrd_xcalloc(s->n + 1, sizeof(*found));
  size_t n_found = 0;
  int rc = 0;
  for (size_t i = 0; i < s->n; i++) {
    const struct nrd_job *job = s->items[i].newest;
    if (!job || !job->state || strcmp(job->state, "fail"))
      continue;
    char new_name[NRD_NAME_MAX + 1];
    nrd_recreate_name(s->items[i].name, s->items[i].id, now, new_name);
    found[n_found++] = (struct nrd_ledger_new){
      job->id, job->type, s->items[i].id, s->items[i].name, nrd_xstrdup(new_name), now
    };
  }
  ctx->failed_found = (int)n_found;
  bool *inserted = nrd_xcalloc(n_found + 1, sizeof(*inserted));
  if (nrd_store_ledger_insert_many(w->store, found, n_found, now, inserted) != NRD_OK) {
    LOG_ERROR("recording the failed jobs in the ledger failed", "#count", NRD_I64(n_found));
    nrd_run_store_failed(ctx, w->store);
    nrd_report_defer_open_rows(ctx, w);
    rc = -1;
  }
  for (size_t i = 0; i < n_found; i++) {
    const struct nrd_job *job = nrd_sync_find(s, found[i].instance_id)->newest;
    if (rc == 0 && inserted[i])
      LOG_INFO("failed migration found", "instanceId", found[i].instance_id, "jobId", job->id,
               "jobType", job->type, "error", job->error);
    free((char *)found[i].new_name);
  }
  free(found);
  free(inserted);
  return rc;
}

int nrd_detect(struct run_ctx *ctx, struct nrd_worker *w, struct sync_state *s, char *msg,
               size_t msglen)
{
  struct nrd_nv_error err = { 0 };
  if (!s->listings_started)
    nrd_sync_listings_start(s);
  enum nrd_nv_rc rc = newest_jobs(w, s, &err);
  if (rc != NRD_NV_OK && s->n) {
    snprintf(msg, msglen, "listing migration jobs failed: %s", err.message);
    return -1;
  }
  if (rc == NRD_NV_OK)
    nrd_report_ignored(ctx, w, s->jobs, s->n_jobs, sync_recovering, s);
  else /* nothing to recover: only the ignored ones go unreported */
    LOG_WARN("listing migration jobs failed; failed jobs on other statuses not reported", "error",
             err.message);
  return record_found(ctx, w, s);
}
