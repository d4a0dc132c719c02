/* Following a replacement until it runs (issue 14). A row is `created` when
 * Novita accepted the create; it becomes `running` when the new instance's
 * status is running, or `start_failed` when the instance ends in an error
 * status (exited, removed, ...), is gone, or has not reached running within
 * RECOVERY_START_TIMEOUT_SECONDS. Each run looks at the rows in `created`
 * accepted before it started, after its recoveries; between runs a light poller does, every
 * RECOVERY_START_POLL_SECONDS, one get per row (through the shared rate
 * limit). No run waits for an image to pull. A start_failed replacement is
 * never deleted or recreated here: it is the operator's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/recreate.h"
#include "nrd/util.h"

#define FOLLOW_BATCH 200

/* Statuses Novita documents after which an instance does not start by itself. */
static bool error_status(const char *st)
{
  static const char *const errors[] = { "exited", "removed", "removing", "toRemove", "failed" };
  for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
    if (!strcmp(st, errors[i]))
      return true;
  return false;
}

/* The event of a row's end: instance.running or instance.start_failed. */
static void start_event(struct nrd_event *ev, const struct nrd_ledger_row *row, bool running,
                        const struct nrd_nv_instance_state *is, const char *reason, int64_t now)
{
  char id[64], at[32];
  cJSON *body = cJSON_CreateObject(), *data = cJSON_CreateObject();
  if (!body || !data)
    abort();
  memset(ev, 0, sizeof(*ev));
  nrd_make_id("evt", id);
  ev->created_ms = now;
  nrd_iso8601(now, at);
  nrd_json_add_str(body, "id", id);
  nrd_json_add_str(body, "type", running ? "instance.running" : "instance.start_failed");
  nrd_json_add_str(body, "createdAt", at);
  nrd_json_add_str(data, "instanceId", row->instance_id);
  nrd_json_add_str(data, "instanceName", row->instance_name);
  nrd_json_add_str(data, "jobId", row->job_id);
  nrd_json_add_str(data, "newInstanceId", row->new_instance_id);
  nrd_json_add_str(data, "newName", row->new_name);
  if (running) {
    nrd_json_add_num(data, "secondsToRunning", (double)(now - row->accepted_ms) / 1000.0);
  } else {
    nrd_json_add_str(data, "reason", reason);
    if (is && (is->error_state[0] || is->error_message[0])) {
      cJSON *se = cJSON_AddObjectToObject(data, "statusError");
      if (!se)
        abort();
      nrd_json_add_str(se, "state", is->error_state);
      nrd_json_add_str(se, "message", is->error_message);
    }
  }
  cJSON_AddItemToObject(body, "data", data);
  ev->id = nrd_xstrdup(id);
  ev->type = nrd_xstrdup(running ? "instance.running" : "instance.start_failed");
  ev->body_json = nrd_json_print(body);
  ev->state = nrd_xstrdup("pending");
  cJSON_Delete(body);
}

/* Writes the row's end with its event; reports it in ctx (may be NULL).
 * true when this call settled it. */
static bool settle(struct nrd_worker *w, struct run_ctx *ctx, const struct nrd_ledger_row *row,
                   bool running, const struct nrd_nv_instance_state *is, const char *reason)
{
  int64_t now = nrd_now_ms();
  struct nrd_event ev;
  start_event(&ev, row, running, is, reason, now);
  struct nrd_ledger_started u = { .running = running,
                                  .reason = running ? NULL : reason,
                                  .error_state = is ? is->error_state : NULL,
                                  .error_message = is ? is->error_message : NULL,
                                  .event = &ev };
  int rc = nrd_store_ledger_started(w->store, row->job_id, &u, now);
  nrd_event_cleanup(&ev);
  if (rc != NRD_OK) {
    if (rc != NRD_NONE)
      LOG_ERROR("ledger write failed", "jobId", row->job_id, "#rc", NRD_I64(rc));
    return false;
  }
  if (running) {
    nrd_metrics_replacement_started(now - row->accepted_ms);
    LOG_INFO("replacement running", "instanceId", row->instance_id, "newInstanceId",
             row->new_instance_id, "jobId", row->job_id, "#msToRunning",
             NRD_I64(now - row->accepted_ms));
  } else {
    LOG_WARN("replacement did not start", "instanceId", row->instance_id, "newInstanceId",
             row->new_instance_id, "jobId", row->job_id, "reason", reason, "statusErrorState",
             is ? is->error_state : "", "statusErrorMessage", is ? is->error_message : "");
  }
  nrd_metrics_recovery(running ? "running" : "start_failed");
  if (ctx) {
    cJSON *o = nrd_outcome_new(row, running ? "running" : "start_failed");
    nrd_json_add_str(o, "newInstanceId", row->new_instance_id);
    nrd_json_add_str(o, "newName", row->new_name);
    if (!running)
      nrd_json_add_str(o, "reason", reason);
    ctx->outcome(ctx, o);
  }
  return true;
}

/* Looks at one row: NRD_NV_OK when it was looked at (settled or still
 * starting), else Novita's trouble (the row waits for the next look). */
