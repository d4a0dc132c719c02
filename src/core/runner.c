/* The run coordinator: one run at a time, callers join, a worker pool for the
 * rows, a lease keeper, and the read-side queries of the HTTP layer. */
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/recovery.h"
#include "nrd/util.h"

struct waiter {
  nrd_run_done_fn fn;
  void *ud;
  struct waiter *next;
};

struct queued_run {
  char id[64];
  enum nrd_trigger trigger;
  bool dry_run;
  bool watch_only;         /* the watch's rows only: no sync, no detection */
  int watch_found;         /* failed jobs the watch found for it */
  char **watch_jobs;       /* their job ids (owned) */
  size_t n_watch_jobs;
  int64_t watch_seen_ms;   /* when the watch began confirming their instances */
  struct waiter *waiters;
  struct queued_run *next;
};

const char *nrd_trigger_name(enum nrd_trigger t)
{
  switch(t) {
  case NRD_TRIGGER_API: return "api";
  case NRD_TRIGGER_SCHEDULER: return "scheduler";
  case NRD_TRIGGER_CLI: return "cli";
  case NRD_TRIGGER_WATCH: return "watch";
  }
  return "unknown";
}

/* ---- worker threads: one Novita connection and one store connection each ---- */

static int worker_open(struct nrd_runner *r, struct nrd_worker *w, char *err, size_t errlen)
{
  w->runner = r;
  w->conn = nrd_novita_conn_create(r->nv);
  if(nrd_store_open(r->cfg->database_path, &w->store, NULL, err, errlen) != NRD_OK)
    return -1;
  return 0;
}

static void worker_close(struct nrd_worker *w)
{
  if(w->conn)
    nrd_novita_conn_destroy(w->conn);
  if(w->store)
    nrd_store_close(w->store);
  w->conn = NULL;
  w->store = NULL;
}

static void *pool_thread_init(void *ctx)
{
  char err[256];
  struct nrd_worker *w = nrd_xcalloc(1, sizeof(*w));
  if(worker_open(ctx, w, err, sizeof(err)) != 0) {
    /* The coordinator opened the same file a moment ago: the disk, or the
     * file moved away since; the runner does not start. */
    LOG_ERROR("worker could not open the database", "error", err);
    worker_close(w);
    free(w);
    return NULL;
  }
  return w;
}

static void pool_thread_fini(void *worker_ctx)
{
  worker_close(worker_ctx);
  free(worker_ctx);
}

/* ---- lease keeper ---- */

void nrd_runner_hold(struct nrd_runner *r, const char *job_id)
{
  pthread_mutex_lock(&r->lease_lock);
  if(r->n_active == r->cap_active) {
    r->cap_active = r->cap_active ? r->cap_active * 2 : 16;
    r->active = nrd_xrealloc(r->active, r->cap_active * sizeof(*r->active));
  }
  r->active[r->n_active++] = nrd_xstrdup(job_id);
  pthread_mutex_unlock(&r->lease_lock);
}

void nrd_runner_unhold(struct nrd_runner *r, const char *job_id)
{
  pthread_mutex_lock(&r->lease_lock);
  for(size_t i = 0; i < r->n_active; i++) {
    if(!strcmp(r->active[i], job_id)) {
      free(r->active[i]);
      r->active[i] = r->active[--r->n_active];
      break;
    }
  }
  pthread_mutex_unlock(&r->lease_lock);
}

static void *lease_main(void *arg)
{
  struct nrd_runner *r = arg;
  struct nrd_store *st = r->lease_store;
  int64_t lease_ms = (int64_t)r->cfg->recovery_lease_seconds * 1000;

  pthread_mutex_lock(&r->lease_lock);
  while(!r->lease_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wake = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + lease_ms / 3;
    ts.tv_sec = (time_t)(wake / 1000);
    ts.tv_nsec = (long)(wake % 1000) * 1000000;
    pthread_cond_timedwait(&r->lease_cond, &r->lease_lock, &ts);
    if(r->lease_stop)
      break;
    /* Copy the ids so no store call happens under the lock. */
    size_t n = r->n_active;
    char **ids = nrd_xcalloc(n ? n : 1, sizeof(*ids));
    for(size_t i = 0; i < n; i++)
      ids[i] = nrd_xstrdup(r->active[i]);
    pthread_mutex_unlock(&r->lease_lock);
    for(size_t i = 0; i < n; i++) {
      nrd_store_ledger_renew(st, ids[i], r->owner, nrd_now_ms() + lease_ms);
      free(ids[i]);
    }
    free(ids);
    pthread_mutex_lock(&r->lease_lock);
  }
  pthread_mutex_unlock(&r->lease_lock);
  return NULL;
}

