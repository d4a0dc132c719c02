/* Step 1, sync: every instance listed page by page, its snapshot stored by
 * the snapshot writer, the migrating ones noted for step 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steps.h"
#include "nrd/recovery.h"
#include "nrd/util.h"

void nrd_sync_list_jobs(struct job_listing *l, struct nrd_worker *w)
{
  nrd_novita_conn_set_deadline(w->conn, l->ctx->deadline_mono_ms);
  l->rc = nrd_nv_list_jobs(w->conn, l->type, l->start_s, l->end_s, &l->jobs, &l->n, &l->err);
}

static void listing_process(void *job, void *worker_ctx)
{
  nrd_sync_list_jobs(job, worker_ctx);
}

static void listing_free(void *job)
{
  (void)job; /* owned by the run, which waits for the pool */
}

/* Starts both job listings on the pool. The jobs are needed exactly when
 * the listing shows a migrating instance, so starting at the first one
 * adds no call, and their pages overlap the remaining instance pages. */
void nrd_sync_listings_start(struct sync_state *s)
{
  static const char *const types[2] = { "instanceMigrate", "autoInstanceMigrate" };
  const struct nrd_config *cfg = s->ctx->runner->cfg;
  int64_t end_s = nrd_now_ms() / 1000;
  int64_t start_s = end_s - (int64_t)cfg->migration_job_lookback_hours * 3600;

  s->listings_started = true;
  for (int t = 0; t < 2; t++) {
    struct job_listing *l = &s->listings[t];
    *l = (struct job_listing){
      .ctx = s->ctx, .type = types[t], .start_s = start_s, .end_s = end_s, .rc = NRD_NV_TRANSIENT
    };
    snprintf(l->err.message, sizeof(l->err.message), "not listed: the service is stopping");
    l->queued = nrd_pool_submit(s->ctx->runner->pool, listing_process, listing_free, l) == 0;
  }
}

/* A run of the sync's instances: the migrating ones are noted, then all go
 * to the snapshot writer. */
static int on_items(void *ud, struct nrd_instance *items, size_t n)
{
  struct sync_state *s = ud;
  for (size_t i = 0; i < n; i++) {
    if (!items[i].id || !nrd_status_recoverable(items[i].status))
      continue;
    if (s->n == s->cap) {
      s->cap = s->cap ? s->cap * 2 : 64;
      s->items = nrd_xrealloc(s->items, s->cap * sizeof(*s->items));
    }
    s->items[s->n++] =
        (struct migrating){ nrd_xstrdup(items[i].id), nrd_xstrdup(items[i].name), NULL };
  }
  if (s->n > 0 && !s->listings_started)
    nrd_sync_listings_start(s);
  if (!nrd_snapshot_writer_push(s->writer, items, n)) {
    s->store_failed = true;
    return 1;
  }
  return 0;
}

static void on_page_end(void *ud, bool usable)
{
  struct sync_state *s = ud;
  nrd_snapshot_writer_page_end(s->writer, usable);
}

static int cmp_migrating(const void *a, const void *b)
{
  return strcmp(((const struct migrating *)a)->id, ((const struct migrating *)b)->id);
}

struct migrating *nrd_sync_find(struct sync_state *s, const char *id)
{
  struct migrating key = { .id = (char *)id };
  return id && s->n ? bsearch(&key, s->items, s->n, sizeof(*s->items), cmp_migrating) : NULL;
}

int nrd_sync(struct run_ctx *ctx, struct nrd_worker *w, struct sync_state *s, char *msg,
             size_t msglen)
{
  struct nrd_nv_error err = { 0 };
  ctx->sync_started_ms = nrd_now_ms();
  s->writer = nrd_snapshot_writer_start(ctx);
  if (!s->writer) {
    snprintf(msg, msglen, "storing instance snapshots failed: the service is stopping");
    return -1;
  }
  const struct nrd_nv_instance_sink sink = { on_items, on_page_end, s };
  enum nrd_nv_rc rc = nrd_nv_list_instances(w->conn, NULL, &sink, NULL, &err);
  if (!nrd_snapshot_writer_finish(s->writer))
    s->store_failed = true;
  if (s->listings_started && (s->store_failed || rc != NRD_NV_OK)) {
    nrd_pool_wait_idle(ctx->runner->pool, 0); /* the listings point into the run's frame */
    for (int t = 0; t < 2; t++)
      nrd_jobs_free(s->listings[t].jobs, s->listings[t].n);
  }
  if (s->store_failed) {
    char store_reason[400];
    if (nrd_run_store_reason(ctx, store_reason, sizeof(store_reason)))
      nrd_report_defer_open_rows(ctx, w); /* the writer's SQL failed */
    else
      snprintf(msg, msglen, "storing instance snapshots failed: the service is stopping");
    return -1;
  }
  if (rc != NRD_NV_OK) {
    snprintf(msg, msglen, "listing instances failed: %s", err.message);
    return -1;
  }
  if (s->n)
    qsort(s->items, s->n, sizeof(*s->items), cmp_migrating);
  ctx->total_checked = (int)s->n;
  return 0;
}

void nrd_sync_free(struct sync_state *s)
{
  for (int t = 0; t < 2; t++) {
    nrd_jobs_free(s->jobs[t], s->n_jobs[t]);
    s->jobs[t] = NULL;
    s->n_jobs[t] = 0;
  }
  for (size_t i = 0; i < s->n; i++) {
    free(s->items[i].id);
    free(s->items[i].name);
  }
  free(s->items);
  s->items = NULL;
  s->n = s->cap = 0;
}
