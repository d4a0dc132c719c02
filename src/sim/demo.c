/* What `novita-recoveryd demo` shows: the sample fleet with two instances of
 * its own, and a ticker that keeps failing migrations so the scheduler and
 * the operator console have work. */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/thread.h"
#include "nrd/util.h"
#include "sim_internal.h"

#define DEMO_HOSTILE_ID "i-2"
#define DEMO_NO_IMAGE_ID "i-legacy-7"

/* A failed migration job of instance_id created at created_s. */
static cJSON *failed_job(const char *job_id, const char *instance_id, int64_t created_s)
{
  cJSON *o = nrd_json_object();
  cJSON *st = nrd_json_object();
  char at[24];

  snprintf(at, sizeof at, "%lld", (long long)created_s);
  nrd_json_add_str(o, "Id", job_id);
  nrd_json_add_str(o, "user", "u-sim");
  nrd_json_add_str(o, "type", "autoInstanceMigrate");
  nrd_json_add_str(o, "instanceId", instance_id);
  nrd_json_add_str(o, "createdAt", at);
  nrd_json_add_str(st, "state", "fail");
  nrd_json_add_str(st, "error", "MIGRATE_FAILED");
  nrd_json_add_str(st, "message", "migration failed: no capacity on target");
  cJSON_AddItemToObject(o, "state", st);
  nrd_json_add_str(o, "logAddress", "");
  return o;
}

static cJSON *find_by_id(cJSON *arr, const char *id)
{
  cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    const char *v = nrd_json_str(it, "id");
    if (v && strcmp(v, id) == 0)
      return it;
  }
  return NULL;
}

static void set_str(cJSON *o, const char *key, const char *v)
{
  cJSON_DeleteItemFromObjectCaseSensitive(o, key);
  nrd_json_add_str(o, key, v);
}

cJSON *nrd_sim_make_demo(int64_t now_s)
{
  cJSON *sc = nrd_sim_make_fleet(24, 6, now_s);
  cJSON *inst = cJSON_GetObjectItemCaseSensitive(sc, "instances");
  cJSON *jobs = cJSON_GetObjectItemCaseSensitive(sc, "jobs");
  cJSON *hostile = find_by_id(inst, DEMO_HOSTILE_ID);
  cJSON *legacy;

  /* A name that is markup: the console must show it as text. */
  if (hostile)
    set_str(hostile, "name", NRD_SIM_DEMO_HOSTILE_NAME);
  /* A failed migration whose snapshot has no image: its row fails before
   * anything is deleted and waits for an operator (on every retry too). */
  legacy = nrd_json_checked(cJSON_Duplicate(find_by_id(inst, "i-1"), true));
  set_str(legacy, "id", DEMO_NO_IMAGE_ID);
  set_str(legacy, "name", "legacy-notebook-7");
  cJSON_DeleteItemFromObjectCaseSensitive(legacy, "imageUrl");
  cJSON_AddItemToArray(inst, legacy);
  cJSON_AddItemToArray(jobs, failed_job("job-legacy-7", DEMO_NO_IMAGE_ID, now_s - 300));
  return sc;
}

int nrd_sim_fail_migration(struct nrd_sim *s, int64_t now_s, char id_out[64])
{
  return nrd_sim_fail_migration_as(s, now_s, "migrating", id_out);
}

int nrd_sim_fail_migration_as(struct nrd_sim *s, int64_t now_s, const char *status, char id_out[64])
{
  cJSON *it, *victim = NULL;
  char job_id[96];
  int rc = -1;

  pthread_mutex_lock(&s->mu);
  cJSON_ArrayForEach(it, s->instances) {
    const char *st = nrd_json_str(it, "status");
    if (st && strcmp(st, "running") == 0 && nrd_json_str_nonempty(it, "id")) {
      victim = it;
      break;
    }
  }
  if (victim) {
    const char *id = nrd_json_str(victim, "id");
    snprintf(id_out, 64, "%s", id);
    snprintf(job_id, sizeof job_id, "job-demo-%lld-%d", (long long)now_s,
             cJSON_GetArraySize(s->jobs));
    set_str(victim, "status", status && *status ? status : "migrating");
    set_str(victim, "spotStatus", "reclaiming");
    cJSON_AddItemToArray(s->jobs, failed_job(job_id, id_out, now_s));
    sim_instances_changed(s);
    rc = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int nrd_sim_start_migration(struct nrd_sim *s, const char *instance_id, const char *job_id,
                            int64_t created_s)
{
  int rc = -1;
  pthread_mutex_lock(&s->mu);
  cJSON *inst = find_by_id(s->instances, instance_id);
  if (inst) {
    cJSON *job = failed_job(job_id, instance_id, created_s);
    cJSON *st = cJSON_GetObjectItemCaseSensitive(job, "state");
    cJSON_DeleteItemFromObjectCaseSensitive(st, "error");
    cJSON_DeleteItemFromObjectCaseSensitive(st, "message");
    set_str(st, "state", "running");
    set_str(inst, "status", "migrating");
    cJSON_AddItemToArray(s->jobs, job);
    sim_instances_changed(s);
    rc = 0;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int nrd_sim_set_job_state(struct nrd_sim *s, const char *job_id, const char *state)
{
  int rc = -1;
  cJSON *it;
  pthread_mutex_lock(&s->mu);
  cJSON_ArrayForEach(it, s->jobs) {
    const char *v = nrd_json_str(it, "Id");
    cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "state");
    if (!v || strcmp(v, job_id) != 0 || !cJSON_IsObject(st))
      continue;
    set_str(st, "state", state);
    if (strcmp(state, "fail") == 0) {
      set_str(st, "error", "MIGRATE_FAILED");
      set_str(st, "message", "migration failed: no capacity on target");
    }
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* ---- the ticker ---- */

struct nrd_sim_ticker {
  struct nrd_sim *sim;
  unsigned period_ms;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
};

static void *ticker_main(void *arg)
{
  struct nrd_sim_ticker *t = arg;
  char id[64];

  pthread_mutex_lock(&t->mu);
  while (!t->stop) {
    int64_t until = nrd_mono_ms() + t->period_ms;
    while (!t->stop && nrd_mono_ms() < until)
      nrd_cond_wait_ms(&t->cv, &t->mu, until - nrd_mono_ms());
    if (t->stop)
      break;
    pthread_mutex_unlock(&t->mu);
    if (nrd_sim_fail_migration(t->sim, nrd_now_ms() / 1000, id) == 0)
      LOG_INFO("demo: the simulator failed a migration", "instanceId", id);
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

struct nrd_sim_ticker *nrd_sim_ticker_start(struct nrd_sim *s, unsigned period_ms)
{
  struct nrd_sim_ticker *t = nrd_xcalloc(1, sizeof *t);

  t->sim = s;
  t->period_ms = period_ms;
  pthread_mutex_init(&t->mu, NULL);
  nrd_cond_init_mono(&t->cv);
  nrd_thread_start(&t->thread, ticker_main, t);
  return t;
}

void nrd_sim_ticker_stop(struct nrd_sim_ticker *t)
{
  if (!t)
    return;
  nrd_thread_stop(t->thread, &t->mu, &t->cv, &t->stop);
  free(t);
}