/* ---- the coordinator ---- */

/* The run.completed event for the outbox: the report's counts. */
static void record_completed(struct nrd_runner *r, struct run_ctx *ctx, const char *state,
                             bool completed, int64_t finished_ms)
{
  char id[64], at[32];
  cJSON *body = cJSON_CreateObject();
  if(!body)
    abort();
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
  nrd_json_add_num(d, "totalChecked", ctx->total_checked);
  nrd_json_add_num(d, "failedJobsFound", ctx->failed_found);
  nrd_json_add_num(d, "instancesRecreated", ctx->recreated);
  nrd_json_add_num(d, "errors", ctx->errors);
  nrd_json_add_num(d, "deferred", ctx->deferred);
  pthread_mutex_unlock(&ctx->lock);
  struct nrd_event ev = {.id = id, .type = "run.completed", .created_ms = finished_ms,
                         .state = "pending"};
  ev.body_json = nrd_json_print(body);
  if(nrd_store_event_insert(r->coord.store, &ev) != NRD_OK)
    LOG_ERROR("could not record the run.completed event", "runId", ctx->run_id);
  else if(r->event_hook)
    r->event_hook(r->event_hook_ud);
  free(ev.body_json);
  cJSON_Delete(body);
}

static void run_one(struct nrd_runner *r, struct queued_run *q)
{
  struct run_ctx ctx = {.runner = r, .trigger = q->trigger, .dry_run = q->dry_run,
                        .watch_only = q->watch_only, .failed_found = q->watch_found,
                        .watch_jobs = q->watch_jobs, .n_watch_jobs = q->n_watch_jobs,
                        .sync_started_ms = q->watch_seen_ms};
  char *result_json = NULL, *error_message = NULL;
  bool completed = false;

  memcpy(ctx.run_id, q->id, sizeof(ctx.run_id));
  ctx.started_ms = nrd_now_ms();
  ctx.deadline_mono_ms = nrd_mono_ms() + (int64_t)r->cfg->run_deadline_seconds * 1000;
  nrd_buf_init(&ctx.outcomes);
  pthread_mutex_init(&ctx.lock, NULL);
  pthread_cond_init(&ctx.product_cond, NULL);

  nrd_run_execute(r, &ctx, &result_json, &completed, &error_message);
  int64_t finished = nrd_now_ms();
  const char *state = completed ? "done" : "failed";
  if(nrd_store_run_finish(r->coord.store, ctx.run_id, state, result_json, finished) != NRD_OK)
    LOG_ERROR("could not record the run's end", "runId", ctx.run_id);
  nrd_store_release_memory(r->coord.store);  /* the report's pages */
  nrd_metrics_run(nrd_trigger_name(ctx.trigger), state);
  nrd_metrics_run_timing(state, finished, finished - ctx.started_ms);
  record_completed(r, &ctx, state, completed, finished);
  int64_t pruned = 0;
  int64_t cutoff = finished - (int64_t)r->cfg->retention_days * 86400 * 1000;
  if(nrd_store_prune(r->coord.store, cutoff, &pruned) == NRD_OK && pruned > 0)
    LOG_INFO("pruned old records", "#deleted", NRD_I64(pruned));

  struct nrd_run_result res = {
    .run_id = ctx.run_id, .completed = completed, .store_failed = ctx.store_failed,
    .error_message = error_message,
    .result_json = result_json, .started_ms = ctx.started_ms, .finished_ms = finished,
    .errors = ctx.errors,
  };
  pthread_mutex_lock(&r->lock);
  struct waiter *wt = q->waiters;
  q->waiters = NULL;
  r->current = NULL;
  pthread_mutex_unlock(&r->lock);
  while(wt) {
    struct waiter *next = wt->next;
    if(wt->fn)
      wt->fn(wt->ud, &res);
    free(wt);
    wt = next;
  }

  free(result_json);
  free(error_message);
  nrd_buf_cleanup(&ctx.outcomes);
  for(struct product_entry *e = ctx.products; e;) {
    struct product_entry *next = e->next;
    free(e->name);
    free(e->region);
    free(e->product_id);
    free(e);
    e = next;
  }
  for(struct capacity_entry *e = ctx.capacity; e;) {
    struct capacity_entry *next = e->next;
    free(e->product);
    free(e->cluster);
    free(e->billing);
    free(e->product_id);
    free(e);
    e = next;
  }
  nrd_clusters_free(ctx.clusters, ctx.n_clusters);
  pthread_cond_destroy(&ctx.product_cond);
  pthread_mutex_destroy(&ctx.lock);
}

