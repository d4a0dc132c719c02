/* The watch loop: failed migration jobs seen within a tick of Novita saying
 * so, recovered by a run of trigger "watch" (nrd/watch.h). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/recovery.h"
#include "nrd/recreate.h"
#include "nrd/util.h"
#include "nrd/watch.h"

#define MAX_BACKOFF_SHIFT 4 /* a failing tick waits up to 16 intervals */
#define MAX_PENDING 1024    /* watched rows whose recovery time is still to come */

static const char *const TYPES[2] = { "instanceMigrate", "autoInstanceMigrate" };

/* A sorted set of job ids. */
struct idlist {
  char **ids;
  size_t n, cap;
};

/* A watched row whose replacement is not running yet. */
struct pending {
  char *job_id;
  int64_t failed_s;
  bool accepted; /* its create_accepted stage observed */
};

struct nrd_watch {
  const struct nrd_config *cfg;
  struct nrd_runner *runner;
  struct nrd_novita_conn *conn; /* the watch thread's own */
  struct nrd_store *store;
  pthread_t thread;
  pthread_mutex_t lock; /* guards the status fields and stopping */
  pthread_cond_t cond;
  bool stopping;
  atomic_bool paused;
  atomic_bool leader; /* false: another replica's watch ticks */

  struct idlist seen;   /* failed jobs known: ledger rows and let go */
  struct idlist let_go; /* looked at and not recovered (this process) */
  struct pending *pending;
  size_t n_pending;

  int64_t tick_started_ms; /* the watch thread's own */
  int64_t last_tick_ms, next_tick_ms;
  long ticks, detected;
  size_t failed_seen;
  unsigned failures; /* consecutive failed ticks */
  char last_error[256];
  char last_run_id[64];
};

/* A new failed job and what the checks found. */
struct candidate {
  const struct nrd_job *job; /* borrowed from the tick's listing */
  bool drop;                 /* not to be recovered (let go) */
  struct nrd_instance inst;
};

/* ---- id sets ---- */

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool idlist_has(const struct idlist *l, const char *id)
{
  return l->n && bsearch(&id, l->ids, l->n, sizeof(*l->ids), cmp_str) != NULL;
}

/* Appends (unsorted until idlist_sort). */
static void idlist_push(struct idlist *l, const char *id)
{
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->ids = nrd_xrealloc(l->ids, l->cap * sizeof(*l->ids));
  }
  l->ids[l->n++] = nrd_xstrdup(id);
}

static void idlist_sort(struct idlist *l)
{
  if (l->n)
    qsort(l->ids, l->n, sizeof(*l->ids), cmp_str);
}

static void idlist_free(struct idlist *l)
{
  for (size_t i = 0; i < l->n; i++)
    free(l->ids[i]);
  free(l->ids);
  memset(l, 0, sizeof(*l));
}

/* ---- one tick ---- */

static bool job_newer(const struct nrd_job *a, const struct nrd_job *b)
{
  if (a->created_at != b->created_at)
    return a->created_at > b->created_at;
  return strcmp(a->id, b->id) > 0;
}

/* Both types' jobs in state (NULL: any) from start_s to now. */
static enum nrd_nv_rc list_both(struct nrd_watch *w, const char *state, int64_t start_s,
                                struct nrd_job *jobs[2], size_t n[2], struct nrd_nv_error *err)
{
  int64_t end_s = nrd_now_ms() / 1000;
  for (int t = 0; t < 2; t++) {
    enum nrd_nv_rc rc =
        nrd_nv_list_jobs_in_state(w->conn, TYPES[t], state, start_s, end_s, &jobs[t], &n[t], err);
    if (rc != NRD_NV_OK)
      return rc;
  }
  return NRD_NV_OK;
}

/* What a tick keeps of the failed jobs it listed: the sets never outgrow
 * the look-back window. */
struct next_sets {
  struct idlist seen, let_go;
};

/* A failed job already seen: known in memory, or a ledger row; noted in
 * next. */
