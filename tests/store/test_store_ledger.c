/* The recovery ledger: unique rows, leases, owner-only updates with their
 * event in the same transaction, operator control, two connections racing. */

#include "store_test.h"

#include <pthread.h>
#include <string.h>

#define LEASE_MS 30000

static void insert(struct nrd_store *st, const char *job, const char *instance, int64_t now)
{
  char name[128];
  snprintf(name, sizeof name, "%s-recreated-%lld", instance, (long long)now);
  assert_int_equal(
      nrd_store_ledger_insert(st, job, "instanceMigrate", instance, instance, name, now, now),
      NRD_OK);
}

static void test_state_names(void **state)
{
  for (int i = 0; i < NRD_ROW_STATE_COUNT; i++) {
    enum nrd_row_state s;
    assert_true(nrd_row_state_parse(nrd_row_state_name((enum nrd_row_state)i), &s));
    assert_int_equal(s, i);
  }
  enum nrd_row_state s;
  assert_false(nrd_row_state_parse("Pending", &s));
  assert_false(nrd_row_state_parse(NULL, &s));
  assert_string_equal(nrd_row_state_name(NRD_ROW_CREATING), "creating");
  assert_true(nrd_row_state_is_open(NRD_ROW_PENDING));
  assert_true(nrd_row_state_is_open(NRD_ROW_CREATING));
  assert_false(nrd_row_state_is_open(NRD_ROW_CREATED));
  assert_false(nrd_row_state_is_open(NRD_ROW_FAILED));
  assert_false(nrd_row_state_is_open(NRD_ROW_ABANDONED));
}

static void test_insert_unique(void **state)
{
  struct store_fixture *f = *state;
  insert(f->st, "job-1", "i-a", 1764345600123);
  assert_int_equal(nrd_store_ledger_insert(f->st, "job-1", "instanceMigrate", "i-other", "x",
                                           "x-recreated-1", 1, 2),
                   NRD_NONE);

  struct nrd_ledger_row row;
  assert_int_equal(nrd_store_ledger_get(f->st, "job-1", &row), NRD_OK);
  assert_string_equal(row.job_id, "job-1");
  assert_string_equal(row.job_type, "instanceMigrate");
  assert_string_equal(row.instance_id, "i-a");
  assert_int_equal(row.state, NRD_ROW_PENDING);
  assert_string_equal(row.new_name, "i-a-recreated-1764345600123");
  assert_int_equal(row.name_ms, 1764345600123);
  assert_null(row.owner);
  assert_int_equal(row.attempts, 0);
  assert_false(row.delete_sent);
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_store_ledger_get(f->st, "job-none", &row), NRD_NONE);
}

static void test_claim_lease(void **state)
{
  struct store_fixture *f = *state;
  struct nrd_ledger_row row;
  /* PostgreSQL's leases run on the database's clock, not on the caller's
   * times used here: test_pg_store's test_claim_lease. */
  if (store_test_is_pg())
    skip();
  insert(f->st, "job-1", "i-a", 1000);

  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "A", "run_1", 2000, LEASE_MS, &row),
                   NRD_OK);
  assert_string_equal(row.owner, "A");
  assert_string_equal(row.run_id, "run_1");
  assert_int_equal(row.lease_until_ms, 2000 + LEASE_MS);
  assert_int_equal(row.attempts, 1);
  nrd_ledger_row_cleanup(&row);

  /* B is refused while A's lease runs, even at its last millisecond. */
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "B", "run_2", 3000, LEASE_MS, &row),
                   NRD_NONE);
  assert_null(row.owner);
  assert_int_equal(
      nrd_store_ledger_claim(f->st, "job-1", "B", "run_2", 2000 + LEASE_MS, LEASE_MS, NULL),
      NRD_NONE);
  /* A may claim again (resume), and renew. */
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "A", "run_1", 4000, LEASE_MS, NULL),
                   NRD_OK);
  assert_int_equal(nrd_store_ledger_renew(f->st, "job-1", "A", 50000), NRD_OK);
  assert_int_equal(nrd_store_ledger_renew(f->st, "job-1", "B", 90000), NRD_NONE);
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "B", "run_2", 49999, LEASE_MS, NULL),
                   NRD_NONE);

  /* Past the lease, B takes over and A can no longer write. */
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "B", "run_2", 50001, LEASE_MS, &row),
                   NRD_OK);
  assert_string_equal(row.owner, "B");
  assert_string_equal(row.run_id, "run_2");
  assert_int_equal(row.attempts, 3);
  nrd_ledger_row_cleanup(&row);

  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING, .set_delete_sent = true };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-1", "A", &u, 50002), NRD_NONE);
  assert_int_equal(nrd_store_ledger_renew(f->st, "job-1", "A", 99999), NRD_NONE);
  assert_int_equal(nrd_store_ledger_get(f->st, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_PENDING);
  assert_false(row.delete_sent);
  nrd_ledger_row_cleanup(&row);

  /* Released, anyone may claim at once. */
  assert_int_equal(nrd_store_ledger_release(f->st, "job-1", "A"), NRD_NONE);
  assert_int_equal(nrd_store_ledger_release(f->st, "job-1", "B"), NRD_OK);
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "C", "run_3", 50003, LEASE_MS, NULL),
                   NRD_OK);
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-missing", "C", "run_3", 1, 1, NULL),
                   NRD_NONE);
}