static void queued_free(struct queued_run *q)
{
  for(size_t i = 0; i < q->n_watch_jobs; i++)
    free(q->watch_jobs[i]);
  free(q->watch_jobs);
  free(q);
}

/* Tells the waiters of a run that never started (shutdown). */
static void cancel_queued(struct queued_run *q)
{
  struct nrd_run_result res = {.run_id = q->id, .completed = false,
                               .error_message = "service is shutting down",
                               .result_json = "{}"};
  for(struct waiter *wt = q->waiters; wt;) {
    struct waiter *next = wt->next;
    if(wt->fn)
      wt->fn(wt->ud, &res);
    free(wt);
    wt = next;
  }
  queued_free(q);
}

static void *coordinator_main(void *arg)
{
  struct nrd_runner *r = arg;
  pthread_mutex_lock(&r->lock);
  for(;;) {
    while(!r->stopping && !r->queue)
      pthread_cond_wait(&r->cond, &r->lock);
    if(r->stopping)
      break;
    struct queued_run *q = r->queue;
    r->queue = q->next;
    r->current = q;
    pthread_mutex_unlock(&r->lock);
    run_one(r, q);
    queued_free(q);
    pthread_mutex_lock(&r->lock);
  }
  struct queued_run *q = r->queue;
  r->queue = NULL;
  pthread_mutex_unlock(&r->lock);
  while(q) {
    struct queued_run *next = q->next;
    nrd_store_run_finish(r->coord.store, q->id, "failed", "{}", nrd_now_ms());
    cancel_queued(q);
    q = next;
  }
  return NULL;
}

/* The watch's part of a run request. */
struct watch_part {
  bool only;                 /* a watch run over these rows alone */
  const char *const *jobs;
  size_t n;
  int64_t seen_ms;
};

/* Adds the watch's rows to q (a watch run over them). */
static void watch_add(struct queued_run *q, const struct watch_part *wp)
{
  q->watch_jobs = nrd_xrealloc(q->watch_jobs, (q->n_watch_jobs + wp->n + 1) * sizeof(char *));
  for(size_t i = 0; i < wp->n; i++)
    q->watch_jobs[q->n_watch_jobs++] = nrd_xstrdup(wp->jobs[i]);
  q->watch_found += (int)wp->n;
  if(!q->watch_seen_ms || wp->seen_ms < q->watch_seen_ms)
    q->watch_seen_ms = wp->seen_ms;
}

/* A run that may join: the current one, else a queued one with the same
 * dry-run setting. Any other caller joining a queued watch run makes it a
 * full run (it asked for the sync); a watch request joins any queued run (a
 * full run covers its rows). */
static struct queued_run *joinable(struct nrd_runner *r, bool dry_run,
                                   const struct watch_part *wp)
{
  struct queued_run *q = NULL;
  /* Not the watch: a run under way may be past reading the ledger. */
  if(r->current && r->current->dry_run == dry_run && !wp)
    return r->current;
  for(struct queued_run *it = r->queue; !q && it; it = it->next)
    if(it->dry_run == dry_run)
      q = it;
  if(q && (!wp || !wp->only))
    q->watch_only = false;
  else if(q && q->watch_only)
    watch_add(q, wp);
  return q;
}

