/* Run records, the webhook outbox and retention. */

#include "store_test.h"

#include <string.h>

static void test_runs(void **state)
{
  struct store_fixture *f = *state;
  struct nrd_run_record r;
  assert_int_equal(nrd_store_run_insert(f->st, "run_1", "api", true, 1000), NRD_OK);
  assert_int_equal(nrd_store_run_get(f->st, "run_1", &r), NRD_OK);
  assert_string_equal(r.run_id, "run_1");
  assert_string_equal(r.trigger, "api");
  assert_string_equal(r.state, "running");
  assert_true(r.dry_run);
  assert_int_equal(r.started_ms, 1000);
  assert_int_equal(r.finished_ms, 0);
  assert_null(r.report_json);
  nrd_run_record_cleanup(&r);

  assert_int_equal(nrd_store_run_finish(f->st, "run_1", "done", "{\"errors\":0}", 2000), NRD_OK);
  assert_int_equal(nrd_store_run_get(f->st, "run_1", &r), NRD_OK);
  assert_string_equal(r.state, "done");
  assert_string_equal(r.report_json, "{\"errors\":0}");
  assert_int_equal(r.finished_ms, 2000);
  nrd_run_record_cleanup(&r);

  assert_int_equal(nrd_store_run_finish(f->st, "run_none", "done", "{}", 2000), NRD_NONE);
  assert_int_equal(nrd_store_run_get(f->st, "run_none", &r), NRD_NONE);

  /* A run left running by a dead process is failed at start-up. On
   * PostgreSQL only the runs of a process with no session left are
   * (test_pg_store's test_runs): this one's process is alive. */
  if (store_test_is_pg())
    return;
  assert_int_equal(nrd_store_run_insert(f->st, "run_2", "scheduler", false, 3000), NRD_OK);
  /* SQLite shares no run lock: a running run is never another's to join. */
  assert_int_equal(nrd_store_run_holding_lock(f->st, "run", &r), NRD_NONE);
  assert_int_equal(nrd_store_run_fail_stale(f->st, 4000), NRD_OK);
  assert_int_equal(nrd_store_run_get(f->st, "run_2", &r), NRD_OK);
  assert_string_equal(r.state, "failed");
  assert_false(r.dry_run);
  assert_int_equal(r.finished_ms, 4000);
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_store_run_get(f->st, "run_1", &r), NRD_OK);
  assert_string_equal(r.state, "done");
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_store_run_fail_stale(f->st, 5000), NRD_OK);
}

static void add_event(struct nrd_store *st, const char *id, int64_t created)
{
  struct nrd_event e = {
    .id = (char *)id, .type = "run.completed", .body_json = "{}", .created_ms = created
  };
  assert_int_equal(nrd_store_event_insert(st, &e), NRD_OK);
}

