/* Following a replacement until it runs (accepted_ms, the rows to follow,
 * running or start_failed with its event, the operator's retry of a
 * start_failed row), a refused delete clearing delete_sent, and the health
 * operations (/ready's write probe, the start-up check, the last error, the
 * memory release). Run on SQLite and, as test_pg_shared_follow, on
 * PostgreSQL. */

#include "store_test.h"

#include <string.h>

#include "nrd/util.h"

#define LEASE_MS 30000

static void insert(struct nrd_store *st, const char *job, int64_t now)
{
  char name[128];
  snprintf(name, sizeof name, "i-%s-recreated-%lld", job, (long long)now);
  assert_int_equal(nrd_store_ledger_insert(st, job, "instanceMigrate", "i-x", "x", name, now, now),
                   NRD_OK);
}

/* Claims job and moves it to state (releasing it when release). */
static void move(struct nrd_store *st, const char *job, enum nrd_row_state state,
                 const char *new_id, bool release, int64_t now)
{
  assert_int_equal(nrd_store_ledger_claim(st, job, "A", "run_1", now, LEASE_MS, NULL), NRD_OK);
  struct nrd_ledger_update u = { .state = state, .new_instance_id = new_id, .release = release };
  assert_int_equal(nrd_store_ledger_update(st, job, "A", &u, now), NRD_OK);
}

static struct nrd_ledger_row get(struct nrd_store *st, const char *job)
{
  struct nrd_ledger_row row;
  assert_int_equal(nrd_store_ledger_get(st, job, &row), NRD_OK);
  return row;
}

