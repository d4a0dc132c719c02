/* The runner: runs queued and joined, one at a time on the coordinator
 * thread (run.c sequences each), the worker pool for the rows, and the
 * read-side queries of the HTTP layer (plain data; src/http renders it). */
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_internal.h"
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
  bool watch_only;   /* the watch's rows only: no sync, no detection */
  int watch_found;   /* failed jobs the watch found for it */
  char **watch_jobs; /* their job ids (owned) */
  size_t n_watch_jobs;
  int64_t watch_seen_ms; /* when the watch began confirming their instances */
  int64_t requested_ms;  /* when it was asked for: its record's startedAt */
  struct waiter *waiters;
  struct queued_run *next;
};

/* ---- worker threads: one Novita connection and one store connection each ---- */

static int worker_open(struct nrd_runner *r, struct nrd_worker *w, char *err, size_t errlen)
{
  w->runner = r;
  w->conn = nrd_novita_conn_create(r->nv);
  const struct nrd_store_target db = nrd_store_target_of(r->cfg);
  if (nrd_store_open(&db, &w->store, NULL, err, errlen) != NRD_OK)
    return -1;
  return 0;
}

static void worker_close(struct nrd_worker *w)
{
  if (w->conn)
    nrd_novita_conn_destroy(w->conn);
  if (w->store)
    nrd_store_close(w->store);
  w->conn = NULL;
  w->store = NULL;
}