static int request(struct nrd_runner *r, enum nrd_trigger trigger, bool dry_run,
                   const struct watch_part *wp, nrd_run_done_fn done, void *ud,
                   char run_id[64])
{
  struct waiter *wt = nrd_xcalloc(1, sizeof(*wt));
  struct queued_run *q = NULL;
  bool fresh = false;
  wt->fn = done;
  wt->ud = ud;

  pthread_mutex_lock(&r->lock);
  if(r->stopping) {
    pthread_mutex_unlock(&r->lock);
    free(wt);
    return -1;
  }
  q = joinable(r, dry_run, wp);
  if(!q) {
    struct queued_run **tail = &r->queue;
    q = nrd_xcalloc(1, sizeof(*q));
    nrd_make_id("run", q->id);
    q->trigger = trigger;
    q->dry_run = dry_run;
    q->watch_only = wp && wp->only;
    if(q->watch_only)
      watch_add(q, wp);
    while(*tail)
      tail = &(*tail)->next;
    *tail = q;
    fresh = true;
  }
  wt->next = q->waiters;
  q->waiters = wt;
  memcpy(run_id, q->id, 64);
  if(fresh) {
    /* Recorded before the coordinator can see it, so runs/{id} answers at once. */
    pthread_mutex_lock(&r->query_lock);
    if(nrd_store_run_insert(r->query_store, q->id, nrd_trigger_name(trigger), dry_run,
                            nrd_now_ms()) != NRD_OK)
      LOG_ERROR("could not record a new run", "runId", q->id);
    pthread_mutex_unlock(&r->query_lock);
    pthread_cond_signal(&r->cond);
  }
  pthread_mutex_unlock(&r->lock);
  return 0;
}

int nrd_runner_request(struct nrd_runner *r, enum nrd_trigger trigger, bool dry_run,
                       nrd_run_done_fn done, void *ud, char run_id[64])
{
  return request(r, trigger, dry_run, NULL, done, ud, run_id);
}

int nrd_runner_request_watch(struct nrd_runner *r, bool dry_run, bool watch_only,
                             const char *const *job_ids, size_t n, int64_t seen_ms,
                             char run_id[64])
{
  struct watch_part wp = {.only = watch_only, .jobs = job_ids, .n = n, .seen_ms = seen_ms};
  return request(r, NRD_TRIGGER_WATCH, dry_run, &wp, NULL, NULL, run_id);
}

struct sync_wait {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int status;
  char *result_json, *error_message;
};

static void sync_done(void *ud, const struct nrd_run_result *res)
{
  struct sync_wait *sw = ud;
  pthread_mutex_lock(&sw->lock);
  sw->result_json = nrd_xstrdup(res->result_json);
  sw->error_message = nrd_xstrdup(res->error_message);
  sw->status = !res->completed ? 2 : res->errors > 0 ? 1 : 0;
  sw->done = true;
  pthread_cond_signal(&sw->cond);
  pthread_mutex_unlock(&sw->lock);
}

int nrd_runner_run_sync(struct nrd_runner *r, enum nrd_trigger trigger, bool dry_run,
                        char **result_json, char **error_message)
{
  struct sync_wait sw = {.status = 2};
  char id[64];
  pthread_mutex_init(&sw.lock, NULL);
  pthread_cond_init(&sw.cond, NULL);
  *result_json = NULL;
  *error_message = NULL;
  if(nrd_runner_request(r, trigger, dry_run, sync_done, &sw, id) != 0) {
    *error_message = nrd_xstrdup("service is shutting down");
    goto out;
  }
  pthread_mutex_lock(&sw.lock);
  while(!sw.done)
    pthread_cond_wait(&sw.cond, &sw.lock);
  pthread_mutex_unlock(&sw.lock);
  *result_json = sw.result_json;
  *error_message = sw.error_message;
out:
  pthread_cond_destroy(&sw.cond);
  pthread_mutex_destroy(&sw.lock);
  return sw.status;
}

