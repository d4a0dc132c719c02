/* The cluster's run lock: on a shared store (PostgreSQL) one run at a time
 * across the replicas. The coordinator takes it (a session advisory lock on
 * its own store connection) before it records and runs a run, and gives it
 * up after. A replica that finds it held waits; a run that another
 * replica's run held it for, and that ended done with the same dry-run
 * setting, is not run again: it is joined (runner.c ends the local run with
 * that run's report). On SQLite (one host) there is no lock to take. */
#include <stdio.h>
#include <string.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/util.h"

#define RUN_LOCK_NAME "run"
/* Between two tries while another replica holds it (monotonic). */
#define RUN_LOCK_TRY_MS 200

/* Waits a moment between two tries; true when the runner stops meanwhile. */
static bool wait_a_moment(struct nrd_runner *r)
{
  pthread_mutex_lock(&r->lock);
  if (!r->stopping && !atomic_load(&r->stop_work))
    nrd_cond_wait_ms(&r->cond, &r->lock, RUN_LOCK_TRY_MS);
  bool stop = r->stopping || atomic_load(&r->stop_work);
  pthread_mutex_unlock(&r->lock);
  return stop;
}

/* Notes the run under way under the lock, when the store can tell (its
 * holder may not have recorded it yet): the last one seen is the one to
 * join. */
static void note_holder(struct nrd_runner *r, char seen[64])
{
  struct nrd_run_record rec;
  if (nrd_store_run_holding_lock(r->coord.store, RUN_LOCK_NAME, &rec) == NRD_OK && rec.run_id &&
      strcmp(rec.run_id, seen) != 0) {
    snprintf(seen, 64, "%s", rec.run_id);
    LOG_INFO("another replica's run holds the run lock; waiting for it", "heldBy", seen);
  }
  nrd_run_record_cleanup(&rec);
}

/* The count key of a report (-1 when it has none). */
static int64_t report_count(const char *report_json, const char *key)
{
  int64_t n = -1;
  cJSON *o = report_json ? nrd_json_parse(report_json, strlen(report_json)) : NULL;
  if (!nrd_json_i64(o, key, &n))
    n = -1;
  cJSON_Delete(o);
  return n;
}

/* The run seen under the lock, once it is free: true with *other when it
 * ended done, with the dry-run setting asked for, and left no row for the
 * next run (a holder that stopped mid-run parks its rows: this run is that
 * next run), and was not the watch's (a watch run may list nothing). */
static bool joinable_end(struct nrd_runner *r, const char *seen, bool dry_run,
                         struct nrd_run_record *other)
{
  if (nrd_store_run_get(r->coord.store, seen, other) != NRD_OK)
    return false;
  bool ok = other->state && strcmp(other->state, "done") == 0 && other->dry_run == dry_run &&
            other->trigger && strcmp(other->trigger, "watch") != 0 &&
            report_count(other->report_json, "deferred") == 0;
  if (!ok) {
    LOG_INFO("the run waited for did not end as one to join; running this one", "heldBy", seen,
             "state", other->state);
    nrd_run_record_cleanup(other);
  }
  return ok;
}

enum run_lock_rc nrd_run_lock_take(struct nrd_runner *r, bool dry_run, bool may_join,
                                   struct nrd_run_record *joined)
{
  char seen[64] = "";
  int64_t give_up = nrd_mono_ms() + (int64_t)r->cfg->run_deadline_seconds * 1000;
  memset(joined, 0, sizeof *joined);
  if (!nrd_store_target_of(r->cfg).url)
    return RUN_LOCK_ALONE;
  for (;;) {
    int rc = nrd_store_leader_try(r->coord.store, RUN_LOCK_NAME);
    if (rc == NRD_OK)
      break;
    if (rc != NRD_NONE)
      return RUN_LOCK_STORE_DOWN;
    note_holder(r, seen);
    if (wait_a_moment(r))
      return RUN_LOCK_STOPPED;
    if (nrd_mono_ms() >= give_up) {
      /* Its holder overran a run deadline: the per-row claims keep this
       * run exactly-once without the lock, as before there was one. */
      LOG_WARN("the run lock stayed held for a run deadline; running without it", "heldBy", seen);
      return RUN_LOCK_ALONE;
    }
  }
  if (seen[0] && may_join && joinable_end(r, seen, dry_run, joined)) {
    nrd_run_lock_release(r);
    return RUN_LOCK_JOIN;
  }
  return RUN_LOCK_HELD;
}

void nrd_run_lock_release(struct nrd_runner *r)
{
  if (nrd_store_target_of(r->cfg).url &&
      nrd_store_leader_release(r->coord.store, RUN_LOCK_NAME) != NRD_OK)
    LOG_WARN("could not give up the run lock; it goes with the connection");
}

char *nrd_run_lock_joined_report(const struct nrd_run_record *other, const char *run_id,
                                 int *errors)
{
  const char *text = other->report_json ? other->report_json : "{}";
  cJSON *o = nrd_json_parse(text, strlen(text));
  if (!cJSON_IsObject(o)) {
    cJSON_Delete(o);
    o = nrd_json_object();
  }
  int64_t n = 0;
  *errors = nrd_json_i64(o, "errors", &n) ? (int)n : 0;
  /* This run's id, the joined run's, and the joined run's outcomes last. */
  cJSON *outcomes = cJSON_DetachItemFromObjectCaseSensitive(o, "outcomes");
  cJSON_DeleteItemFromObjectCaseSensitive(o, "runId");
  cJSON_DeleteItemFromObjectCaseSensitive(o, "joinedRunId");
  nrd_json_add_str(o, "runId", run_id);
  nrd_json_add_str(o, "joinedRunId", other->run_id);
  if (outcomes)
    cJSON_AddItemToObject(o, "outcomes", outcomes);
  char *out = nrd_json_print(o);
  cJSON_Delete(o);
  return out;
}
