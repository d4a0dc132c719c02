/* One run of check-failed: sync -> detect -> recover -> report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/recovery.h"
#include "nrd/recreate.h"
#include "nrd/util.h"

/* The migrating instances this run's sync saw: id and name, sorted by id. */
struct migrating {
  char *id, *name;
  const struct nrd_job *newest;   /* newest migration job, borrowed from the job lists */
};

/* One migration job type, listed on a pool worker while the coordinator
 * goes on with the instance pages (the listing is owned by the run). */
struct job_listing {
  struct run_ctx *ctx;
  const char *type;
  int64_t start_s, end_s;
  bool queued;                    /* handed to the pool (else listed inline) */
  enum nrd_nv_rc rc;
  struct nrd_nv_error err;
  struct nrd_job *jobs;
  size_t n;
};

struct sync_state {
  struct run_ctx *ctx;
  struct migrating *items;
  size_t n, cap;
  bool store_failed;
  struct job_listing listings[2];
  bool listings_started;
  struct snapshot_writer *writer;
};

static void listing_process(void *job, void *worker_ctx)
{
  struct job_listing *l = job;
  struct nrd_worker *w = worker_ctx;
  nrd_novita_conn_set_deadline(w->conn, l->ctx->deadline_mono_ms);
  l->rc = nrd_nv_list_jobs(w->conn, l->type, l->start_s, l->end_s, &l->jobs, &l->n, &l->err);
}

static void listing_free(void *job)
{
  (void)job;  /* owned by the run, which waits for the pool */
}

/* Starts both job listings on the pool. The jobs are needed exactly when
 * the listing shows a migrating instance, so starting at the first one
 * adds no call, and their pages overlap the remaining instance pages. */
static void listings_start(struct sync_state *s)
{
  static const char *const types[2] = {"instanceMigrate", "autoInstanceMigrate"};
  const struct nrd_config *cfg = s->ctx->runner->cfg;
  int64_t end_s = nrd_now_ms() / 1000;
  int64_t start_s = end_s - (int64_t)cfg->migration_job_lookback_hours * 3600;

  s->listings_started = true;
  for(int t = 0; t < 2; t++) {
    struct job_listing *l = &s->listings[t];
    *l = (struct job_listing){.ctx = s->ctx, .type = types[t], .start_s = start_s,
                              .end_s = end_s, .rc = NRD_NV_TRANSIENT};
    snprintf(l->err.message, sizeof(l->err.message), "not listed: the service is stopping");
    l->queued = nrd_pool_submit(s->ctx->runner->pool, listing_process, listing_free, l) == 0;
  }
}

/* A run of the sync's instances: the migrating ones are noted, then all go
 * to the snapshot writer. */
