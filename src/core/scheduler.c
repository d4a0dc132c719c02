/* The scheduler: a thread that asks the runner for a run every interval,
 * and a thread that holds (or keeps trying for) the leadership: only the
 * leader's scheduled runs and watch ticks happen. On PostgreSQL one replica
 * leads (a session advisory lock on this file's own connection); on SQLite
 * every process does, as before. Triggered runs start on any replica, and
 * run where the cluster's run lock is (runlock.c). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/scheduler.h"
#include "nrd/store.h"
#include "nrd/util.h"
#include "nrd/watch.h"

struct nrd_scheduler {
  const struct nrd_config *cfg;
  struct nrd_runner *runner;
  struct nrd_watch *watch; /* NULL when WATCH_INTERVAL_SECONDS is 0 */
  pthread_t thread, leader_thread;
  struct nrd_store *store; /* the leadership's connection; NULL until opened */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stopping, paused;
  bool leader;       /* this replica runs the scheduled runs and the watch */
  int64_t leader_ms; /* since when it leads (wall), 0 when it does not */
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

/* ---- leadership ---- */

#define LEADER_NAME "scheduler"

/* How often a follower tries to lead, and a leader checks it still does:
 * a third of the lease, 1 s to 10 s, so a dead leader is replaced within
 * a lease period. */
static int64_t leader_period_ms(const struct nrd_config *cfg)
{
  int64_t ms = (int64_t)cfg->recovery_lease_seconds * 1000 / 3;
  return ms < 1000 ? 1000 : ms > 10000 ? 10000 : ms;
}

/* Replicas share a store only on PostgreSQL; on SQLite (one host) every
 * process leads, with no connection and no thread for it. */
static bool leads_alone(const struct nrd_config *cfg)
{
  return !nrd_store_target_of(cfg).url;
}

/* One try (opens the connection first when it has none); true when this
 * replica leads. Called without the lock. */
static bool leader_check(struct nrd_scheduler *s)
{
  if (leads_alone(s->cfg))
    return true;
  if (!s->store) {
    char err[256];
    const struct nrd_store_target db = nrd_store_target_of(s->cfg);
    if (nrd_store_open(&db, &s->store, NULL, err, sizeof(err)) != NRD_OK) {
      LOG_WARN("scheduler: could not open the database to lead; trying again", "error", err);
      return false;
    }
  }
  return nrd_store_leader_try(s->store, LEADER_NAME) == NRD_OK;
}

/* Records the outcome of a try; a replica that takes over from another (not
 * its first try at start) runs a scheduled run at once, the one the dead
 * leader may have missed. Called with the lock held. */
static void leader_set(struct nrd_scheduler *s, bool lead, bool first)
{
  if (lead == s->leader && !first)
    return;
  s->leader = lead;
  s->leader_ms = lead ? nrd_now_ms() : 0;
  nrd_watch_set_leader(s->watch, lead);
  if (first)
    return;
  if (lead) {
    LOG_INFO("scheduler: this replica now leads (scheduled runs and watch)");
    s->next_run_ms = nrd_now_ms();
    pthread_cond_broadcast(&s->cond);
  } else {
    LOG_WARN("scheduler: this replica no longer leads; another replica's runs take over");
  }
}

static void *leader_main(void *arg)
{
  struct nrd_scheduler *s = arg;
  int64_t period = leader_period_ms(s->cfg);
  pthread_mutex_lock(&s->lock);
  while (!s->stopping) {
    nrd_cond_wait_ms(&s->cond, &s->lock, period);
    if (s->stopping)
      break;
    pthread_mutex_unlock(&s->lock);
    bool lead = leader_check(s);
    pthread_mutex_lock(&s->lock);
    leader_set(s, lead, false);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
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
    if (!s->leader)
      LOG_DEBUG("scheduled run skipped: another replica leads");
    else if (request_run(s, id) == 0)
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
  /* The first try before the threads: a leader's first tick is at once. */
  bool lead = leader_check(s);
  s->watch = nrd_watch_create(cfg, r, lead);
  leader_set(s, lead, true);
  if (!leads_alone(cfg))
    LOG_INFO(lead ? "scheduler: this replica leads (scheduled runs and watch)"
                  : "scheduler: another replica leads; this one takes over if it goes");
  if (cfg->migration_interval_minutes > 0)
    nrd_thread_start(&s->thread, scheduler_main, s);
  if (!leads_alone(cfg))
    nrd_thread_start(&s->leader_thread, leader_main, s);
  return s;
}

void nrd_scheduler_halt(struct nrd_scheduler *s)
{
  if (!s)
    return;
  nrd_watch_halt(s->watch);
  if (!nrd_flag_raise(&s->lock, &s->cond, &s->stopping))
    return;
  if (s->cfg->migration_interval_minutes > 0)
    pthread_join(s->thread, NULL);
  if (!leads_alone(s->cfg))
    pthread_join(s->leader_thread, NULL);
}

void nrd_scheduler_destroy(struct nrd_scheduler *s)
{
  if (!s)
    return;
  nrd_scheduler_halt(s);
  nrd_watch_destroy(s->watch);
  if (s->store) {
    nrd_store_leader_release(s->store, LEADER_NAME);
    nrd_store_close(s->store);
  }
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
  nrd_json_add_bool(o, "leader", s->leader);
  if (s->leader) {
    nrd_iso8601(s->leader_ms, at);
    nrd_json_add_str(o, "leaderSince", at);
  } else {
    cJSON_AddNullToObject(o, "leaderSince");
  }
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