static enum nrd_nv_rc follow_row(struct nrd_worker *w, struct run_ctx *ctx,
                                 const struct nrd_ledger_row *row, int *settled)
{
  const struct nrd_config *cfg = w->runner->cfg;
  struct nrd_nv_instance_state is;
  struct nrd_nv_error err = { 0 };
  char reason[640];
  enum nrd_nv_rc rc = nrd_nv_get_instance_state(w->conn, row->new_instance_id, &is, &err);
  if (rc == NRD_NV_NOT_FOUND) {
    *settled += settle(w, ctx, row, false, NULL, "the replacement no longer exists");
    return NRD_NV_OK;
  }
  if (rc != NRD_NV_OK)
    return rc;
  if (!strcmp(is.status, "running")) {
    *settled += settle(w, ctx, row, true, &is, NULL);
  } else if (error_status(is.status)) {
    snprintf(reason, sizeof(reason), "the replacement ended in '%s'%s%s", is.status,
             is.error_message[0] ? ": " : "", is.error_message);
    *settled += settle(w, ctx, row, false, &is, reason);
  } else if (nrd_now_ms() - row->accepted_ms >
             (int64_t)cfg->recovery_start_timeout_seconds * 1000) {
    snprintf(reason, sizeof(reason),
             "the replacement did not reach running within %u s (status '%s')",
             cfg->recovery_start_timeout_seconds, is.status);
    *settled += settle(w, ctx, row, false, &is, reason);
  }
  return NRD_NV_OK;
}

/* A look at every row to follow, a batch at a time in the store's order. */
struct follow_look {
  int64_t before; /* accepted before this (0: any) */
  struct nrd_follow_cursor cur;
  char *job; /* the cursor's job id (owned); NULL at the start */
  int settled;
};

/* Looks at the next batch and moves the cursor past it; false when the
 * look ends here (no more rows, Novita down, or stopping). */
static bool follow_batch(struct nrd_worker *w, struct run_ctx *ctx, struct follow_look *look)
{
  struct nrd_ledger_row *rows = NULL;
  size_t n = 0, i = 0;
  if (nrd_store_ledger_following(w->store, look->before, look->job ? &look->cur : NULL,
                                 FOLLOW_BATCH, &rows, &n) != NRD_OK)
    return false;
  bool more = n == FOLLOW_BATCH;
  for (; i < n; i++) {
    if (atomic_load(&w->runner->stop_work))
      break;
    enum nrd_nv_rc rc = follow_row(w, ctx, &rows[i], &look->settled);
    if (rc == NRD_NV_CIRCUIT_OPEN || rc == NRD_NV_DEADLINE)
      break; /* Novita is down or the run is over: the next look takes the rest */
    if (rc != NRD_NV_OK)
      LOG_WARN("replacement not looked at", "jobId", rows[i].job_id, "newInstanceId",
               rows[i].new_instance_id, "#rc", NRD_I64(rc));
  }
  more = more && i == n;
  if (more) {
    free(look->job);
    look->job = nrd_xstrdup(rows[n - 1].job_id);
    look->cur = (struct nrd_follow_cursor){ rows[n - 1].accepted_ms, look->job };
  }
  nrd_ledger_rows_free(rows, n);
  return more;
}

int nrd_follow_created(struct nrd_worker *w, struct run_ctx *ctx)
{
  /* A run looks only at replacements created before it: one it created a
   * moment ago is still being created (the poller looks at it later). */
  struct follow_look look = { .before = ctx ? ctx->started_ms : 0 };
  while (follow_batch(w, ctx, &look))
    ;
  free(look.job);
  if (look.settled && w->runner->event_hook)
    w->runner->event_hook(w->runner->event_hook_ud);
  return look.settled;
}

/* ---- the light poller between runs ---- */

struct follow_poller {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
  pthread_t thread;
  struct nrd_store *store; /* the poller's connection, opened before its thread */
};

static void *poller_main(void *arg)
{
  struct nrd_runner *r = arg;
  struct follow_poller *p = r->follow;
  struct nrd_worker w = { .runner = r, .store = p->store };
  w.conn = nrd_novita_conn_create(r->nv);
  pthread_mutex_lock(&p->lock);
  while (!p->stop) {
    nrd_cond_wait_ms(&p->cond, &p->lock, (int64_t)r->cfg->recovery_start_poll_seconds * 1000);
    if (p->stop)
      break;
    pthread_mutex_unlock(&p->lock);
    if (!atomic_load(&r->running))
      nrd_follow_created(&w, NULL); /* a run looks at them itself */
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  nrd_novita_conn_destroy(w.conn);
  return NULL;
}

void nrd_follow_start(struct nrd_runner *r, struct nrd_store *st)
{
  struct follow_poller *p = nrd_xcalloc(1, sizeof(*p));
  p->store = st;
  pthread_mutex_init(&p->lock, NULL);
  nrd_cond_init_mono(&p->cond);
  r->follow = p;
  nrd_thread_start(&p->thread, poller_main, r);
}

void nrd_follow_stop(struct nrd_runner *r)
{
  struct follow_poller *p = r->follow;
  if (!p)
    return;
  nrd_thread_stop(p->thread, &p->lock, &p->cond, &p->stop);
  nrd_store_close(p->store);
  free(p);
  r->follow = NULL;
}