static void test_outbox(void **state)
{
  struct store_fixture *f = *state;
  struct nrd_event ev;
  assert_int_equal(nrd_store_event_next(f->st, &ev), NRD_NONE);

  add_event(f->st, "evt_b", 1000);
  add_event(f->st, "evt_a", 1001);
  add_event(f->st, "evt_c", 1002);
  struct nrd_event dup = { .id = "evt_a", .type = "x", .body_json = "{}", .created_ms = 1 };
  assert_int_equal(nrd_store_event_insert(f->st, &dup), NRD_NONE);

  /* Oldest first by insertion order, whatever the ids. */
  assert_int_equal(nrd_store_event_next(f->st, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_b");
  assert_string_equal(ev.type, "run.completed");
  assert_string_equal(ev.body_json, "{}");
  assert_int_equal(ev.attempts, 0);
  int64_t first_seq = ev.seq;
  nrd_event_cleanup(&ev);

  /* A failed attempt keeps it first; delivered moves on. */
  assert_int_equal(nrd_store_event_mark(f->st, "evt_b", "pending", 1, 9000, "HTTP 500"), NRD_OK);
  assert_int_equal(nrd_store_event_next(f->st, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_b");
  assert_int_equal(ev.attempts, 1);
  assert_int_equal(ev.next_attempt_ms, 9000);
  assert_string_equal(ev.last_error, "HTTP 500");
  nrd_event_cleanup(&ev);
  assert_int_equal(nrd_store_event_mark(f->st, "evt_b", "delivered", 2, 0, NULL), NRD_OK);
  assert_int_equal(nrd_store_event_next(f->st, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_a");
  assert_true(ev.seq > first_seq);
  nrd_event_cleanup(&ev);
  assert_int_equal(nrd_store_event_mark(f->st, "evt_none", "dead", 1, 0, NULL), NRD_NONE);

  struct nrd_event *list = NULL;
  size_t n = 0;
  assert_int_equal(nrd_store_event_list(f->st, NULL, 10, &list, &n), NRD_OK);
  assert_int_equal(n, 3);
  assert_string_equal(list[0].id, "evt_b");
  assert_string_equal(list[0].state, "delivered");
  assert_string_equal(list[2].id, "evt_c");
  nrd_events_free(list, n);

  assert_int_equal(nrd_store_event_list(f->st, "evt_b", 10, &list, &n), NRD_OK);
  assert_int_equal(n, 2);
  assert_string_equal(list[0].id, "evt_a");
  nrd_events_free(list, n);

  assert_int_equal(nrd_store_event_list(f->st, "evt_c", 10, &list, &n), NRD_OK);
  assert_int_equal(n, 0);
  nrd_events_free(list, n);

  assert_int_equal(nrd_store_event_list(f->st, "evt_unknown", 1, &list, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_string_equal(list[0].id, "evt_b");
  nrd_events_free(list, n);
}

static void test_prune(void **state)
{
  struct store_fixture *f = *state;
  /* Old and finished: pruned. */
  assert_int_equal(nrd_store_run_insert(f->st, "run_old", "api", false, 100), NRD_OK);
  assert_int_equal(nrd_store_run_finish(f->st, "run_old", "done", "{}", 200), NRD_OK);
  assert_int_equal(nrd_store_ledger_insert(f->st, "job-old", "t", "i-1", "n", "n-r", 1, 100),
                   NRD_OK);
  assert_int_equal(nrd_store_ledger_abandon(f->st, "job-old", "gone", 200), NRD_OK);
  add_event(f->st, "evt_old", 100);
  assert_int_equal(nrd_store_event_mark(f->st, "evt_old", "delivered", 1, 0, NULL), NRD_OK);
  /* Old but still running, open or pending: kept. */
  assert_int_equal(nrd_store_run_insert(f->st, "run_live", "api", false, 100), NRD_OK);
  assert_int_equal(nrd_store_ledger_insert(f->st, "job-open", "t", "i-2", "n", "n-r", 1, 100),
                   NRD_OK);
  add_event(f->st, "evt_pending", 100);
  /* Recent and finished: kept. */
  assert_int_equal(nrd_store_run_insert(f->st, "run_new", "api", false, 5000), NRD_OK);
  assert_int_equal(nrd_store_run_finish(f->st, "run_new", "done", "{}", 6000), NRD_OK);

  int64_t deleted = -1;
  assert_int_equal(nrd_store_prune(f->st, 1000, &deleted), NRD_OK);
  assert_int_equal(deleted, 3);

  struct nrd_run_record r;
  struct nrd_ledger_row row;
  assert_int_equal(nrd_store_run_get(f->st, "run_old", &r), NRD_NONE);
  assert_int_equal(nrd_store_run_get(f->st, "run_live", &r), NRD_OK);
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_store_run_get(f->st, "run_new", &r), NRD_OK);
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_store_ledger_get(f->st, "job-old", &row), NRD_NONE);
  assert_int_equal(nrd_store_ledger_get(f->st, "job-open", &row), NRD_OK);
  nrd_ledger_row_cleanup(&row);
  struct nrd_event ev;
  assert_int_equal(nrd_store_event_next(f->st, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_pending");
  nrd_event_cleanup(&ev);

  assert_int_equal(nrd_store_prune(f->st, 1000, &deleted), NRD_OK);
  assert_int_equal(deleted, 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_runs, store_fixture_setup, store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_outbox, store_fixture_setup, store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_prune, store_fixture_setup, store_fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