static void test_accepted_and_following(void **state)
{
  struct store_fixture *f = *state;
  int64_t t = nrd_now_ms();
  insert(f->st, "job-1", t);
  insert(f->st, "job-2", t);
  insert(f->st, "job-3", t);
  insert(f->st, "job-4", t);
  move(f->st, "job-2", NRD_ROW_CREATED, "new-2", false, t + 100);
  move(f->st, "job-1", NRD_ROW_CREATED, "new-1", true, t + 200);
  move(f->st, "job-3", NRD_ROW_CREATING, "new-3", true, t + 50); /* not created yet */

  struct nrd_ledger_row row = get(f->st, "job-2");
  assert_int_equal(row.accepted_ms, t + 100);
  assert_int_equal(row.running_ms, 0);
  nrd_ledger_row_cleanup(&row);
  row = get(f->st, "job-3");
  assert_int_equal(row.accepted_ms, 0); /* only a row in created was accepted */
  nrd_ledger_row_cleanup(&row);

  /* A later write in created keeps the first acceptance (coalesce). */
  struct nrd_ledger_update u = { .state = NRD_ROW_CREATED, .release = true };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-2", "A", &u, t + 900), NRD_OK);
  row = get(f->st, "job-2");
  assert_int_equal(row.accepted_ms, t + 100);
  assert_int_equal(row.updated_ms, t + 900);
  nrd_ledger_row_cleanup(&row);

  struct nrd_ledger_row *rows = NULL;
  size_t n = 0;
  assert_int_equal(nrd_store_ledger_following(f->st, 0, NULL, 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 2); /* oldest accepted first */
  assert_string_equal(rows[0].job_id, "job-2");
  assert_string_equal(rows[1].job_id, "job-1");
  assert_string_equal(rows[1].new_instance_id, "new-1");
  nrd_ledger_rows_free(rows, n);
  assert_int_equal(nrd_store_ledger_following(f->st, t + 150, NULL, 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 1); /* accepted before t + 150 */
  assert_string_equal(rows[0].job_id, "job-2");
  nrd_ledger_rows_free(rows, n);
  assert_int_equal(nrd_store_ledger_following(f->st, 0, NULL, 1, &rows, &n), NRD_OK);
  assert_int_equal(n, 1);
  nrd_ledger_rows_free(rows, n);

  /* A cursor resumes after its row, in (accepted, job id) order: job-5
   * ties with job-2 on its acceptance and comes after it by id. */
  insert(f->st, "job-5", t);
  move(f->st, "job-5", NRD_ROW_CREATED, "new-5", true, t + 100);
  static const struct {
    struct nrd_follow_cursor after;
    const char *expect; /* the jobs read, in order */
  } pages[] = {
    { { 0, "" }, "job-2 job-5 job-1 " },
    { { 100, "job-2" }, "job-5 job-1 " },
    { { 100, "job-5" }, "job-1 " },
    { { 200, "job-1" }, "" },
  };
  for (size_t p = 0; p < sizeof pages / sizeof pages[0]; p++) {
    struct nrd_follow_cursor after = pages[p].after;
    char got[64] = "";
    after.accepted_ms += after.accepted_ms ? t : 0;
    assert_int_equal(nrd_store_ledger_following(f->st, 0, &after, 10, &rows, &n), NRD_OK);
    for (size_t i = 0; i < n; i++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s ", rows[i].job_id);
    nrd_ledger_rows_free(rows, n);
    assert_string_equal(got, pages[p].expect);
  }
}

static void test_started(void **state)
{
  struct store_fixture *f = *state;
  int64_t t = nrd_now_ms();
  insert(f->st, "job-1", t);
  insert(f->st, "job-2", t);
  insert(f->st, "job-3", t);
  move(f->st, "job-1", NRD_ROW_CREATED, "new-1", true, t + 10);
  move(f->st, "job-2", NRD_ROW_CREATED, "new-2", true, t + 10);
  move(f->st, "job-3", NRD_ROW_CREATED, "new-3", false, t + 10); /* still leased */

  struct nrd_event ev = {
    .id = "evt_run_1", .type = "instance.running", .body_json = "{}", .created_ms = t + 20
  };
  struct nrd_ledger_started up = { .running = true, .event = &ev };
  assert_int_equal(nrd_store_ledger_started(f->st, "job-1", &up, t + 20), NRD_OK);
  struct nrd_ledger_row row = get(f->st, "job-1");
  assert_int_equal(row.state, NRD_ROW_RUNNING);
  assert_int_equal(row.running_ms, t + 20);
  assert_int_equal(row.accepted_ms, t + 10);
  nrd_ledger_row_cleanup(&row);
  struct nrd_event got;
  assert_int_equal(nrd_store_event_next(f->st, &got), NRD_OK);
  assert_string_equal(got.id, "evt_run_1");
  nrd_event_cleanup(&got);
  /* Settled once: a second look changes nothing. */
  assert_int_equal(nrd_store_ledger_started(f->st, "job-1", &up, t + 30), NRD_NONE);

  struct nrd_ledger_started failed = { .running = false,
                                       .error_state = "pullImageFailed",
                                       .error_message = "manifest unknown",
                                       .reason = "replacement exited" };
  assert_int_equal(nrd_store_ledger_started(f->st, "job-2", &failed, t + 40), NRD_OK);
  row = get(f->st, "job-2");
  assert_int_equal(row.state, NRD_ROW_START_FAILED);
  assert_int_equal(row.running_ms, 0);
  assert_string_equal(row.status_error_state, "pullImageFailed");
  assert_string_equal(row.status_error_message, "manifest unknown");
  assert_string_equal(row.last_error, "replacement exited");
  nrd_ledger_row_cleanup(&row);

  /* A row whose lease runs is its owner's to settle. */
  assert_int_equal(nrd_store_ledger_started(f->st, "job-3", &up, t + 50), NRD_NONE);
  row = get(f->st, "job-3");
  assert_int_equal(row.state, NRD_ROW_CREATED);
  nrd_ledger_row_cleanup(&row);
}

static void test_retry_start(void **state)
{
  struct store_fixture *f = *state;
  int64_t t = nrd_now_ms();
  insert(f->st, "job-1", t);
  move(f->st, "job-1", NRD_ROW_CREATED, "new-1", true, t + 10);
  /* Only a start_failed row goes back. */
  assert_int_equal(nrd_store_ledger_retry_start(f->st, "job-1", "x-recreated-2", t + 15, t + 15),
                   NRD_NONE);
  struct nrd_ledger_started failed = { .running = false, .error_state = "exited" };
  assert_int_equal(nrd_store_ledger_started(f->st, "job-1", &failed, t + 20), NRD_OK);
  assert_int_equal(nrd_store_ledger_retry_start(f->st, "job-1", "x-recreated-2", t + 30, t + 30),
                   NRD_OK);
  struct nrd_ledger_row row = get(f->st, "job-1");
  assert_int_equal(row.state, NRD_ROW_DELETED);
  assert_string_equal(row.new_name, "x-recreated-2");
  assert_int_equal(row.name_ms, t + 30);
  assert_null(row.new_instance_id);
  assert_false(row.create_sent);
  assert_false(row.adopted);
  assert_int_equal(row.accepted_ms, 0);
  assert_int_equal(row.running_ms, 0);
  assert_null(row.status_error_state);
  assert_null(row.owner);
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_store_ledger_retry_start(f->st, "job-none", "y", t, t), NRD_NONE);
}

/* A refused delete: delete_sent goes back to false (nothing was deleted). */
static void test_clear_delete_sent(void **state)
{
  struct store_fixture *f = *state;
  int64_t t = nrd_now_ms();
  insert(f->st, "job-1", t);
  assert_int_equal(nrd_store_ledger_claim(f->st, "job-1", "A", "run_1", t, LEASE_MS, NULL), NRD_OK);
  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING, .set_delete_sent = true };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-1", "A", &u, t + 1), NRD_OK);
  struct nrd_ledger_row row = get(f->st, "job-1");
  assert_true(row.delete_sent);
  nrd_ledger_row_cleanup(&row);
  u = (struct nrd_ledger_update){ .state = NRD_ROW_FAILED,
                                  .clear_delete_sent = true,
                                  .last_error = "refused" };
  assert_int_equal(nrd_store_ledger_update(f->st, "job-1", "A", &u, t + 2), NRD_OK);
  row = get(f->st, "job-1");
  assert_false(row.delete_sent);
  assert_int_equal(row.state, NRD_ROW_FAILED);
  nrd_ledger_row_cleanup(&row);
}

static void test_health(void **state)
{
  struct store_fixture *f = *state;
  char msg[256] = "";
  assert_string_equal(nrd_store_last_error(f->st), "unknown error");
  assert_int_equal(nrd_store_probe_write(f->st, 1000), NRD_OK);
  assert_int_equal(nrd_store_probe_write(f->st, 2000), NRD_OK);
  assert_int_equal(nrd_store_quick_check(f->st, msg, sizeof msg), NRD_OK);
  nrd_store_release_memory(f->st);
  assert_int_equal(nrd_store_ping(f->st), NRD_OK);
  /* A write the database refuses (instance_id is NOT NULL): its message. */
  assert_int_equal(nrd_store_ledger_insert(f->st, "job-1", "t", NULL, "x", "y", 1, 1), NRD_ERR);
  assert_non_null(strstr(nrd_store_last_error(f->st), "instance_id"));
  assert_int_equal(nrd_store_file(f->st) != NULL, !store_test_is_pg());
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, store_fixture_setup, store_fixture_teardown)

int main(void)
{
  const struct CMUnitTest tests[] = {
    TEST(test_accepted_and_following), TEST(test_started), TEST(test_retry_start),
    TEST(test_clear_delete_sent),      TEST(test_health),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
