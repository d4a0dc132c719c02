/* RETENTION_DAYS: at the end of each run, finished runs, finished ledger rows
 * (created, abandoned) and delivered or dead events older than the window are
 * pruned; recent ones, and old rows or events still in play, stay. The old
 * records are written straight into the database before the service starts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/store.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define DAY_MS ((int64_t)86400 * 1000)

static void put_run(struct nrd_store *st, const char *id, int64_t finished)
{
  char report[256];
  snprintf(report, sizeof(report),
           "{\"totalChecked\":0,\"failedJobsFound\":0,\"instancesRecreated\":0,\"errors\":0,"
           "\"deferred\":0,\"dryRun\":false,\"runId\":\"%s\",\"outcomes\":[]}",
           id);
  assert_int_equal(nrd_store_run_insert(st, id, "api", false, finished - 60000), NRD_OK);
  assert_int_equal(nrd_store_run_finish(st, id, "done", report, finished), NRD_OK);
}

static void put_row(struct nrd_store *st, const char *job, enum nrd_row_state state, int64_t at)
{
  char inst[64], name[96];
  snprintf(inst, sizeof(inst), "i-%s", job);
  snprintf(name, sizeof(name), "old-%s-recreated-%lld", job, (long long)at);
  assert_int_equal(nrd_store_ledger_insert(st, job, "instanceMigrate", inst, "old", name, at, at),
                   NRD_OK);
  if (state == NRD_ROW_ABANDONED) {
    assert_int_equal(nrd_store_ledger_abandon(st, job, "gone", at), NRD_OK);
    return;
  }
  assert_int_equal(nrd_store_ledger_claim(st, job, "seed", "run_seed", at, 30000, NULL), NRD_OK);
  struct nrd_ledger_update u = { .state = state, .release = true };
  if (state == NRD_ROW_CREATED)
    u.new_instance_id = "i-new";
  else
    u.last_error = "refused";
  assert_int_equal(nrd_store_ledger_update(st, job, "seed", &u, at), NRD_OK);
  if (state == NRD_ROW_CREATED) {
    /* A finished recovery: its replacement was seen running (else the run
     * would look at it first). */
    struct nrd_ledger_started run = { .running = true };
    assert_int_equal(nrd_store_ledger_started(st, job, &run, at), NRD_OK);
  }
}

static void put_event(struct nrd_store *st, const char *id, const char *state, int64_t at)
{
  char body[128];
  snprintf(body, sizeof(body), "{\"id\":\"%s\",\"type\":\"run.completed\"}", id);
  struct nrd_event e = { .id = (char *)id,
                         .type = "run.completed",
                         .body_json = body,
                         .created_ms = at,
                         .state = "pending" };
  assert_int_equal(nrd_store_event_insert(st, &e), NRD_OK);
  if (strcmp(state, "pending"))
    assert_int_equal(nrd_store_event_mark(st, id, state, 1, 0, NULL), NRD_OK);
}

static bool run_exists(struct nrd_store *st, const char *id)
{
  struct nrd_run_record rec = { 0 };
  int rc = nrd_store_run_get(st, id, &rec);
  assert_true(rc == NRD_OK || rc == NRD_NONE);
  nrd_run_record_cleanup(&rec);
  return rc == NRD_OK;
}

static bool row_exists(struct nrd_store *st, const char *job)
{
  struct nrd_ledger_row row = { 0 };
  int rc = nrd_store_ledger_get(st, job, &row);
  assert_true(rc == NRD_OK || rc == NRD_NONE);
  nrd_ledger_row_cleanup(&row);
  return rc == NRD_OK;
}

static bool event_exists(struct nrd_store *st, const char *id)
{
  struct nrd_event *ev = NULL;
  size_t n = 0;
  bool found = false;
  assert_int_equal(nrd_store_event_list(st, NULL, 100000, &ev, &n), NRD_OK);
  for (size_t i = 0; i < n; i++)
    if (!strcmp(ev[i].id, id))
      found = true;
  nrd_events_free(ev, n);
  return found;
}

static void test_old_records_pruned_after_a_run(void **state)
{
  (void)state;
  struct tu_stack s;
  struct nrd_store *st = NULL;
  char err[256];
  long status = 0;
  int64_t now = nrd_now_ms();
  int64_t old = now - 40 * DAY_MS, recent = now - 1 * DAY_MS;

  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(1, 1);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.retention_days = 30;

  assert_int_equal(nrd_store_open_path(s.cfg.database_path, &st, NULL, err, sizeof(err)), NRD_OK);
  put_run(st, "run_old", old);
  put_run(st, "run_recent", recent);
  put_row(st, "job-old-created", NRD_ROW_CREATED, old);
  put_row(st, "job-old-abandoned", NRD_ROW_ABANDONED, old);
  put_row(st, "job-old-failed", NRD_ROW_FAILED, old); /* not finished: stays */
  put_row(st, "job-recent-created", NRD_ROW_CREATED, recent);
  put_event(st, "evt_old_delivered", "delivered", old);
  put_event(st, "evt_old_dead", "dead", old);
  put_event(st, "evt_old_pending", "pending", old); /* still to send: stays */
  put_event(st, "evt_recent_delivered", "delivered", recent);
  /* All there before the run. */
  assert_true(run_exists(st, "run_old"));
  assert_true(row_exists(st, "job-old-created"));
  assert_true(event_exists(st, "evt_old_delivered"));

  tu_stack_start(&s);
  cJSON *rec = tu_stack_request(&s, "GET", "/api/instances/migration/runs/run_old", NULL, &status);
  assert_int_equal(status, 200);
  cJSON_Delete(rec);
  cJSON *ans = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(ans, "instancesRecreated"), 1);
  char run_id[64];
  snprintf(run_id, sizeof(run_id), "%s", nrd_json_str(cJSON_GetObjectItem(ans, "result"), "runId"));
  cJSON_Delete(ans);

  /* Old finished records are gone... */
  assert_false(run_exists(st, "run_old"));
  assert_false(row_exists(st, "job-old-created"));
  assert_false(row_exists(st, "job-old-abandoned"));
  assert_false(event_exists(st, "evt_old_delivered"));
  assert_false(event_exists(st, "evt_old_dead"));
  rec = tu_stack_request(&s, "GET", "/api/instances/migration/runs/run_old", NULL, &status);
  assert_int_equal(status, 404);
  cJSON_Delete(rec);
  /* ...recent ones and those still in play stay, and so does this run. */
  assert_true(run_exists(st, "run_recent"));
  assert_true(run_exists(st, run_id));
  assert_true(row_exists(st, "job-old-failed"));
  assert_true(row_exists(st, "job-recent-created"));
  assert_true(row_exists(st, "job-000"));
  assert_true(event_exists(st, "evt_old_pending"));
  assert_true(event_exists(st, "evt_recent_delivered"));

  nrd_store_close(st);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_old_records_pruned_after_a_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