static bool known(struct nrd_watch *w, const char *job_id, struct next_sets *next)
{
  struct nrd_ledger_row row;
  if (idlist_has(&w->let_go, job_id)) {
    idlist_push(&next->let_go, job_id);
    return true;
  }
  if (!idlist_has(&w->seen, job_id)) {
    if (nrd_store_ledger_get(w->store, job_id, &row) != NRD_OK)
      return false;
    nrd_ledger_row_cleanup(&row);
  }
  idlist_push(&next->seen, job_id);
  return true;
}

/* The new failed jobs, the newest per instance (an older one is let go). */
static size_t collect(struct nrd_watch *w, struct nrd_job *jobs[2], size_t n[2],
                      struct candidate *c, struct next_sets *next)
{
  size_t nc = 0;
  for (int t = 0; t < 2; t++) {
    for (size_t i = 0; i < n[t]; i++) {
      const struct nrd_job *job = &jobs[t][i];
      if (!job->id || !job->instance_id || !job->state || strcmp(job->state, "fail"))
        continue;
      if (known(w, job->id, next))
        continue;
      size_t k = 0;
      while (k < nc && strcmp(c[k].job->instance_id, job->instance_id))
        k++;
      if (k == nc) {
        c[nc++] = (struct candidate){ .job = job };
      } else {
        /* Only the newest decides: the older failure is let go. */
        bool newer = job_newer(job, c[k].job);
        idlist_push(&next->let_go, newer ? c[k].job->id : job->id);
        if (newer)
          c[k].job = job;
      }
    }
  }
  return nc;
}

/* Drops the candidates whose instance has a newer migration job of any state
 * (it was migrated again after the failure). */
static enum nrd_nv_rc check_newest(struct nrd_watch *w, struct candidate *c, size_t nc,
                                   struct nrd_nv_error *err)
{
  struct nrd_job *jobs[2] = { NULL, NULL };
  size_t n[2] = { 0, 0 };
  int64_t from = c[0].job->created_at;
  for (size_t k = 1; k < nc; k++)
    if (c[k].job->created_at < from)
      from = c[k].job->created_at;
  enum nrd_nv_rc rc = list_both(w, NULL, from, jobs, n, err);
  for (int t = 0; rc == NRD_NV_OK && t < 2; t++)
    for (size_t i = 0; i < n[t]; i++)
      for (size_t k = 0; k < nc; k++)
        if (jobs[t][i].id && jobs[t][i].instance_id &&
            !strcmp(jobs[t][i].instance_id, c[k].job->instance_id) &&
            job_newer(&jobs[t][i], c[k].job))
          c[k].drop = true;
  for (int t = 0; t < 2; t++)
    nrd_jobs_free(jobs[t], n[t]);
  return rc;
}

/* GET the instance: its status must still be one RECOVER_STATUSES allows. */
static enum nrd_nv_rc check_instance(struct nrd_watch *w, struct candidate *c,
                                     struct nrd_nv_error *err)
{
  enum nrd_nv_rc rc = nrd_nv_get_instance(w->conn, c->job->instance_id, &c->inst, err);
  if (rc == NRD_NV_NOT_FOUND) {
    c->drop = true;
    return NRD_NV_OK;
  }
  if (rc != NRD_NV_OK)
    return rc;
  if (!nrd_status_recoverable(c->inst.status))
    c->drop = true;
  return NRD_NV_OK;
}

static void pending_add(struct nrd_watch *w, const char *job_id, int64_t failed_s)
{
  if (w->n_pending == MAX_PENDING)
    return;
  w->pending = nrd_xrealloc(w->pending, (w->n_pending + 1) * sizeof(*w->pending));
  w->pending[w->n_pending++] = (struct pending){ nrd_xstrdup(job_id), failed_s, false };
}

/* The rows the watch found: their time to recovery from the job's
 * createdAt, to the create accepted and to the replacement seen running. A
 * row leaves the list when it runs or goes no further (failed, abandoned,
 * start_failed). */