static void *pool_thread_init(void *ctx)
{
  char err[256];
  struct nrd_worker *w = nrd_xcalloc(1, sizeof(*w));
  if (worker_open(ctx, w, err, sizeof(err)) != 0) {
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

/* ---- the coordinator ---- */

/* Tells each waiter how the run ended, and frees the list. The one place
 * waiters are told (the run's end, or its cancelling at shutdown). */
static void notify_waiters(struct waiter *wt, const struct nrd_run_result *res)
{
  while (wt) {
    struct waiter *next = wt->next;
    if (wt->fn)
      wt->fn(wt->ud, res);
    free(wt);
    wt = next;
  }
}

/* The run's end: the runner is free again, and its waiters are told. */
static void end_run(struct nrd_runner *r, struct queued_run *q, const struct nrd_run_result *res)
{
  pthread_mutex_lock(&r->lock);
  struct waiter *wt = q->waiters;
  q->waiters = NULL;
  r->current = NULL;
  atomic_store(&r->running, false);
  pthread_mutex_unlock(&r->lock);
  notify_waiters(wt, res);
}

static void run_ctx_free(struct run_ctx *ctx)
{
  nrd_buf_cleanup(&ctx->outcomes);
  for (struct product_entry *e = ctx->products; e;) {
    struct product_entry *next = e->next;
    free(e->name);
    free(e->region);
    free(e->product_id);
    free(e);
    e = next;
  }
  for (struct capacity_entry *e = ctx->capacity; e;) {
    struct capacity_entry *next = e->next;
    free(e->product);
    free(e->cluster);
    free(e->billing);
    free(e->product_id);
    free(e);
    e = next;
  }
  nrd_clusters_free(ctx->clusters, ctx->n_clusters);
  pthread_cond_destroy(&ctx->product_cond);
  pthread_mutex_destroy(&ctx->lock);
}

/* Runs q. store_down: the run lock could not be asked for; the run fails
 * as when the store is down, with nothing sent to Novita. */
static void run_one(struct nrd_runner *r, struct queued_run *q, bool store_down)
{
  struct run_ctx ctx = { .runner = r,
                         .trigger = q->trigger,
                         .dry_run = q->dry_run,
                         .watch_only = q->watch_only,
                         .failed_found = q->watch_found,
                         .watch_jobs = q->watch_jobs,
                         .n_watch_jobs = q->n_watch_jobs,
                         .sync_started_ms = q->watch_seen_ms };
  char *result_json = NULL, *error_message = NULL;
  bool completed = false;

  memcpy(ctx.run_id, q->id, sizeof(ctx.run_id));
  ctx.started_ms = nrd_now_ms();
  ctx.deadline_mono_ms = nrd_mono_ms() + (int64_t)r->cfg->run_deadline_seconds * 1000;
  ctx.outcome = nrd_report_add_outcome;
  nrd_buf_init(&ctx.outcomes);
  pthread_mutex_init(&ctx.lock, NULL);
  pthread_cond_init(&ctx.product_cond, NULL);
  if (store_down)
    nrd_run_store_failed(&ctx, r->coord.store);

  nrd_run_execute(r, &ctx, &result_json, &completed, &error_message);
  int64_t finished = nrd_now_ms();
  const char *state = completed ? "done" : "failed";
  if (nrd_store_run_finish(r->coord.store, ctx.run_id, state, result_json, finished) != NRD_OK)
    LOG_ERROR("could not record the run's end", "runId", ctx.run_id);
  nrd_store_release_memory(r->coord.store); /* the report's pages */
  nrd_metrics_run(nrd_trigger_name(ctx.trigger), state);
  nrd_metrics_run_timing(state, finished, finished - ctx.started_ms);
  nrd_report_event(&ctx, r->coord.store, state, completed, finished);
  int64_t pruned = 0;
  int64_t cutoff = finished - (int64_t)r->cfg->retention_days * 86400 * 1000;
  if (nrd_store_prune(r->coord.store, cutoff, &pruned) == NRD_OK && pruned > 0)
    LOG_INFO("pruned old records", "#deleted", NRD_I64(pruned));

  struct nrd_run_result res = {
    .run_id = ctx.run_id,
    .completed = completed,
    .store_failed = ctx.store_failed,
    .error_message = error_message,
    .result_json = result_json,
    .started_ms = ctx.started_ms,
    .finished_ms = finished,
    .errors = ctx.errors,
  };
  end_run(r, q, &res);
  free(result_json);
  free(error_message);
  run_ctx_free(&ctx);
}

static void queued_free(struct queued_run *q)
{
  for (size_t i = 0; i < q->n_watch_jobs; i++)
    free(q->watch_jobs[i]);
  free(q->watch_jobs);
  free(q);
}

/* Tells the waiters of a run that never started (shutdown). */
static void cancel_queued(struct queued_run *q)
{
  struct nrd_run_result res = { .run_id = q->id,
                                .completed = false,
                                .error_message = "service is shutting down",
                                .result_json = "{}" };
  notify_waiters(q->waiters, &res);
  q->waiters = NULL;
  queued_free(q);
}

/* The run's record (state running), written by the coordinator when it
 * takes the run: the thread that asked for it (HTTP, scheduler, watch)
 * never waits on a store write. Until then runs/{id} answers from the
 * queue (nrd_runner_run_record). */
static void record_run(struct nrd_runner *r, const struct queued_run *q)
{
  if (nrd_store_run_insert(r->coord.store, q->id, nrd_trigger_name(q->trigger), q->dry_run,
                           q->requested_ms) != NRD_OK)
    LOG_ERROR("could not record a new run", "runId", q->id);
}

/* Ends q as the other replica's run it joined (nrd_run_lock_take): its
 * waiters get that run's report; its record, the same state and a report
 * that names that run (joinedRunId). Nothing was sent to Novita for it, and
 * its run.completed event is the joined run's. */
static void join_other(struct nrd_runner *r, struct queued_run *q,
                       const struct nrd_run_record *other)
{
  int errors = 0;
  char *report = nrd_run_lock_joined_report(other, q->id, &errors);
  LOG_INFO("run joined another replica's run", "runId", q->id, "joinedRunId", other->run_id);
  record_run(r, q);
  if (nrd_store_run_finish(r->coord.store, q->id, other->state, report, nrd_now_ms()) != NRD_OK)
    LOG_ERROR("could not record the run's end", "runId", q->id);
  struct nrd_run_result res = {
    .run_id = other->run_id,
    .completed = true,
    .result_json = other->report_json,
    .started_ms = other->started_ms,
    .finished_ms = other->finished_ms,
    .errors = errors,
  };
  end_run(r, q, &res);
  free(report);
}

/* Ends q unrun: the runner stopped while it waited for the run lock. */
static void end_unrun(struct nrd_runner *r, struct queued_run *q)
{
  record_run(r, q);
  nrd_store_run_finish(r->coord.store, q->id, "failed", "{}", nrd_now_ms());
  struct nrd_run_result res = { .run_id = q->id,
                                .completed = false,
                                .error_message = "service is shutting down",
                                .result_json = "{}" };
  end_run(r, q, &res);
}

/* Takes the cluster's run lock (runlock.c), then records and runs q, or
 * ends it as the run it joined. Its record is written only once the lock
 * is held: a replica that waits for it never looks like its holder. Until
 * then runs/{id} answers from r->current (nrd_runner_run_record). */
static void take_run(struct nrd_runner *r, struct queued_run *q)
{
  struct nrd_run_record other;
  enum run_lock_rc rc = nrd_run_lock_take(r, q->dry_run, q->n_watch_jobs == 0, &other);
  if (rc == RUN_LOCK_JOIN) {
    join_other(r, q, &other);
  } else if (rc == RUN_LOCK_STOPPED) {
    end_unrun(r, q);
  } else {
    record_run(r, q);
    run_one(r, q, rc == RUN_LOCK_STORE_DOWN);
    if (rc == RUN_LOCK_HELD)
      nrd_run_lock_release(r);
  }
  nrd_run_record_cleanup(&other);
}

static void *coordinator_main(void *arg)
{
  struct nrd_runner *r = arg;
  pthread_mutex_lock(&r->lock);
  for (;;) {
    while (!r->stopping && !r->queue)
      pthread_cond_wait(&r->cond, &r->lock);
    if (r->stopping)
      break;
    struct queued_run *q = r->queue;
    r->queue = q->next;
    r->current = q;
    atomic_store(&r->running, true);
    pthread_mutex_unlock(&r->lock);
    take_run(r, q);
    queued_free(q);
    pthread_mutex_lock(&r->lock);
  }
  struct queued_run *q = r->queue;
  r->queue = NULL;
  pthread_mutex_unlock(&r->lock);
  while (q) {
    struct queued_run *next = q->next;
    record_run(r, q);
    nrd_store_run_finish(r->coord.store, q->id, "failed", "{}", nrd_now_ms());
    cancel_queued(q);
    q = next;
  }
  return NULL;
}

/* The watch's part of a run request. */
struct watch_part {
  bool only; /* a watch run over these rows alone */
  const char *const *jobs;
  size_t n;
  int64_t seen_ms;
};

/* Adds the watch's rows to q (a watch run over them). */
static void watch_add(struct queued_run *q, const struct watch_part *wp)
{
  q->watch_jobs = nrd_xrealloc(q->watch_jobs, (q->n_watch_jobs + wp->n + 1) * sizeof(char *));
  for (size_t i = 0; i < wp->n; i++)
    q->watch_jobs[q->n_watch_jobs++] = nrd_xstrdup(wp->jobs[i]);
  q->watch_found += (int)wp->n;
  if (!q->watch_seen_ms || wp->seen_ms < q->watch_seen_ms)
    q->watch_seen_ms = wp->seen_ms;
}

/* A run that may join: the current one, else a queued one with the same
 * dry-run setting. Any other caller joining a queued watch run makes it a
 * full run (it asked for the sync); a watch request joins any queued run (a
 * full run covers its rows). */
static struct queued_run *joinable(struct nrd_runner *r, bool dry_run, const struct watch_part *wp)
{
  struct queued_run *q = NULL;
  /* Not the watch: a run under way may be past reading the ledger. */
  if (r->current && r->current->dry_run == dry_run && !wp)
    return r->current;
  for (struct queued_run *it = r->queue; !q && it; it = it->next)
    if (it->dry_run == dry_run)
      q = it;
  if (q && (!wp || !wp->only))
    q->watch_only = false;
  else if (q && q->watch_only)
    watch_add(q, wp);
  return q;
}

static int request_run(struct nrd_runner *r, enum nrd_trigger trigger, bool dry_run,
                       const struct watch_part *wp, nrd_run_done_fn done, void *ud, char run_id[64])
{
  struct waiter *wt = nrd_xcalloc(1, sizeof(*wt));
  struct queued_run *q = NULL;
  bool fresh = false;
  wt->fn = done;
  wt->ud = ud;

  pthread_mutex_lock(&r->lock);
  if (r->stopping) {
    pthread_mutex_unlock(&r->lock);
    free(wt);
    return -1;
  }
  q = joinable(r, dry_run, wp);
  if (!q) {
    struct queued_run **tail = &r->queue;
    q = nrd_xcalloc(1, sizeof(*q));
    nrd_make_id("run", q->id);
    q->trigger = trigger;
    q->dry_run = dry_run;
    q->requested_ms = nrd_now_ms();
    q->watch_only = wp && wp->only;
    if (q->watch_only)
      watch_add(q, wp);
    while (*tail)
      tail = &(*tail)->next;
    *tail = q;
    fresh = true;
  }
  wt->next = q->waiters;
  q->waiters = wt;
  memcpy(run_id, q->id, 64);
  if (fresh)
    pthread_cond_signal(&r->cond); /* the coordinator records it (record_run) */
  pthread_mutex_unlock(&r->lock);
  return 0;
}

int nrd_runner_request(struct nrd_runner *r, enum nrd_trigger trigger, bool dry_run,
                       nrd_run_done_fn done, void *ud, char run_id[64])
{
  return request_run(r, trigger, dry_run, NULL, done, ud, run_id);
}

int nrd_runner_request_watch(struct nrd_runner *r, bool dry_run, bool watch_only,
                             const char *const *job_ids, size_t n, int64_t seen_ms, char run_id[64])
{
  struct watch_part wp = { .only = watch_only, .jobs = job_ids, .n = n, .seen_ms = seen_ms };
  return request_run(r, NRD_TRIGGER_WATCH, dry_run, &wp, NULL, NULL, run_id);
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
  struct sync_wait sw = { .status = 2 };
  char id[64];
  pthread_mutex_init(&sw.lock, NULL);
  pthread_cond_init(&sw.cond, NULL);
  *result_json = NULL;
  *error_message = NULL;
  if (nrd_runner_request(r, trigger, dry_run, sync_done, &sw, id) != 0) {
    *error_message = nrd_xstrdup("service is shutting down");
    goto out;
  }
  pthread_mutex_lock(&sw.lock);
  while (!sw.done)
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
  return atomic_load(&r->running);
}

struct nrd_runner *nrd_runner_create(const struct nrd_config *cfg, struct nrd_novita *nv, char *err,
                                     size_t errlen)
{
  struct nrd_runner *r = nrd_xcalloc(1, sizeof(*r));
  struct nrd_store *follow_store = NULL, *control_store = NULL;
  const struct nrd_store_target db = nrd_store_target_of(cfg);
  char host[64] = "host";
  char rnd[64];

  r->cfg = cfg;
  r->nv = nv;
  nrd_recovery_set_statuses(cfg->recover_statuses);
  gethostname(host, sizeof(host) - 1);
  nrd_make_id("w", rnd);
  snprintf(r->owner, sizeof(r->owner), "%s:%ld:%s", host, (long)getpid(), rnd + 2);
  pthread_mutex_init(&r->lock, NULL);
  nrd_cond_init_mono(&r->cond); /* the run lock's waits are timed */
  pthread_mutex_init(&r->query_lock, NULL);
  nrd_lease_init(r);
  atomic_init(&r->running, false);
  atomic_init(&r->stop_work, false);

  /* The coordinator's connection applies the migrations first. */
  if (worker_open(r, &r->coord, err, errlen) != 0)
    goto fail;
  if (nrd_store_open(&db, &r->query_store, NULL, err, errlen) != NRD_OK)
    goto fail;
  /* Every thread's connection is opened here, before any thread starts:
   * none can race a change of the file (and create a new one) later. */
  if (nrd_store_open(&db, &r->lease_store, NULL, err, errlen) != NRD_OK ||
      nrd_store_open(&db, &follow_store, NULL, err, errlen) != NRD_OK ||
      nrd_store_open(&db, &control_store, NULL, err, errlen) != NRD_OK)
    goto fail;
  nrd_runner_startup_checks(r);
  nrd_store_run_fail_stale(r->coord.store, nrd_now_ms());

  r->pool = nrd_pool_create(cfg->migration_max_concurrent, NRD_POOL_QUEUE_BOUND, pool_thread_init,
                            pool_thread_fini, r);
  if (!r->pool) {
    snprintf(err, errlen, "the workers could not open the database");
    goto fail;
  }
  if (nrd_lease_start(r) != 0 || pthread_create(&r->thread, NULL, coordinator_main, r) != 0) {
    snprintf(err, errlen, "could not start the runner threads");
    abort(); /* threads are a resource we cannot run without */
  }
  nrd_follow_start(r, follow_store);
  nrd_control_start(r, control_store);
  return r;

fail:
  worker_close(&r->coord);
  if (r->query_store)
    nrd_store_close(r->query_store);
  if (r->lease_store)
    nrd_store_close(r->lease_store);
  if (follow_store)
    nrd_store_close(follow_store);
  if (control_store)
    nrd_store_close(control_store);
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

void nrd_runner_halt(struct nrd_runner *r)
{
  if (!r || r->halted)
    return;
  r->halted = true;
  atomic_store(&r->stop_work, true);
  nrd_control_stop(r); /* the operator's writes asked for are done first */
  nrd_follow_stop(r);
  nrd_flag_raise(&r->lock, &r->cond, &r->stopping);
  pthread_join(r->thread, NULL);
  nrd_lease_stop(r);
}

void nrd_runner_destroy(struct nrd_runner *r)
{
  if (!r)
    return;
  nrd_runner_halt(r);
  nrd_control_free(r);
  nrd_pool_destroy(r->pool);
  worker_close(&r->coord);
  nrd_store_close(r->query_store);
  pthread_mutex_destroy(&r->query_lock);
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* ---- queries ---- */

/* A run asked for and not yet recorded by the coordinator: its record as
 * the store will have it (state running). NRD_NONE when none such. */
static int queued_record(struct nrd_runner *r, const char *run_id, struct nrd_run_record *out)
{
  int rc = NRD_NONE;
  pthread_mutex_lock(&r->lock);
  struct queued_run *q = r->current && !strcmp(r->current->id, run_id) ? r->current : NULL;
  for (struct queued_run *it = r->queue; !q && it; it = it->next)
    if (!strcmp(it->id, run_id))
      q = it;
  if (q) {
    *out = (struct nrd_run_record){ .run_id = nrd_xstrdup(q->id),
                                    .trigger = nrd_xstrdup(nrd_trigger_name(q->trigger)),
                                    .state = nrd_xstrdup("running"),
                                    .dry_run = q->dry_run,
                                    .started_ms = q->requested_ms };
    rc = NRD_OK;
  }
  pthread_mutex_unlock(&r->lock);
  return rc;
}

static int store_record(struct nrd_runner *r, const char *run_id, struct nrd_run_record *out)
{
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_run_get(r->query_store, run_id, out);
  pthread_mutex_unlock(&r->query_lock);
  return rc;
}

int nrd_runner_run_record(struct nrd_runner *r, const char *run_id, struct nrd_run_record *out)
{
  /* The store first, then the queue, then the store again: a run leaves the
   * queue only after its end is recorded, and is recorded before it ends. */
  int rc = store_record(r, run_id, out);
  if (rc == NRD_NONE)
    rc = queued_record(r, run_id, out);
  if (rc == NRD_NONE)
    rc = store_record(r, run_id, out);
  return rc;
}

int nrd_runner_recoveries(struct nrd_runner *r, int state, size_t limit,
                          struct nrd_ledger_row **rows, size_t *n)
{
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_list(r->query_store, state, limit, rows, n);
  pthread_mutex_unlock(&r->query_lock);
  return rc;
}

int nrd_runner_events(struct nrd_runner *r, const char *since, size_t limit,
                      struct nrd_event **events, size_t *n)
{
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_event_list(r->query_store, since, limit, events, n);
  pthread_mutex_unlock(&r->query_lock);
  return rc;
}

int nrd_runner_count_states(struct nrd_runner *r, int64_t counts[NRD_ROW_STATE_COUNT])
{
  pthread_mutex_lock(&r->query_lock);
  int rc = nrd_store_ledger_count_by_state(r->query_store, counts);
  pthread_mutex_unlock(&r->query_lock);
  return rc;
}