bool nrd_runner_busy(struct nrd_runner *r)
{
  pthread_mutex_lock(&r->lock);
  bool busy = r->current != NULL;
  pthread_mutex_unlock(&r->lock);
  return busy;
}

/* The file's identity for nrd_runner_db_file_ok, and PRAGMA quick_check:
 * a database that fails it keeps /ready at 503. */
static void startup_checks(struct nrd_runner *r)
{
  struct stat sb;
  char msg[300];
  if(stat(r->cfg->database_path, &sb) == 0) {
    r->db_dev = sb.st_dev;
    r->db_ino = sb.st_ino;
  }
  if(nrd_store_quick_check(r->query_store, msg, sizeof(msg)) != NRD_OK) {
    r->integrity_failed = true;
    LOG_ERROR("database integrity check failed (PRAGMA quick_check): /ready answers 503; "
              "restore the database from a backup", "path", r->cfg->database_path, "detail", msg);
  }
}

struct nrd_runner *nrd_runner_create(const struct nrd_config *cfg, struct nrd_novita *nv,
                                     char *err, size_t errlen)
{
  struct nrd_runner *r = nrd_xcalloc(1, sizeof(*r));
  struct nrd_store *follow_store = NULL;
  char host[64] = "host";
  char rnd[64];

  r->cfg = cfg;
  r->nv = nv;
  nrd_recovery_set_statuses(cfg->recover_statuses);
  gethostname(host, sizeof(host) - 1);
  nrd_make_id("w", rnd);
  snprintf(r->owner, sizeof(r->owner), "%s:%ld:%s", host, (long)getpid(), rnd + 2);
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  pthread_mutex_init(&r->query_lock, NULL);
  pthread_mutex_init(&r->lease_lock, NULL);
  pthread_cond_init(&r->lease_cond, NULL);
  atomic_init(&r->stop_work, false);

  /* The coordinator's connection applies the migrations first. */
  if(worker_open(r, &r->coord, err, errlen) != 0)
    goto fail;
  if(nrd_store_open(cfg->database_path, &r->query_store, NULL, err, errlen) != NRD_OK)
    goto fail;
  /* Every thread's connection is opened here, before any thread starts:
   * none can race a change of the file (and create a new one) later. */
  if(nrd_store_open(cfg->database_path, &r->lease_store, NULL, err, errlen) != NRD_OK ||
     nrd_store_open(cfg->database_path, &follow_store, NULL, err, errlen) != NRD_OK)
    goto fail;
  startup_checks(r);
  nrd_store_run_fail_stale(r->coord.store, nrd_now_ms());

  r->pool = nrd_pool_create(cfg->migration_max_concurrent, NRD_POOL_QUEUE_BOUND,
                            pool_thread_init, pool_thread_fini, r);
  if(!r->pool) {
    snprintf(err, errlen, "the workers could not open the database");
    goto fail;
  }
  if(pthread_create(&r->lease_thread, NULL, lease_main, r) != 0 ||
     pthread_create(&r->thread, NULL, coordinator_main, r) != 0) {
    snprintf(err, errlen, "could not start the runner threads");
    abort();  /* threads are a resource we cannot run without */
  }
  nrd_follow_start(r, follow_store);
  return r;

fail:
  worker_close(&r->coord);
  if(r->query_store)
    nrd_store_close(r->query_store);
  if(r->lease_store)
    nrd_store_close(r->lease_store);
  if(follow_store)
    nrd_store_close(follow_store);
  free(r);
  return NULL;
}

void nrd_runner_set_event_hook(struct nrd_runner *r, void (*fn)(void *ud), void *ud)
{
  r->event_hook = fn;
  r->event_hook_ud = ud;
}

void nrd_runner_stop(struct nrd_runner *r)
{
  atomic_store(&r->stop_work, true);
}