static void test_update_fields_and_event(void **state)
{
  struct store_fixture *f = *state;
  struct nrd_ledger_row row;
  struct nrd_event ev;
  insert(f->st, "job-1", "i-a", 1000);
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "A", "run_1", 2000, LEASE_MS, NULL),
                   NRD_OK);

  /* A refused update writes no event either. */
  struct nrd_event e1 = { .id = "evt_1",
                          .type = "instance.recovery_failed",
                          .body_json = "{\"id\":\"evt_1\"}",
                          .created_ms = 2100 };
  struct nrd_ledger_update u = { .state = NRD_ROW_FAILED, .last_error = "boom", .event = &e1 };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-1", "B", &u, 2100), NRD_NONE);
  assert_int_equal(nrd_store_event_next(f->st, &ev), NRD_NONE);

  u = (struct nrd_ledger_update){ .state = NRD_ROW_DELETING,
                                  .set_delete_sent = true,
                                  .last_error = "transient" };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-1", "A", &u, 2200), NRD_OK);
  u = (struct nrd_ledger_update){ .state = NRD_ROW_CREATING, .set_create_sent = true };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-1", "A", &u, 2300), NRD_OK);
  assert_int_equal(nrd_store_ledger_get(f->st, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_CREATING);
  assert_true(row.delete_sent);
  assert_true(row.create_sent);
  assert_false(row.adopted);
  assert_string_equal(row.last_error, "transient"); /* NULL keeps */
  assert_string_equal(row.owner, "A");
  assert_int_equal(row.updated_ms, 2300);
  nrd_ledger_row_cleanup(&row);

  struct nrd_event e2 = { .id = "evt_2",
                          .type = "instance.recreated",
                          .body_json = "{\"id\":\"evt_2\"}",
                          .created_ms = 2400 };
  u = (struct nrd_ledger_update){ .state = NRD_ROW_CREATED,
                                  .new_instance_id = "i-z",
                                  .last_error = "",
                                  .set_adopted = true,
                                  .release = true,
                                  .event = &e2 };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-1", "A", &u, 2400), NRD_OK);
  assert_int_equal(nrd_store_ledger_get(f->st, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_CREATED);
  assert_string_equal(row.new_instance_id, "i-z");
  assert_null(row.last_error); /* "" clears */
  assert_true(row.adopted);
  assert_true(row.delete_sent); /* flags are never cleared */
  assert_null(row.owner);
  assert_int_equal(row.lease_until_ms, 0);
  nrd_ledger_row_cleanup(&row);

  assert_int_equal(nrd_store_event_next(f->st, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_2");
  assert_string_equal(ev.type, "instance.recreated");
  assert_string_equal(ev.state, "pending");
  nrd_event_cleanup(&ev);

  /* Done rows cannot be claimed. */
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "A", "run_2", 9000, LEASE_MS, NULL),
                   NRD_NONE);
}

static void fail_row(struct nrd_store *st, const char *job, bool delete_sent)
{
  assert_int_equal(nrd_store_ledger_claim(st, job, "A", "run_1", 2000, LEASE_MS, NULL), NRD_OK);
  struct nrd_ledger_update u = { .state = NRD_ROW_FAILED,
                                 .last_error = "no product",
                                 .set_delete_sent = delete_sent,
                                 .release = true };
  assert_int_equal(nrd_store_ledger_update(st, job, "A", &u, 2100), NRD_OK);
}

static void test_retry_abandon(void **state)
{
  struct store_fixture *f = *state;
  struct nrd_ledger_row row;
  insert(f->st, "job-1", "i-a", 1000);
  insert(f->st, "job-2", "i-b", 1001);
  insert(f->st, "job-3", "i-c", 1002);

  /* Only failed rows can be retried. */
  assert_int_equal(nrd_store_ledger_retry(f->st, "job-1", 3000), NRD_NONE);
  assert_int_equal(nrd_store_ledger_retry(f->st, "job-none", 3000), NRD_NONE);

  fail_row(f->st, "job-1", false);
  fail_row(f->st, "job-2", true);
  assert_int_equal(nrd_store_ledger_retry(f->st, "job-1", 3000), NRD_OK);
  assert_int_equal(nrd_store_ledger_retry(f->st, "job-2", 3000), NRD_OK);
  assert_int_equal(nrd_store_ledger_get(f->st, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_PENDING);
  assert_string_equal(row.last_error, "no product");
  assert_int_equal(row.updated_ms, 3000);
  nrd_ledger_row_cleanup(&row);
  /* After a sent delete too: pending, with delete_sent kept for the machine. */
  assert_int_equal(nrd_store_ledger_get(f->st, "job-2", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_PENDING);
  assert_true(row.delete_sent);
  nrd_ledger_row_cleanup(&row);

  /* Abandon a claimed open row: its owner loses it. */
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-3", "W", "run_2", 4000, LEASE_MS, NULL),
                   NRD_OK);
  assert_int_equal(nrd_store_ledger_abandon(f->st, "job-3", "operator said so", 4100), NRD_OK);
  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-3", "W", &u, 4200), NRD_NONE);
  assert_int_equal(nrd_store_ledger_get(f->st, "job-3", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_ABANDONED);
  assert_string_equal(row.last_error, "operator said so");
  assert_null(row.owner);
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_store_ledger_abandon(f->st, "job-3", "again", 4300), NRD_NONE);
  assert_int_equal(nrd_store_ledger_retry(f->st, "job-3", 4300), NRD_NONE);

  /* A failed row can be abandoned too. */
  fail_row(f->st, "job-1", false);
  assert_int_equal(nrd_store_ledger_abandon(f->st, "job-1", "gave up", 5000), NRD_OK);
}

static void test_lists_and_counts(void **state)
{
  struct store_fixture *f = *state;
  insert(f->st, "job-b", "i-b", 2000);
  insert(f->st, "job-a", "i-a", 1000);
  insert(f->st, "job-c", "i-c", 3000);
  insert(f->st, "job-d", "i-d", 4000);
  assert_int_equal(nrd_store_ledger_abandon(f->st, "job-c", "gone", 5000), NRD_OK);

  struct nrd_ledger_row *rows = NULL;
  size_t n = 0;
  assert_int_equal(nrd_store_ledger_open(f->st, NULL, 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 3);
  assert_string_equal(rows[0].job_id, "job-a");
  assert_string_equal(rows[1].job_id, "job-b");
  assert_string_equal(rows[2].job_id, "job-d");
  nrd_ledger_rows_free(rows, n);

  assert_int_equal(nrd_store_ledger_open(f->st, NULL, 1, &rows, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].job_id, "job-a");

  /* Page on from a row: the ones after it in (created_ms, job_id) order. */
  struct nrd_ledger_row *next = NULL;
  size_t n_next = 0;
  assert_int_equal(nrd_store_ledger_open(f->st, &rows[0], 10, &next, &n_next), NRD_OK);
  assert_int_equal(n_next, 2);
  assert_string_equal(next[0].job_id, "job-b");
  assert_string_equal(next[1].job_id, "job-d");
  nrd_ledger_rows_free(rows, n);
  insert(f->st, "job-b2", "i-b2", 2000); /* same time as job-b: after it by id */
  assert_int_equal(nrd_store_ledger_open(f->st, &next[0], 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 2);
  assert_string_equal(rows[0].job_id, "job-b2");
  assert_string_equal(rows[1].job_id, "job-d");
  nrd_ledger_rows_free(rows, n);
  assert_int_equal(nrd_store_ledger_open(f->st, &next[1], 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 0);
  nrd_ledger_rows_free(rows, n);
  nrd_ledger_rows_free(next, n_next);

  assert_int_equal(nrd_store_ledger_list(f->st, -1, 100, &rows, &n), NRD_OK);
  assert_int_equal(n, 5);
  assert_string_equal(rows[0].job_id, "job-d");
  assert_string_equal(rows[4].job_id, "job-a");
  nrd_ledger_rows_free(rows, n);

  assert_int_equal(nrd_store_ledger_list(f->st, NRD_ROW_ABANDONED, 100, &rows, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].job_id, "job-c");
  assert_string_equal(rows[0].last_error, "gone");
  nrd_ledger_rows_free(rows, n);

  assert_int_equal(nrd_store_ledger_list(f->st, NRD_ROW_CREATED, 100, &rows, &n), NRD_OK);
  assert_int_equal(n, 0);
  nrd_ledger_rows_free(rows, n);

  int64_t counts[NRD_ROW_STATE_COUNT];
  assert_int_equal(nrd_store_ledger_count_by_state(f->st, counts), NRD_OK);
  assert_int_equal(counts[NRD_ROW_PENDING], 4);
  assert_int_equal(counts[NRD_ROW_ABANDONED], 1);
  assert_int_equal(counts[NRD_ROW_CREATED], 0);
}

/* ---- two connections racing for the same rows ---- */

#define RACE_ROWS 25

struct racer {
  const struct store_fixture *f;
  const char *owner;
  pthread_barrier_t *barrier;
  int won[RACE_ROWS];
  int errors;
};

static void *race(void *arg)
{
  struct racer *r = arg;
  struct nrd_store *st = NULL;
  if (store_test_open(r->f, &st) != NRD_OK)
    r->errors++;
  for (int i = 0; i < RACE_ROWS; i++) {
    char job[32];
    snprintf(job, sizeof job, "job-%d", i);
    pthread_barrier_wait(r->barrier); /* both threads go for row i together */
    if (!st)
      continue;
    int rc = nrd_store_ledger_claim(st, job, r->owner, "run", 10000, LEASE_MS, NULL);
    if (rc == NRD_OK)
      r->won[i] = 1;
    else if (rc != NRD_NONE)
      r->errors++;
  }
  nrd_store_close(st);
  return NULL;
}

static void test_two_connections_one_winner(void **state)
{
  struct store_fixture *f = *state;
  for (int i = 0; i < RACE_ROWS; i++) {
    char job[32];
    snprintf(job, sizeof job, "job-%d", i);
    insert(f->st, job, "i-x", 1000 + i);
  }
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, 2);
  struct racer a = { .f = f, .owner = "A", .barrier = &barrier };
  struct racer b = { .f = f, .owner = "B", .barrier = &barrier };
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
  assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  pthread_barrier_destroy(&barrier);

  assert_int_equal(a.errors + b.errors, 0);
  for (int i = 0; i < RACE_ROWS; i++) {
    assert_int_equal(a.won[i] + b.won[i], 1);
    char job[32];
    snprintf(job, sizeof job, "job-%d", i);
    struct nrd_ledger_row row;
    assert_int_equal(nrd_store_ledger_get(f->st, job, &row), NRD_OK);
    assert_string_equal(row.owner, a.won[i] ? "A" : "B");
    assert_int_equal(row.attempts, 1);
    nrd_ledger_row_cleanup(&row);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_state_names),
    cmocka_unit_test_setup_teardown(test_insert_unique, store_fixture_setup,
                                    store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_claim_lease, store_fixture_setup, store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_update_fields_and_event, store_fixture_setup,
                                    store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_retry_abandon, store_fixture_setup,
                                    store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_lists_and_counts, store_fixture_setup,
                                    store_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_two_connections_one_winner, store_fixture_setup,
                                    store_fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
