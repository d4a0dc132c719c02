/* The scheduler: a thread that asks the runner for a run every interval. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/scheduler.h"
#include "nrd/util.h"
#include "nrd/watch.h"

struct nrd_scheduler {
  const struct nrd_config *cfg;
  struct nrd_runner *runner;
  struct nrd_watch *watch; /* NULL when WATCH_INTERVAL_SECONDS is 0 */
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stopping, paused;
  char last_run_id[64];
  int64_t last_run_ms, next_run_ms;
  long total_runs, total_triggered;
};

/* Starts (or joins) a run; called with the lock held. */
static int request_run(struct nrd_scheduler *s, char run_id[64])
{
  if (s->paused || s->stopping)
    return -1;
  /* No completion callback: the scheduler may be gone before the run ends. */
  if (nrd_runner_request(s->runner, NRD_TRIGGER_SCHEDULER, s->cfg->migration_dry_run, NULL, NULL,
                         run_id) != 0)
    return -1;
  memcpy(s->last_run_id, run_id, 64);
  s->last_run_ms = nrd_now_ms();
  s->total_runs++;
  return 0;
}

static void *scheduler_main(void *arg)
{
  struct nrd_scheduler *s = arg;
  int64_t period = (int64_t)s->cfg->migration_interval_minutes * 60000;
  pthread_mutex_lock(&s->lock);
  while (!s->stopping) {
    /* next_run_ms is wall time (shown); the wait is monotonic */
    nrd_cond_wait_ms(&s->cond, &s->lock, s->next_run_ms - nrd_now_ms());
    if (s->stopping)
      break;
    if (nrd_now_ms() < s->next_run_ms)
      continue;
    char id[64];
    if (request_run(s, id) == 0)
      LOG_INFO("scheduled run requested", "runId", id);
    s->next_run_ms = nrd_now_ms() + period;
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

struct nrd_scheduler *nrd_scheduler_create(const struct nrd_config *cfg, struct nrd_runner *r)
{
  struct nrd_scheduler *s = nrd_xcalloc(1, sizeof(*s));
  s->cfg = cfg;
  s->runner = r;
  pthread_mutex_init(&s->lock, NULL);
  nrd_cond_init_mono(&s->cond);
  /* Set before the thread starts, so a status asked at once shows it. */
  s->next_run_ms = nrd_now_ms() + (int64_t)cfg->migration_interval_minutes * 60000;
  if (cfg->migration_interval_minutes > 0)
    nrd_thread_start(&s->thread, scheduler_main, s);
  s->watch = nrd_watch_create(cfg, r);
  return s;
}

void nrd_scheduler_halt(struct nrd_scheduler *s)
{
  if (!s)
    return;
  nrd_watch_halt(s->watch);
  if (nrd_flag_raise(&s->lock, &s->cond, &s->stopping) && s->cfg->migration_interval_minutes > 0)
    pthread_join(s->thread, NULL);
}

void nrd_scheduler_destroy(struct nrd_scheduler *s)
{
  if (!s)
    return;
  nrd_scheduler_halt(s);
  nrd_watch_destroy(s->watch);
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

char *nrd_scheduler_status_json(struct nrd_scheduler *s)
{
  char at[32];
  cJSON *o = nrd_json_object();
  pthread_mutex_lock(&s->lock);
  bool enabled = s->cfg->migration_interval_minutes > 0;
  nrd_json_add_bool(o, "enabled", enabled);
  nrd_json_add_bool(o, "paused", s->paused);
  nrd_json_add_bool(o, "running", nrd_runner_busy(s->runner));
  nrd_json_add_num(o, "intervalMinutes", s->cfg->migration_interval_minutes);
  nrd_json_add_bool(o, "dryRun", s->cfg->migration_dry_run);
  if (s->last_run_id[0]) {
    nrd_json_add_str(o, "lastRunId", s->last_run_id);
    nrd_iso8601(s->last_run_ms, at);
    nrd_json_add_str(o, "lastRunAt", at);
  } else {
    cJSON_AddNullToObject(o, "lastRunId");
    cJSON_AddNullToObject(o, "lastRunAt");
  }
  if (enabled && !s->paused) {
    nrd_iso8601(s->next_run_ms, at);
    nrd_json_add_str(o, "nextRunAt", at);
  } else {
    cJSON_AddNullToObject(o, "nextRunAt");
  }
  nrd_json_add_num(o, "totalRuns", (double)s->total_runs);
  nrd_json_add_num(o, "totalTriggered", (double)s->total_triggered);
  pthread_mutex_unlock(&s->lock);
  nrd_watch_status(s->watch, o);
  char *json = nrd_json_print(o);
  cJSON_Delete(o);
  return json;
}

int nrd_scheduler_trigger(struct nrd_scheduler *s, char run_id[64])
{
  pthread_mutex_lock(&s->lock);
  int rc = request_run(s, run_id);
  if (rc == 0)
    s->total_triggered++;
  pthread_mutex_unlock(&s->lock);
  return rc;
}

void nrd_scheduler_pause(struct nrd_scheduler *s)
{
  pthread_mutex_lock(&s->lock);
  s->paused = true;
  pthread_mutex_unlock(&s->lock);
  nrd_watch_set_paused(s->watch, true);
  LOG_WARN("scheduler paused by operator");
}

void nrd_scheduler_resume(struct nrd_scheduler *s)
{
  pthread_mutex_lock(&s->lock);
  s->paused = false;
  s->next_run_ms = nrd_now_ms() + (int64_t)s->cfg->migration_interval_minutes * 60000;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  nrd_watch_set_paused(s->watch, false);
  LOG_INFO("scheduler resumed by operator");
}

bool nrd_scheduler_paused(struct nrd_scheduler *s)
{
  pthread_mutex_lock(&s->lock);
  bool p = s->paused;
  pthread_mutex_unlock(&s->lock);
  return p;
}