static int on_items(void *ud, struct nrd_instance *items, size_t n)
{
  struct sync_state *s = ud;
  for(size_t i = 0; i < n; i++) {
    if(!items[i].id || !nrd_status_recoverable(items[i].status))
      continue;
    if(s->n == s->cap) {
      s->cap = s->cap ? s->cap * 2 : 64;
      s->items = nrd_xrealloc(s->items, s->cap * sizeof(*s->items));
    }
    s->items[s->n++] = (struct migrating){nrd_xstrdup(items[i].id), nrd_xstrdup(items[i].name),
                                          NULL};
  }
  if(s->n > 0 && !s->listings_started)
    listings_start(s);
  if(!nrd_snapshot_writer_push(s->writer, items, n)) {
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

static struct migrating *find_migrating(struct sync_state *s, const char *id)
{
  struct migrating key = {.id = (char *)id};
  return id && s->n ? bsearch(&key, s->items, s->n, sizeof(*s->items), cmp_migrating) : NULL;
}

/* Newer by createdAt; ties broken by job id so the choice is stable. */
static bool job_newer(const struct nrd_job *a, const struct nrd_job *b)
{
  if(a->created_at != b->created_at)
    return a->created_at > b->created_at;
  return strcmp(a->id, b->id) > 0;
}

void nrd_run_add_outcome(struct run_ctx *ctx, cJSON *item)
{
  /* The metric label must be a static string: the item's own goes away. */
  static const char *const actions[] = {"recreated", "adopted", "planned", "deferred",
                                        "failed", "abandoned", "skipped"};
  const char *action = nrd_json_str(item, "action");
  const char *label = NULL;
  for(size_t i = 0; action && i < sizeof(actions) / sizeof(actions[0]); i++)
    if(!strcmp(action, actions[i]))
      label = actions[i];
  /* Kept as text: a tree per outcome held for the whole run, duplicated for
   * the report, cost 2 MB per 5000 rows. */
  char *text = nrd_json_print(item);
  cJSON_Delete(item);
  pthread_mutex_lock(&ctx->lock);
  if(label == actions[0] || label == actions[1])
    ctx->recreated++;
  else if(label == actions[4])
    ctx->errors++;
  else if(label == actions[3])
    ctx->deferred++;
  if(ctx->outcomes.len)
    nrd_buf_append(&ctx->outcomes, ",", 1);
  nrd_buf_puts(&ctx->outcomes, text);
  pthread_mutex_unlock(&ctx->lock);
  free(text);
  if(label)
    nrd_metrics_recovery(label);
}

struct pool_job {
  struct run_ctx *ctx;
  struct nrd_ledger_row row;
};

static void pool_process(void *job, void *worker_ctx)
{
  struct pool_job *pj = job;
  nrd_recover_row(pj->ctx, worker_ctx, &pj->row);
}

static void pool_free(void *job)
{
  struct pool_job *pj = job;
  nrd_ledger_row_cleanup(&pj->row);
  free(pj);
}

static void defer_outcome(struct run_ctx *ctx, const struct nrd_ledger_row *row,
                          const char *reason)
{
  cJSON *o = nrd_outcome_new(row, "deferred");
  nrd_json_add_str(o, "reason", reason);
  nrd_run_add_outcome(ctx, o);
}

static void store_failed_msg(struct run_ctx *ctx, const char *what)
{
  pthread_mutex_lock(&ctx->lock);
  if(!ctx->store_failed) {
    ctx->store_failed = true;
    snprintf(ctx->store_error, sizeof(ctx->store_error), "store unavailable: %s", what);
  }
  pthread_mutex_unlock(&ctx->lock);
}

void nrd_run_store_failed(struct run_ctx *ctx, struct nrd_store *st)
{
  store_failed_msg(ctx, st ? nrd_store_last_error(st) : "the database could not be written");
}

bool nrd_run_store_reason(struct run_ctx *ctx, char *out, size_t outlen)
{
  pthread_mutex_lock(&ctx->lock);
  bool failed = ctx->store_failed;
  if(failed)
    snprintf(out, outlen, "%s", ctx->store_error);
  pthread_mutex_unlock(&ctx->lock);
  return failed;
}

/* The store failed before the rows were worked: every open row the ledger
 * still lists is deferred naming the failure. */
static void defer_open_rows(struct run_ctx *ctx, struct nrd_worker *w)
{
  struct nrd_ledger_row *rows = NULL, after = {0};
  size_t n = 0;
  char reason[400];
  nrd_run_store_reason(ctx, reason, sizeof(reason));
  while(nrd_store_ledger_open(w->store, after.job_id ? &after : NULL, 256, &rows, &n) == NRD_OK &&
        n > 0) {
    for(size_t i = 0; i < n; i++)
      defer_outcome(ctx, &rows[i], reason);
    nrd_ledger_row_cleanup(&after);
    after.job_id = nrd_xstrdup(rows[n - 1].job_id);
    after.created_ms = rows[n - 1].created_ms;
    nrd_ledger_rows_free(rows, n);
    rows = NULL;
  }
  nrd_ledger_row_cleanup(&after);
}

/* Waits for both job listings (one the pool refused is listed here), then
 * records the newest job of each migrating instance. */
static enum nrd_nv_rc detect(struct nrd_worker *w, struct sync_state *s,
                             struct nrd_job **jobs, size_t *n_jobs, struct nrd_nv_error *err)
{
  enum nrd_nv_rc rc = NRD_NV_OK;
  nrd_pool_wait_idle(s->ctx->runner->pool, 0);
  for(int t = 0; t < 2; t++) {
    struct job_listing *l = &s->listings[t];
    if(!l->queued)
      listing_process(l, w);
    jobs[t] = l->jobs;
    n_jobs[t] = l->n;
    l->jobs = NULL;
    l->n = 0;
    if(l->rc != NRD_NV_OK && rc == NRD_NV_OK) {
      rc = l->rc;
      *err = l->err;
    }
  }
  if(rc != NRD_NV_OK)
    return rc;
  for(int t = 0; t < 2; t++) {
    for(size_t i = 0; i < n_jobs[t]; i++) {
      const struct nrd_job *job = &jobs[t][i];
      struct migrating *m;
      if(!job->id)
        continue;
      m = find_migrating(s, job->instance_id);
      if(m && (!m->newest || job_newer(job, m->newest)))
        m->newest = job;
    }
  }
  return NRD_NV_OK;
}

/* Frees what the sync and the detection listed, and the found rows' new
 * names, leaving the lists empty. */
static void listings_free(struct sync_state *s, struct nrd_job *jobs[2], size_t n_jobs[2],
                          struct nrd_ledger_new *found, size_t n_found)
{
  for(size_t i = 0; i < n_found; i++)
    free((char *)found[i].new_name);
  for(int t = 0; t < 2; t++) {
    nrd_jobs_free(jobs[t], n_jobs[t]);
    jobs[t] = NULL;
    n_jobs[t] = 0;
  }
  for(size_t i = 0; i < s->n; i++) {
    free(s->items[i].id);
    free(s->items[i].name);
  }
  free(s->items);
  s->items = NULL;
  s->n = s->cap = 0;
}

/* The report as JSON text (caller frees), its outcomes last. The outcomes'
 * buffer becomes the report (moved up to make room for the head), so the
 * largest text of the run is never held twice. */
static char *report_text(struct run_ctx *ctx)
{
  static const char outcomes_key[] = ",\"outcomes\":[";
  cJSON *res = cJSON_CreateObject();
  if(!res)
    abort();
  pthread_mutex_lock(&ctx->lock);
  nrd_json_add_num(res, "totalChecked", ctx->total_checked);
  nrd_json_add_num(res, "failedJobsFound", ctx->failed_found);
  nrd_json_add_num(res, "instancesRecreated", ctx->recreated);
  nrd_json_add_num(res, "errors", ctx->errors);
  nrd_json_add_num(res, "deferred", ctx->deferred);
  nrd_json_add_bool(res, "dryRun", ctx->dry_run);
  nrd_json_add_str(res, "runId", ctx->run_id);
  if(ctx->account_blocked) {
    cJSON *b = cJSON_CreateObject();
    if(!b)
      abort();
    nrd_json_add_str(b, "reason", ctx->account_reason);
    nrd_json_add_str(b, "message", ctx->account_message);
    nrd_json_add_num(b, "heldRows", (double)ctx->held_account);
    cJSON_AddItemToObject(res, "accountBrake", b);
  }
  if(ctx->held_capacity)
    nrd_json_add_num(res, "capacityHeldRows", (double)ctx->held_capacity);
  char *head = nrd_json_print(res);
  size_t head_len = strlen(head) - 1;  /* without its closing brace */
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

/* The brakes a previous run left: Novita's Retry-After (the client waits for
 * it) and the account brake (*probe_job: its refused row, heap, may be NULL;
 * returns whether it is set). */
static bool brakes_load(struct run_ctx *ctx, struct nrd_worker *w, char **probe_job)
{
  struct nrd_brake b;
  *probe_job = NULL;
  if(nrd_store_brake_get(w->store, "retry_after", &b) == NRD_OK) {
    nrd_novita_set_not_before(ctx->runner->nv, b.until_ms);
    nrd_brake_cleanup(&b);
  }
  if(nrd_store_brake_get(w->store, "account", &b) != NRD_OK)
    return false;
  snprintf(ctx->account_reason, sizeof(ctx->account_reason), "%s", b.reason ? b.reason : "");
  snprintf(ctx->account_message, sizeof(ctx->account_message), "%s",
           b.message ? b.message : "");
  LOG_WARN("account brake held from an earlier run: one probe first", "reason", b.reason,
           "message", b.message, "jobId", b.job_id);
  *probe_job = b.job_id;
  b.job_id = NULL;
  nrd_brake_cleanup(&b);
  return true;
}

/* At the run's end: Retry-After carried over, the account brake released
 * when a create went through, the brake gauges. */
static void brakes_store(struct run_ctx *ctx, struct nrd_worker *w, bool held)
{
  int64_t nb = nrd_novita_not_before(ctx->runner->nv);
  if(nb > nrd_now_ms()) {
    struct nrd_brake b = {.until_ms = nb};
    nrd_store_brake_set(w->store, "retry_after", &b, nrd_now_ms());
  }
  if(held && ctx->create_accepted && !ctx->account_blocked) {
    nrd_store_brake_clear(w->store, "account");
    LOG_INFO("account brake released: a create succeeded", "reason", ctx->account_reason);
  }
  nrd_metrics_brake_held("account", ctx->held_account);
  nrd_metrics_brake_held("capacity", ctx->held_capacity);
}

/* The canary: until a create is accepted in this run, rows go one at a time
 * on the coordinator, so an account-wide refusal stops the run after one
 * delete. With the account brake held from an earlier run, the first create
 * sent is its probe: if it is not accepted, the brake holds every other row. */
static void canary_row(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_ledger_row *row,
                       bool held)
{
  nrd_recover_row(ctx, w, row);
  pthread_mutex_lock(&ctx->lock);
  if(held && ctx->create_tried && !ctx->create_accepted)
    ctx->account_blocked = true;
  pthread_mutex_unlock(&ctx->lock);
}

static bool canary_open(struct run_ctx *ctx)
{
  pthread_mutex_lock(&ctx->lock);
  bool open = ctx->create_accepted;
  pthread_mutex_unlock(&ctx->lock);
  return open || ctx->dry_run;
}

/* The account brake's probe when a row waits between delete and create: its
 * create is sent again first. */
static void probe_first(struct run_ctx *ctx, struct nrd_worker *w, const char *job_id)
{
  struct nrd_ledger_row row;
  if(!job_id || nrd_store_ledger_get(w->store, job_id, &row) != NRD_OK)
    return;
  if(row.state == NRD_ROW_DELETED || row.state == NRD_ROW_CREATING) {
    LOG_INFO("account brake probe: the refused create again", "jobId", job_id);
    canary_row(ctx, w, &row, true);
  }
  nrd_ledger_row_cleanup(&row);
}

/* A watch run works the rows the watch found, no other. */
static bool watched(const struct run_ctx *ctx, const char *job_id)
{
  for(size_t i = 0; i < ctx->n_watch_jobs; i++)
    if(!strcmp(ctx->watch_jobs[i], job_id))
      return true;
  return false;
}

void nrd_run_execute(struct nrd_runner *r, struct run_ctx *ctx, char **result_json,
                     bool *completed, char **error_message)
{
  const struct nrd_config *cfg = r->cfg;
  struct nrd_worker *w = &r->coord;
  struct sync_state s = {.ctx = ctx};
  struct nrd_nv_error err = {0};
  struct nrd_job *jobs[2] = {NULL, NULL};
  size_t n_jobs[2] = {0, 0};
  struct nrd_ledger_row *rows = NULL;
  size_t n_rows = 0;
  struct nrd_ledger_new *found = NULL;
  size_t n_found = 0;
  bool *inserted = NULL;
  char msg[512] = "";
  char *probe_job = NULL;
  enum nrd_nv_rc rc;

  *completed = false;
  nrd_log_set_run_id(ctx->run_id);
  LOG_INFO("run started", "trigger", nrd_trigger_name(ctx->trigger),
           "#dryRun", NRD_BOOL(ctx->dry_run));
  nrd_novita_conn_set_deadline(w->conn, ctx->deadline_mono_ms);
  char why[300];
  if(!nrd_runner_db_file_ok(r, why, sizeof(why))) {
    store_failed_msg(ctx, why);
    goto out;
  }
  if(ctx->watch_only)
    goto recover;  /* the watch wrote its rows; their snapshots are stored */

  /* 1. sync (and, from the first migrating instance on, the job listings
   * of step 2 on pool workers) */
  ctx->sync_started_ms = nrd_now_ms();
  s.writer = nrd_snapshot_writer_start(ctx);
  if(!s.writer) {
    snprintf(msg, sizeof(msg), "storing instance snapshots failed: the service is stopping");
    goto out;
  }
  const struct nrd_nv_instance_sink sink = {on_items, on_page_end, &s};
  rc = nrd_nv_list_instances(w->conn, NULL, &sink, NULL, &err);
  if(!nrd_snapshot_writer_finish(s.writer))
    s.store_failed = true;
  if(s.listings_started && (s.store_failed || rc != NRD_NV_OK)) {
    nrd_pool_wait_idle(r->pool, 0);  /* the listings point into this frame */
    for(int t = 0; t < 2; t++)
      nrd_jobs_free(s.listings[t].jobs, s.listings[t].n);
  }
  if(s.store_failed) {
    char store_reason[400];
    if(nrd_run_store_reason(ctx, store_reason, sizeof(store_reason)))
      defer_open_rows(ctx, w);  /* the writer's SQL failed */
    else
      snprintf(msg, sizeof(msg), "storing instance snapshots failed: the service is stopping");
    goto out;
  }
  if(rc != NRD_NV_OK) {
    snprintf(msg, sizeof(msg), "listing instances failed: %s", err.message);
    goto out;
  }
  if(s.n)
    qsort(s.items, s.n, sizeof(*s.items), cmp_migrating);
  ctx->total_checked = (int)s.n;

  /* 2. detect (the jobs are listed in every run: a failed job on an
   * instance in another status is reported as ignored) */
  if(!s.listings_started)
    listings_start(&s);
  rc = detect(w, &s, jobs, n_jobs, &err);
  if(rc != NRD_NV_OK && s.n) {
    snprintf(msg, sizeof(msg), "listing migration jobs failed: %s", err.message);
    goto out;
  }
  if(rc == NRD_NV_OK)
    nrd_report_ignored(ctx, w, jobs, n_jobs);
  else  /* nothing to recover: only the ignored ones go unreported */
    LOG_WARN("listing migration jobs failed; failed jobs on other statuses not reported",
             "error", err.message);
  /* One ledger row per failed job, all in one transaction. */
  int64_t now = nrd_now_ms();
  found = nrd_xcalloc(s.n + 1, sizeof(*found));
  for(size_t i = 0; i < s.n; i++) {
    const struct nrd_job *job = s.items[i].newest;
    if(!job || !job->state || strcmp(job->state, "fail"))
      continue;
    char new_name[NRD_NAME_MAX + 1];
    nrd_recreate_name(s.items[i].name, s.items[i].id, now, new_name);
    found[n_found++] = (struct nrd_ledger_new){job->id, job->type, s.items[i].id,
                                               s.items[i].name, nrd_xstrdup(new_name), now};
  }
  ctx->failed_found = (int)n_found;
  inserted = nrd_xcalloc(n_found + 1, sizeof(*inserted));
  if(nrd_store_ledger_insert_many(w->store, found, n_found, now, inserted) != NRD_OK) {
    LOG_ERROR("recording the failed jobs in the ledger failed", "#count", NRD_I64(n_found));
    nrd_run_store_failed(ctx, w->store);
    defer_open_rows(ctx, w);
    goto out;
  }
  for(size_t i = 0; i < n_found; i++) {
    const struct nrd_job *job = find_migrating(&s, found[i].instance_id)->newest;
    if(inserted[i])
      LOG_INFO("failed migration found", "instanceId", found[i].instance_id, "jobId", job->id,
               "jobType", job->type, "error", job->error);
  }
  /* The listings are done with: freed before the rows are worked on. */
  listings_free(&s, jobs, n_jobs, found, n_found);
  n_found = 0;

recover:;
  /* 3. recover: every open row, the oldest first, up to the brake. The rows
   * are read a batch at a time while the pool's queue is short, so a run of
   * thousands never holds them all (5000 rows were 2 MB). */
  unsigned threads = nrd_pool_threads(r->pool);
  size_t batch = 2 * (size_t)threads, handed = 0;
  struct nrd_ledger_row after = {0};
  bool held = !ctx->dry_run && brakes_load(ctx, w, &probe_job);
  if(held) {
    probe_first(ctx, w, probe_job);
    if(ctx->create_tried)
      handed++;
  }
  for(;;) {
    nrd_pool_wait_queue_below(r->pool, threads);
    if(nrd_store_ledger_open(w->store, after.job_id ? &after : NULL, batch, &rows, &n_rows) !=
       NRD_OK) {
      nrd_run_store_failed(ctx, w->store);
      nrd_ledger_row_cleanup(&after);
      nrd_pool_wait_idle(r->pool, 0);  /* the rows handed over point into ctx */
      goto out;
    }
    if(n_rows == 0)
      break;
    nrd_ledger_row_cleanup(&after);
    after.job_id = nrd_xstrdup(rows[n_rows - 1].job_id);
    after.created_ms = rows[n_rows - 1].created_ms;
    for(size_t i = 0; i < n_rows; i++, handed++) {
      if(ctx->watch_only && !watched(ctx, rows[i].job_id)) {
        handed--;  /* not this run's: neither handed nor deferred */
        continue;
      }
      if(handed >= cfg->max_recoveries_per_run) {
        defer_outcome(ctx, &rows[i], "MAX_RECOVERIES_PER_RUN reached; the next run takes it");
        continue;
      }
      if(held && probe_job && ctx->create_tried && !strcmp(rows[i].job_id, probe_job))
        continue;  /* the probe, worked on above */
      if(!canary_open(ctx)) {
        canary_row(ctx, w, &rows[i], held);
        continue;
      }
      struct pool_job *pj = nrd_xcalloc(1, sizeof(*pj));
      pj->ctx = ctx;
      pj->row = rows[i];
      memset(&rows[i], 0, sizeof(rows[i]));  /* handed over */
      while(nrd_pool_submit(r->pool, pool_process, pool_free, pj) != 0)
        nrd_sleep_ms(5);  /* queue full: wait for a worker to take one */
    }
    nrd_ledger_rows_free(rows, n_rows);  /* every row handed over or deferred */
    rows = NULL;
    n_rows = 0;
  }
  nrd_ledger_row_cleanup(&after);
  nrd_pool_wait_idle(r->pool, 0);
  brakes_store(ctx, w, held);
  if(!ctx->dry_run)
    nrd_follow_created(w, ctx);  /* replacements not yet running: one look each */
  free(probe_job);
  probe_job = NULL;
  nrd_memory_trim();  /* before the report, the run's largest allocation */
  *completed = !ctx->circuit_tripped;
  if(ctx->circuit_tripped)
    snprintf(msg, sizeof(msg), "Novita circuit opened during the run; %d rows deferred",
             ctx->deferred);

out:
  if(nrd_run_store_reason(ctx, msg, sizeof(msg)))
    *completed = false;
  *result_json = report_text(ctx);
  *error_message = msg[0] ? nrd_xstrdup(msg) : NULL;
  if(msg[0])
    LOG_WARN("run could not complete", "reason", msg);
  LOG_INFO("run finished", "#totalChecked", NRD_I64(ctx->total_checked),
           "#failedJobsFound", NRD_I64(ctx->failed_found),
           "#instancesRecreated", NRD_I64(ctx->recreated), "#errors", NRD_I64(ctx->errors),
           "#completed", NRD_BOOL(*completed));
  nrd_ledger_rows_free(rows, n_rows);
  free(probe_job);
  listings_free(&s, jobs, n_jobs, found, n_found);
  free(found);
  free(inserted);
  nrd_log_set_run_id(NULL);
}