static void pending_check(struct nrd_watch *w)
{
  for (size_t i = 0; i < w->n_pending;) {
    struct pending *p = &w->pending[i];
    struct nrd_ledger_row row;
    bool done = true;
    if (nrd_store_ledger_get(w->store, p->job_id, &row) == NRD_OK) {
      if (row.accepted_ms > 0 && !p->accepted) {
        nrd_metrics_time_to_recovery(NRD_TTR_CREATE_ACCEPTED,
                                     (double)row.accepted_ms / 1000.0 - (double)p->failed_s);
        p->accepted = true;
      }
      if (row.running_ms > 0)
        nrd_metrics_time_to_recovery(NRD_TTR_RUNNING,
                                     (double)row.running_ms / 1000.0 - (double)p->failed_s);
      done = row.running_ms > 0 || row.state > NRD_ROW_CREATED;
      nrd_ledger_row_cleanup(&row);
    }
    if (!done) {
      i++;
      continue;
    }
    free(p->job_id);
    *p = w->pending[--w->n_pending];
  }
}

/* Writes the confirmed rows to the ledger and asks for their run. Returns
 * how many were new. */
static int record(struct nrd_watch *w, struct candidate *c, size_t nc, struct next_sets *next)
{
  int64_t now = nrd_now_ms();
  struct nrd_ledger_new *rows = nrd_xcalloc(nc, sizeof(*rows));
  bool *inserted = nrd_xcalloc(nc, sizeof(*inserted));
  size_t n = 0;
  bool snapshots = true;
  for (size_t k = 0; k < nc; k++) {
    if (c[k].drop)
      continue;
    char name[NRD_NAME_MAX + 1];
    struct nrd_instance snap;
    nrd_recreate_name(c[k].inst.name, c[k].job->instance_id, now, name);
    rows[n++] = (struct nrd_ledger_new){ c[k].job->id,   c[k].job->type,    c[k].job->instance_id,
                                         c[k].inst.name, nrd_xstrdup(name), now };
    if (nrd_store_snapshot_get(w->store, c[k].job->instance_id, &snap) != NRD_OK) {
      snapshots = false; /* the full run's sync stores it first */
      continue;
    }
    nrd_instance_cleanup(&snap);
    /* Seen migrating now: its status and last sighting are stored; by the
     * snapshot rules a migrating instance's configuration is not. */
    if (nrd_store_snapshots_upsert(w->store, &c[k].inst, 1, NULL, now) != NRD_OK)
      snapshots = false;
  }
  int found = 0;
  const char **ids = nrd_xcalloc(n + 1, sizeof(*ids));
  if (n && nrd_store_ledger_insert_many(w->store, rows, n, now, inserted) == NRD_OK) {
    for (size_t i = 0; i < n; i++) {
      idlist_push(&next->seen, rows[i].job_id);
      if (!inserted[i])
        continue;
      ids[found] = rows[i].job_id;
      const struct nrd_job *job = NULL;
      for (size_t k = 0; !job && k < nc; k++)
        job = !strcmp(c[k].job->id, rows[i].job_id) ? c[k].job : NULL;
      found++;
      nrd_metrics_watch_detected((double)now / 1000.0 - (double)job->created_at);
      pending_add(w, job->id, job->created_at);
      LOG_INFO("watch: failed migration found", "instanceId", job->instance_id, "jobId", job->id,
               "jobType", job->type, "error", job->error, "#snapshotStored", NRD_BOOL(snapshots));
    }
  } else if (n) {
    LOG_ERROR("watch: recording failed jobs in the ledger failed", "#rows", NRD_I64(n));
  }
  char run_id[64] = "";
  if (found && nrd_runner_request_watch(w->runner, w->cfg->migration_dry_run, snapshots, ids,
                                        (size_t)found, w->tick_started_ms, run_id) == 0) {
    pthread_mutex_lock(&w->lock);
    memcpy(w->last_run_id, run_id, sizeof(run_id));
    pthread_mutex_unlock(&w->lock);
    LOG_INFO("watch: run requested", "runId", run_id, "#fullRun", NRD_BOOL(!snapshots));
  }
  for (size_t i = 0; i < n; i++)
    free((char *)rows[i].new_name);
  free(ids);
  free(rows);
  free(inserted);
  return found;
}

/* Confirms the candidates (the let-go ones are remembered) and records the
 * rest. */
