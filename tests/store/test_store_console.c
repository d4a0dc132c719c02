/* The operator console's read-only queries: recent runs with the counts of
 * their reports, the outbox by state, finished recoveries per hour. */

#include "store_test.h"

#include <string.h>

#define H 3600000LL

static void test_run_list(void **state)
{
  struct store_fixture *f = *state;
  struct nrd_run_summary *runs;
  size_t n;

  assert_int_equal(nrd_store_run_list(f->st, 10, &runs, &n), NRD_OK);
  assert_int_equal(n, 0);
  nrd_run_summaries_free(runs, n);

  assert_int_equal(nrd_store_run_insert(f->st, "run_a", "api", false, 1000), NRD_OK);
  assert_int_equal(
      nrd_store_run_finish(f->st, "run_a", "done",
                           "{\"totalChecked\":8,\"failedJobsFound\":4,\"instancesRecreated\":3,"
                           "\"errors\":1,\"deferred\":0,\"outcomes\":[]}",
                           2500),
      NRD_OK);
  assert_int_equal(nrd_store_run_insert(f->st, "run_b", "scheduler", true, 3000), NRD_OK);
  assert_int_equal(nrd_store_run_finish(f->st, "run_b", "failed", "{not json", 3100), NRD_OK);
  assert_int_equal(nrd_store_run_insert(f->st, "run_c", "cli", false, 4000), NRD_OK);

  assert_int_equal(nrd_store_run_list(f->st, 10, &runs, &n), NRD_OK);
  assert_int_equal(n, 3);
  /* Newest first; a running run and a broken report have no counts. */
  assert_string_equal(runs[0].run_id, "run_c");
  assert_string_equal(runs[0].state, "running");
  assert_int_equal(runs[0].finished_ms, 0);
  assert_int_equal(runs[0].total_checked, -1);
  assert_string_equal(runs[1].run_id, "run_b");
  assert_true(runs[1].dry_run);
  assert_int_equal(runs[1].errors, -1);
  assert_string_equal(runs[2].run_id, "run_a");
  assert_string_equal(runs[2].trigger, "api");
  assert_int_equal(runs[2].started_ms, 1000);
  assert_int_equal(runs[2].finished_ms, 2500);
  assert_int_equal(runs[2].total_checked, 8);
  assert_int_equal(runs[2].failed_found, 4);
  assert_int_equal(runs[2].recreated, 3);
  assert_int_equal(runs[2].errors, 1);
  assert_int_equal(runs[2].deferred, 0);
  nrd_run_summaries_free(runs, n);

  assert_int_equal(nrd_store_run_list(f->st, 1, &runs, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_string_equal(runs[0].run_id, "run_c");
  nrd_run_summaries_free(runs, n);
}

static void test_event_counts(void **state)
{
  struct store_fixture *f = *state;
  int64_t pending, delivered, dead;
  const char *ids[] = { "evt_1", "evt_2", "evt_3", "evt_4" };

  assert_int_equal(nrd_store_event_count_by_state(f->st, &pending, &delivered, &dead), NRD_OK);
  assert_int_equal(pending + delivered + dead, 0);
  for (size_t i = 0; i < 4; i++) {
    struct nrd_event e = { .id = (char *)ids[i],
                           .type = "run.completed",
                           .body_json = "{}",
                           .created_ms = 1000 + (int64_t)i };
    assert_int_equal(nrd_store_event_insert(f->st, &e), NRD_OK);
  }
  assert_int_equal(nrd_store_event_mark(f->st, "evt_1", "delivered", 1, 0, NULL), NRD_OK);
  assert_int_equal(nrd_store_event_mark(f->st, "evt_2", "dead", 5, 0, "gone"), NRD_OK);
  assert_int_equal(nrd_store_event_count_by_state(f->st, &pending, &delivered, &dead), NRD_OK);
  assert_int_equal(pending, 2);
  assert_int_equal(delivered, 1);
  assert_int_equal(dead, 1);
}

/* A row found at found_ms, taken to state at done_ms. */
static void row(struct nrd_store *st, const char *job, int64_t found_ms, int state, bool adopted,
                int64_t done_ms)
{
  char name[64];
  snprintf(name, sizeof name, "%s-recreated-1", job);
  assert_int_equal(nrd_store_ledger_insert(st, job, "instanceMigrate", job, job, name, 1, found_ms),
                   NRD_OK);
  if (state == NRD_ROW_PENDING)
    return;
  if (state == NRD_ROW_ABANDONED) {
    assert_int_equal(nrd_store_ledger_abandon(st, job, "by hand", done_ms), NRD_OK);
    return;
  }
  assert_int_equal(nrd_store_ledger_claim(st, job, "me", "run_x", found_ms, 30000, NULL), NRD_OK);
  bool running = state == NRD_ROW_RUNNING;
  if (running)
    state = NRD_ROW_CREATED; /* then seen running */
  struct nrd_ledger_update u = { .state = (enum nrd_row_state)state,
                                 .set_adopted = adopted,
                                 .new_instance_id = state == NRD_ROW_CREATED ? "i-new" : NULL,
                                 .last_error = state == NRD_ROW_FAILED ? "no image" : NULL,
                                 .release = true };
  assert_int_equal(nrd_store_ledger_update(st, job, "me", &u, running ? done_ms - 1 : done_ms),
                   NRD_OK);
  if (running) {
    struct nrd_ledger_started up = { .running = true };
    assert_int_equal(nrd_store_ledger_started(st, job, &up, done_ms), NRD_OK);
  }
}

static void test_hourly(void **state)
{
  struct store_fixture *f = *state;
  struct nrd_hourly_bucket *b;
  size_t n;
  int64_t t = 1000 * H; /* an hour boundary */

  row(f->st, "old", t - 2 * H, NRD_ROW_CREATED, false, t - H); /* before since */
  row(f->st, "a", t, NRD_ROW_CREATED, false, t + 1000);
  row(f->st, "b", t, NRD_ROW_RUNNING, false, t + 3000); /* counted as created */
  row(f->st, "c", t, NRD_ROW_CREATED, true, t + 2000);
  row(f->st, "d", t, NRD_ROW_FAILED, false, t + 500);
  row(f->st, "e", t + H, NRD_ROW_ABANDONED, false, t + H + 5);
  row(f->st, "open", t, NRD_ROW_PENDING, false, t); /* not finished */

  assert_int_equal(nrd_store_ledger_hourly(f->st, t, &b, &n), NRD_OK);
  assert_int_equal(n, 4);
  /* Hour t: created (not adopted) x2, created adopted, failed; then hour t+H. */
  assert_int_equal(b[0].hour_ms, t);
  assert_string_equal(b[0].state, "created");
  assert_false(b[0].adopted);
  assert_int_equal(b[0].count, 2);
  assert_int_equal(b[0].ttr_sum_ms, 4000);
  assert_int_equal(b[0].ttr_max_ms, 3000);
  assert_string_equal(b[1].state, "created");
  assert_true(b[1].adopted);
  assert_int_equal(b[1].count, 1);
  assert_string_equal(b[2].state, "failed");
  assert_int_equal(b[2].count, 1);
  assert_int_equal(b[3].hour_ms, t + H);
  assert_string_equal(b[3].state, "abandoned");
  nrd_hourly_buckets_free(b, n);

  assert_int_equal(nrd_store_ledger_hourly(f->st, t + 2 * H, &b, &n), NRD_OK);
  assert_int_equal(n, 0);
  nrd_hourly_buckets_free(b, n);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_run_list, store_fixture_setup, store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_event_counts, store_fixture_setup, store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_hourly, store_fixture_setup, store_fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