void nrd_runner_destroy(struct nrd_runner *r)
{
  if(!r)
    return;
  atomic_store(&r->stop_work, true);
  nrd_follow_stop(r);
  pthread_mutex_lock(&r->lock);
  r->stopping = true;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  pthread_join(r->thread, NULL);

  pthread_mutex_lock(&r->lease_lock);
  r->lease_stop = true;
  pthread_cond_broadcast(&r->lease_cond);
  pthread_mutex_unlock(&r->lease_lock);
  pthread_join(r->lease_thread, NULL);

  nrd_pool_destroy(r->pool);
  worker_close(&r->coord);
  nrd_store_close(r->query_store);
  nrd_store_close(r->lease_store);
  for(size_t i = 0; i < r->n_active; i++)
    free(r->active[i]);
  free(r->active);
  pthread_cond_destroy(&r->lease_cond);
  pthread_mutex_destroy(&r->lease_lock);
  pthread_mutex_destroy(&r->query_lock);
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* ---- queries ---- */

static cJSON *row_json(const struct nrd_ledger_row *row)
{
  char at[32];
  cJSON *o = cJSON_CreateObject();
  if(!o)
    abort();
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
  nrd_follow_row_json(o, row);
  nrd_iso8601(row->created_ms, at);
  nrd_json_add_str(o, "createdAt", at);
  nrd_iso8601(row->updated_ms, at);
  nrd_json_add_str(o, "updatedAt", at);
  return o;
}

int nrd_runner_get_run(struct nrd_runner *r, const char *run_id, char **json)
{
  struct nrd_run_record rec = {0};
  char at[32];
  *json = NULL;
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_run_get(r->query_store, run_id, &rec);
  pthread_mutex_unlock(&r->query_lock);
  if(rc != NRD_OK)
    return rc;
  cJSON *o = cJSON_CreateObject();
  if(!o)
    abort();
  nrd_json_add_str(o, "runId", rec.run_id);
  nrd_json_add_str(o, "state", rec.state);
  nrd_json_add_str(o, "trigger", rec.trigger);
  nrd_json_add_bool(o, "dryRun", rec.dry_run);
  nrd_iso8601(rec.started_ms, at);
  nrd_json_add_str(o, "startedAt", at);
  if(rec.finished_ms) {
    nrd_iso8601(rec.finished_ms, at);
    nrd_json_add_str(o, "finishedAt", at);
  } else {
    cJSON_AddNullToObject(o, "finishedAt");
  }
  cJSON *res = rec.report_json ? cJSON_Parse(rec.report_json) : NULL;
  cJSON_AddItemToObject(o, "result", res ? res : cJSON_CreateNull());
  *json = nrd_json_print(o);
  cJSON_Delete(o);
  nrd_run_record_cleanup(&rec);
  return NRD_OK;
}

int nrd_runner_list_recoveries(struct nrd_runner *r, const char *state, size_t limit, char **json)
{
  enum nrd_row_state st = NRD_ROW_PENDING;
  struct nrd_ledger_row *rows = NULL;
  size_t n = 0;
  *json = NULL;
  if(state && !nrd_row_state_parse(state, &st))
    return NRD_ERR;
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_list(r->query_store, state ? (int)st : -1, limit, &rows, &n);
  pthread_mutex_unlock(&r->query_lock);
  if(rc != NRD_OK)
    return rc;
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = cJSON_CreateArray();
  if(!o || !arr)
    abort();
  for(size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(arr, row_json(&rows[i]));
  cJSON_AddItemToObject(o, "recoveries", arr);
  nrd_json_add_num(o, "count", (double)n);
  *json = nrd_json_print(o);
  cJSON_Delete(o);
  nrd_ledger_rows_free(rows, n);
  return NRD_OK;
}

int nrd_runner_retry_recovery(struct nrd_runner *r, const char *job_id)
{
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_retry(r->query_store, job_id, nrd_now_ms());
  pthread_mutex_unlock(&r->query_lock);
  if(rc == NRD_OK)
    LOG_INFO("recovery re-opened by operator", "jobId", job_id);
  return rc;
}

int nrd_runner_abandon_recovery(struct nrd_runner *r, const char *job_id, const char *reason)
{
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_abandon(r->query_store, job_id,
                                    reason ? reason : "abandoned by operator", nrd_now_ms());
  pthread_mutex_unlock(&r->query_lock);
  if(rc == NRD_OK)
    LOG_INFO("recovery abandoned by operator", "jobId", job_id);
  return rc;
}

int nrd_runner_count_states(struct nrd_runner *r, int64_t counts[NRD_ROW_STATE_COUNT])
{
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_count_by_state(r->query_store, counts);
  pthread_mutex_unlock(&r->query_lock);
  return rc;
}

bool nrd_runner_db_file_ok(struct nrd_runner *r, char *why, size_t whylen)
{
  struct stat sb;
  if(stat(r->cfg->database_path, &sb) != 0)
    snprintf(why, whylen, "the database file %s was deleted or moved under the running service",
             r->cfg->database_path);
  else if(sb.st_dev != r->db_dev || sb.st_ino != r->db_ino)
    snprintf(why, whylen, "the database file %s was replaced under the running service "
             "(another inode)", r->cfg->database_path);
  else
    return true;
  if(!atomic_exchange(&r->db_file_logged, true))
    LOG_ERROR("database file changed: /ready answers 503 and runs stop until the file opened "
              "is back (or a restart)", "detail", why);
  return false;
}

/* Ready: the start-up integrity check passed, the file is the one opened,
 * it answers a read, and a write went through (probed at most once a
 * second). Called with query_lock held. */
static bool store_ready_locked(struct nrd_runner *r)
{
  char why[300];
  if(r->integrity_failed || !nrd_runner_db_file_ok(r, why, sizeof(why)))
    return false;
  if(nrd_store_ping(r->query_store) != NRD_OK)
    return false;
  int64_t now = nrd_mono_ms();
  if(r->probe_mono_ms == 0 || now - r->probe_mono_ms >= 1000) {
    bool was = r->probe_ok || r->probe_mono_ms == 0;
    r->probe_mono_ms = now;
    r->probe_ok = nrd_store_probe_write(r->query_store, nrd_now_ms()) == NRD_OK;
    if(!r->probe_ok && was)
      LOG_ERROR("the database cannot be written: /ready answers 503", "error",
                nrd_store_last_error(r->query_store));
    else if(r->probe_ok && !was)
      LOG_INFO("the database can be written again");
  }
  return r->probe_ok;
}

bool nrd_runner_store_ok(struct nrd_runner *r)
{
  pthread_mutex_lock(&r->query_lock);
  bool ok = store_ready_locked(r);
  pthread_mutex_unlock(&r->query_lock);
  return ok;
}

int nrd_runner_list_events(struct nrd_runner *r, const char *since, size_t limit, char **json)
{
  struct nrd_event *ev = NULL;
  size_t n = 0;
  char at[32];
  *json = NULL;
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_event_list(r->query_store, since, limit, &ev, &n);
  pthread_mutex_unlock(&r->query_lock);
  if(rc != NRD_OK)
    return rc;
  cJSON *o = cJSON_CreateObject();
  cJSON *arr = cJSON_CreateArray();
  if(!o || !arr)
    abort();
  for(size_t i = 0; i < n; i++) {
    cJSON *e = cJSON_CreateObject();
    if(!e)
      abort();
    nrd_json_add_str(e, "id", ev[i].id);
    nrd_json_add_str(e, "type", ev[i].type);
    nrd_iso8601(ev[i].created_ms, at);
    nrd_json_add_str(e, "createdAt", at);
    nrd_json_add_str(e, "state", ev[i].state);
    nrd_json_add_num(e, "attempts", ev[i].attempts);
    nrd_json_add_str(e, "lastError", ev[i].last_error);
    cJSON *body = ev[i].body_json ? cJSON_Parse(ev[i].body_json) : NULL;
    cJSON_AddItemToObject(e, "event", body ? body : cJSON_CreateNull());
    cJSON_AddItemToArray(arr, e);
  }
  cJSON_AddItemToObject(o, "events", arr);
  nrd_json_add_num(o, "count", (double)n);
  *json = nrd_json_print(o);
  cJSON_Delete(o);
  nrd_events_free(ev, n);
  return NRD_OK;
}