static enum nrd_nv_rc confirm_and_record(struct nrd_watch *w, struct candidate *c, size_t nc,
                                         struct next_sets *next, int *found,
                                         struct nrd_nv_error *err)
{
  enum nrd_nv_rc rc = check_newest(w, c, nc, err);
  for (size_t k = 0; rc == NRD_NV_OK && k < nc; k++)
    if (!c[k].drop)
      rc = check_instance(w, &c[k], err);
  if (rc != NRD_NV_OK)
    return rc;
  for (size_t k = 0; k < nc; k++) {
    if (!c[k].drop)
      continue;
    LOG_INFO("watch: failed job not recovered: its instance is not stuck on it", "jobId",
             c[k].job->id, "instanceId", c[k].job->instance_id, "status", c[k].inst.status);
    idlist_push(&next->let_go, c[k].job->id);
  }
  *found = record(w, c, nc, next);
  return NRD_NV_OK;
}

/* One tick: ok, or the listing's failure. */
static enum nrd_nv_rc tick(struct nrd_watch *w, struct nrd_nv_error *err)
{
  struct nrd_job *jobs[2] = { NULL, NULL };
  size_t n[2] = { 0, 0 };
  struct next_sets next = { { 0 }, { 0 } };
  int found = 0;
  w->tick_started_ms = nrd_now_ms();
  int64_t start_s = nrd_now_ms() / 1000 - (int64_t)w->cfg->migration_job_lookback_hours * 3600;

  enum nrd_nv_rc rc = list_both(w, "fail", start_s, jobs, n, err);
  if (rc == NRD_NV_OK) {
    struct candidate *c = nrd_xcalloc(n[0] + n[1] + 1, sizeof(*c));
    size_t nc = collect(w, jobs, n, c, &next);
    if (nc)
      rc = confirm_and_record(w, c, nc, &next, &found, err);
    for (size_t k = 0; k < nc; k++)
      nrd_instance_cleanup(&c[k].inst);
    free(c);
  }
  if (rc == NRD_NV_OK) {
    /* Only what the window still lists is kept. */
    idlist_sort(&next.seen);
    idlist_sort(&next.let_go);
    idlist_free(&w->seen);
    idlist_free(&w->let_go);
    w->seen = next.seen;
    w->let_go = next.let_go;
  } else {
    /* Let go stays let go; the rest is looked at again. */
    idlist_free(&next.seen);
    for (size_t i = 0; i < next.let_go.n; i++)
      if (!idlist_has(&w->let_go, next.let_go.ids[i]))
        idlist_push(&w->let_go, next.let_go.ids[i]);
    idlist_sort(&w->let_go);
    idlist_free(&next.let_go);
  }
  pthread_mutex_lock(&w->lock);
  if (rc == NRD_NV_OK)
    w->failed_seen = w->seen.n + w->let_go.n;
  w->detected += found;
  pthread_mutex_unlock(&w->lock);
  for (int t = 0; t < 2; t++)
    nrd_jobs_free(jobs[t], n[t]);
  return rc;
}

/* ---- the thread ---- */

/* Runs a tick unless a run is active, the scheduler is paused or another
 * replica leads; returns the
 * wait before the next, ms. */
static int64_t tick_or_skip(struct nrd_watch *w)
{
  int64_t interval = (int64_t)w->cfg->watch_interval_seconds * 1000;
  struct nrd_nv_error err = { 0 };
  pending_check(w);
  if (atomic_load(&w->paused) || !atomic_load(&w->leader) || nrd_runner_busy(w->runner)) {
    nrd_metrics_watch_tick("skipped");
    return interval;
  }
  enum nrd_nv_rc rc = tick(w, &err);
  nrd_metrics_watch_tick(rc == NRD_NV_OK ? "ok" : "failed");
  pthread_mutex_lock(&w->lock);
  w->ticks++;
  w->last_tick_ms = nrd_now_ms();
  if (rc == NRD_NV_OK) {
    w->failures = 0;
    w->last_error[0] = '\0';
  } else {
    w->failures++;
    snprintf(w->last_error, sizeof(w->last_error), "%s", err.message);
  }
  unsigned shift = w->failures < MAX_BACKOFF_SHIFT ? w->failures : MAX_BACKOFF_SHIFT;
  pthread_mutex_unlock(&w->lock);
  if (rc != NRD_NV_OK)
    LOG_WARN("watch: tick failed; waiting longer", "reason", err.message, "#waitSeconds",
             NRD_I64((interval << shift) / 1000));
  return interval << shift;
}

static void *watch_main(void *arg)
{
  struct nrd_watch *w = arg;
  char err[256];
  const struct nrd_store_target db = nrd_store_target_of(w->cfg);
  if (nrd_store_open(&db, &w->store, NULL, err, sizeof(err)) != NRD_OK) {
    LOG_ERROR("watch: could not open the database; the watch is off", "error", err);
    return NULL;
  }
  w->conn = nrd_novita_conn_create(w->runner->nv);
  pthread_mutex_lock(&w->lock);
  while (!w->stopping) {
    if (nrd_now_ms() < w->next_tick_ms) {
      /* next_tick_ms is wall time (shown); the wait is monotonic */
      nrd_cond_wait_ms(&w->cond, &w->lock, w->next_tick_ms - nrd_now_ms());
      continue;
    }
    pthread_mutex_unlock(&w->lock);
    int64_t wait = tick_or_skip(w);
    pthread_mutex_lock(&w->lock);
    w->next_tick_ms = nrd_now_ms() + wait;
  }
  pthread_mutex_unlock(&w->lock);
  nrd_novita_conn_destroy(w->conn);
  nrd_store_close(w->store);
  return NULL;
}

struct nrd_watch *nrd_watch_create(const struct nrd_config *cfg, struct nrd_runner *r, bool leader)
{
  if (cfg->watch_interval_seconds == 0)
    return NULL;
  struct nrd_watch *w = nrd_xcalloc(1, sizeof(*w));
  w->cfg = cfg;
  w->runner = r;
  atomic_init(&w->paused, false);
  atomic_init(&w->leader, leader);
  pthread_mutex_init(&w->lock, NULL);
  nrd_cond_init_mono(&w->cond);
  w->next_tick_ms = nrd_now_ms();
  nrd_thread_start(&w->thread, watch_main, w);
  return w;
}

void nrd_watch_halt(struct nrd_watch *w)
{
  if (!w)
    return;
  if (nrd_flag_raise(&w->lock, &w->cond, &w->stopping))
    pthread_join(w->thread, NULL);
}

void nrd_watch_destroy(struct nrd_watch *w)
{
  if (!w)
    return;
  nrd_watch_halt(w);
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->lock);
  idlist_free(&w->seen);
  idlist_free(&w->let_go);
  for (size_t i = 0; i < w->n_pending; i++)
    free(w->pending[i].job_id);
  free(w->pending);
  free(w);
}

void nrd_watch_set_paused(struct nrd_watch *w, bool paused)
{
  if (w)
    atomic_store(&w->paused, paused);
}

void nrd_watch_set_leader(struct nrd_watch *w, bool leader)
{
  if (w)
    atomic_store(&w->leader, leader);
}

static void add_time(cJSON *o, const char *key, int64_t ms)
{
  char at[32];
  if (!ms) {
    cJSON_AddNullToObject(o, key);
    return;
  }
  nrd_iso8601(ms, at);
  nrd_json_add_str(o, key, at);
}

void nrd_watch_status(struct nrd_watch *w, cJSON *o)
{
  cJSON *s = cJSON_AddObjectToObject(o, "watch");
  if (!s)
    abort();
  nrd_json_add_bool(s, "enabled", w != NULL);
  if (!w)
    return;
  pthread_mutex_lock(&w->lock);
  nrd_json_add_num(s, "intervalSeconds", w->cfg->watch_interval_seconds);
  add_time(s, "lastTickAt", w->last_tick_ms);
  add_time(s, "nextTickAt", w->next_tick_ms);
  nrd_json_add_num(s, "ticks", (double)w->ticks);
  nrd_json_add_num(s, "failedJobsSeen", (double)w->failed_seen);
  nrd_json_add_num(s, "detected", (double)w->detected);
  nrd_json_add_num(s, "consecutiveFailures", w->failures);
  if (w->last_error[0])
    nrd_json_add_str(s, "lastError", w->last_error);
  else
    cJSON_AddNullToObject(s, "lastError");
  if (w->last_run_id[0])
    nrd_json_add_str(s, "lastRunId", w->last_run_id);
  else
    cJSON_AddNullToObject(s, "lastRunId");
  pthread_mutex_unlock(&w->lock);
}
