/* The PostgreSQL store against a real server (tests/support/pg.sh): the
 * behaviours of tests/store on SQLite (rows, claims and leases, owner-only
 * updates with their event, operator control, lists, runs, outbox,
 * retention, brakes, snapshots, the console's queries), with leases on the
 * database's clock; and the URL's redaction. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nrd/util.h"
#include "pg_test.h"

#define LEASE_MS 30000

static void insert(struct nrd_pg *st, const char *job, const char *instance, int64_t now)
{
  char name[128];
  snprintf(name, sizeof name, "%s-recreated-%lld", instance, (long long)now);
  assert_int_equal(
      nrd_pg_ledger_insert(st, job, "instanceMigrate", instance, instance, name, now, now), NRD_OK);
}

static void test_insert_unique(void **state)
{
  struct pg_fixture *f = *state;
  insert(f->pg, "job-1", "i-a", 1764345600123);
  assert_int_equal(nrd_pg_ledger_insert(f->pg, "job-1", "instanceMigrate", "i-other", "x",
                                        "x-recreated-1", 1, 2),
                   NRD_NONE);

  struct nrd_ledger_row row;
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1", &row), NRD_OK);
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
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-none", &row), NRD_NONE);
}

static void test_update_fields_and_event(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_ledger_row row;
  struct nrd_event ev;
  insert(f->pg, "job-1", "i-a", 1000);
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-1", "A", "run_1", 2000, LEASE_MS, NULL), NRD_OK);

  /* A refused update writes no event either. */
  struct nrd_event e1 = { .id = "evt_1",
                          .type = "instance.recovery_failed",
                          .body_json = "{\"id\":\"evt_1\"}",
                          .created_ms = 2100 };
  struct nrd_ledger_update u = { .state = NRD_ROW_FAILED, .last_error = "boom", .event = &e1 };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "B", &u, 2100), NRD_NONE);
  assert_int_equal(nrd_pg_event_next(f->pg, &ev), NRD_NONE);

  u = (struct nrd_ledger_update){ .state = NRD_ROW_DELETING,
                                  .set_delete_sent = true,
                                  .last_error = "transient" };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2200), NRD_OK);
  u = (struct nrd_ledger_update){ .state = NRD_ROW_CREATING, .set_create_sent = true };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2300), NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1", &row), NRD_OK);
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
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2400), NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_CREATED);
  assert_string_equal(row.new_instance_id, "i-z");
  assert_null(row.last_error); /* "" clears */
  assert_true(row.adopted);
  assert_true(row.delete_sent); /* flags are never cleared */
  assert_null(row.owner);
  assert_int_equal(row.lease_until_ms, 0);
  nrd_ledger_row_cleanup(&row);

  assert_int_equal(nrd_pg_event_next(f->pg, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_2");
  assert_string_equal(ev.type, "instance.recreated");
  assert_string_equal(ev.state, "pending");
  nrd_event_cleanup(&ev);

  /* Done rows cannot be claimed. */
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-1", "A", "run_2", 9000, LEASE_MS, NULL),
                   NRD_NONE);
}

/* The write of an intent without an event (DELETING before the delete,
 * CREATING before the create) is committed when the call returns: another
 * session sees it, and the writer's session holds no transaction open, so it
 * is durable before the worker sends its call. A writer without the lease
 * changes nothing; a session the server ended while idle is replaced. */
static void test_intent_committed_alone(void **state)
{
  struct pg_fixture *f = *state;
  char err[256] = "";
  struct nrd_pg *other = NULL;
  struct nrd_ledger_row row;
  insert(f->pg, "job-1", "i-a", 1000);
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-1", "A", "run_1", 2000, LEASE_MS, NULL), NRD_OK);
  assert_int_equal(nrd_pg_open_as(f->url, "test-other", &other, NULL, err, sizeof err), NRD_OK);

  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING, .set_delete_sent = true };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2100), NRD_OK);
  assert_int_equal(pgt_exec(f->db, "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_stat_activity"
                                   " WHERE application_name = 'test-main' AND state <> 'idle')"
                                   " THEN RAISE 'a transaction left open'; END IF; END $$"),
                   0);
  assert_int_equal(nrd_pg_ledger_get(other, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_DELETING);
  assert_true(row.delete_sent);
  assert_int_equal(row.updated_ms, 2100);
  nrd_ledger_row_cleanup(&row);

  u = (struct nrd_ledger_update){ .state = NRD_ROW_CREATING, .set_create_sent = true };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "B", &u, 2200), NRD_NONE);
  assert_int_equal(nrd_pg_ledger_get(other, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_DELETING);
  assert_false(row.create_sent);
  nrd_ledger_row_cleanup(&row);

  assert_int_equal(pgt_exec(f->db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                   " WHERE application_name = 'test-main'"),
                   0);
  int rc = nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2300);
  if (rc == NRD_BUSY) /* the lost session noticed by this call: the next connects again */
    rc = nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2300);
  assert_int_equal(rc, NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(other, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_CREATING);
  assert_true(row.delete_sent);
  assert_true(row.create_sent);
  assert_string_equal(row.owner, "A");
  nrd_ledger_row_cleanup(&row);
  nrd_pg_close(other);
}

/* A held claim (the row executor's) is committed with the row's first
 * write, not before: until then another session can neither claim the row
 * nor see it claimed; the write makes claim and intent visible together; a
 * release commits the claim with it; a session that ends before its first
 * write leaves the row as it was, free at once. */
static void test_claim_held(void **state)
{
  struct pg_fixture *f = *state;
  char err[256] = "";
  struct nrd_pg *other = NULL;
  struct nrd_ledger_row row, claimed;
  insert(f->pg, "job-1", "i-a", 1000);
  insert(f->pg, "job-2", "i-b", 1000);
  assert_int_equal(nrd_pg_open_as(f->url, "test-other", &other, NULL, err, sizeof err), NRD_OK);

  assert_int_equal(nrd_pg_ledger_claim_held(f->pg, "job-1", "A", "run_1", 2000, LEASE_MS, &claimed),
                   NRD_OK);
  assert_string_equal(claimed.owner, "A");
  assert_int_equal(claimed.attempts, 1);
  nrd_ledger_row_cleanup(&claimed);
  assert_int_equal(nrd_pg_ledger_claim(other, "job-1", "B", "run_2", 2000, LEASE_MS, NULL),
                   NRD_NONE);
  assert_int_equal(nrd_pg_ledger_get(other, "job-1", &row), NRD_OK);
  assert_null(row.owner); /* not committed yet */
  assert_int_equal(row.state, NRD_ROW_PENDING);
  nrd_ledger_row_cleanup(&row);
  /* Reads on the holder's session see its own claim. */
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1", &row), NRD_OK);
  assert_string_equal(row.owner, "A");
  nrd_ledger_row_cleanup(&row);

  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING, .set_delete_sent = true };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2100), NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(other, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_DELETING);
  assert_true(row.delete_sent);
  assert_string_equal(row.owner, "A");
  assert_int_equal(row.attempts, 1);
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(pgt_exec(f->db, "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_stat_activity"
                                   " WHERE application_name = 'test-main' AND state <> 'idle')"
                                   " THEN RAISE 'a transaction left open'; END IF; END $$"),
                   0);

  /* Claimed and given back: both committed, the attempt counted. */
  assert_int_equal(nrd_pg_ledger_claim_held(f->pg, "job-2", "A", "run_1", 2200, LEASE_MS, NULL),
                   NRD_OK);
  assert_int_equal(nrd_pg_ledger_release(f->pg, "job-2", "A"), NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(other, "job-2", &row), NRD_OK);
  assert_null(row.owner);
  assert_int_equal(row.attempts, 1);
  nrd_ledger_row_cleanup(&row);

  /* Held by another owner: refused, and nothing left open. */
  assert_int_equal(nrd_pg_ledger_claim_held(other, "job-2", "B", "run_2", 2300, LEASE_MS, NULL),
                   NRD_OK);
  assert_int_equal(nrd_pg_ledger_claim_held(f->pg, "job-2", "A", "run_1", 2300, LEASE_MS, NULL),
                   NRD_NONE);
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2400), NRD_OK);

  /* The holder's session ends before its first write: the claim is gone. */
  assert_int_equal(pgt_exec(f->db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                   " WHERE application_name = 'test-other'"),
                   0);
  int rc = NRD_BUSY;
  for (int i = 0; i < 500 && rc != NRD_OK; i++) {
    rc = nrd_pg_ledger_claim(f->pg, "job-2", "A", "run_1", 2500, LEASE_MS, NULL);
    if (rc != NRD_OK)
      nrd_sleep_ms(10);
  }
  assert_int_equal(rc, NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-2", &row), NRD_OK);
  assert_string_equal(row.owner, "A");
  assert_int_equal(row.attempts, 2); /* B's claim was never written */
  nrd_ledger_row_cleanup(&row);
  nrd_pg_close(other);
}

/* A claim held longer than a third of its lease (its checks waited on
 * Novita) gets its whole lease again with its first write, which the lease
 * keeper could not renew before it was committed. */
static void test_claim_held_long(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_ledger_row row;
  insert(f->pg, "job-1", "i-a", 1000);
  assert_int_equal(nrd_pg_ledger_claim_held(f->pg, "job-1", "A", "run_1", 2000, 3000, NULL),
                   NRD_OK);
  nrd_sleep_ms(1500);
  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING, .set_delete_sent = true };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 2100), NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1", &row), NRD_OK);
  assert_true(row.lease_until_ms - nrd_now_ms() > 2500);
  nrd_ledger_row_cleanup(&row);
}

static void fail_row(struct nrd_pg *st, const char *job, bool delete_sent)
{
  assert_int_equal(nrd_pg_ledger_claim(st, job, "A", "run_1", 2000, LEASE_MS, NULL), NRD_OK);
  struct nrd_ledger_update u = { .state = NRD_ROW_FAILED,
                                 .last_error = "no product",
                                 .set_delete_sent = delete_sent,
                                 .release = true };
  assert_int_equal(nrd_pg_ledger_update(st, job, "A", &u, 2100), NRD_OK);
}

static void test_retry_abandon(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_ledger_row row;
  insert(f->pg, "job-1", "i-a", 1000);
  insert(f->pg, "job-2", "i-b", 1001);
  insert(f->pg, "job-3", "i-c", 1002);

  /* Only failed rows can be retried. */
  assert_int_equal(nrd_pg_ledger_retry(f->pg, "job-1", 3000), NRD_NONE);
  assert_int_equal(nrd_pg_ledger_retry(f->pg, "job-none", 3000), NRD_NONE);

  fail_row(f->pg, "job-1", false);
  fail_row(f->pg, "job-2", true);
  assert_int_equal(nrd_pg_ledger_retry(f->pg, "job-1", 3000), NRD_OK);
  assert_int_equal(nrd_pg_ledger_retry(f->pg, "job-2", 3000), NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_PENDING);
  assert_string_equal(row.last_error, "no product");
  assert_int_equal(row.updated_ms, 3000);
  nrd_ledger_row_cleanup(&row);
  /* After a sent delete too: pending, with delete_sent kept for the machine. */
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-2", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_PENDING);
  assert_true(row.delete_sent);
  nrd_ledger_row_cleanup(&row);

  /* Abandon a claimed open row: its owner loses it. */
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-3", "W", "run_2", 4000, LEASE_MS, NULL), NRD_OK);
  assert_int_equal(nrd_pg_ledger_abandon(f->pg, "job-3", "operator said so", 4100), NRD_OK);
  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-3", "W", &u, 4200), NRD_NONE);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-3", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_ABANDONED);
  assert_string_equal(row.last_error, "operator said so");
  assert_null(row.owner);
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_pg_ledger_abandon(f->pg, "job-3", "again", 4300), NRD_NONE);
  assert_int_equal(nrd_pg_ledger_retry(f->pg, "job-3", 4300), NRD_NONE);

  /* A failed row can be abandoned too. */
  fail_row(f->pg, "job-1", false);
  assert_int_equal(nrd_pg_ledger_abandon(f->pg, "job-1", "gave up", 5000), NRD_OK);
}

static void test_lists_and_counts(void **state)
{
  struct pg_fixture *f = *state;
  insert(f->pg, "job-b", "i-b", 2000);
  insert(f->pg, "job-a", "i-a", 1000);
  insert(f->pg, "job-c", "i-c", 3000);
  insert(f->pg, "job-d", "i-d", 4000);
  assert_int_equal(nrd_pg_ledger_abandon(f->pg, "job-c", "gone", 5000), NRD_OK);

  struct nrd_ledger_row *rows = NULL;
  size_t n = 0;
  assert_int_equal(nrd_pg_ledger_open(f->pg, NULL, 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 3);
  assert_string_equal(rows[0].job_id, "job-a");
  assert_string_equal(rows[1].job_id, "job-b");
  assert_string_equal(rows[2].job_id, "job-d");
  nrd_ledger_rows_free(rows, n);

  assert_int_equal(nrd_pg_ledger_open(f->pg, NULL, 1, &rows, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].job_id, "job-a");

  /* Page on from a row: the ones after it in (created_ms, job_id) order. */
  struct nrd_ledger_row *next = NULL;
  size_t n_next = 0;
  assert_int_equal(nrd_pg_ledger_open(f->pg, &rows[0], 10, &next, &n_next), NRD_OK);
  assert_int_equal(n_next, 2);
  assert_string_equal(next[0].job_id, "job-b");
  assert_string_equal(next[1].job_id, "job-d");
  nrd_ledger_rows_free(rows, n);
  insert(f->pg, "job-b2", "i-b2", 2000); /* same time as job-b: after it by id */
  assert_int_equal(nrd_pg_ledger_open(f->pg, &next[0], 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 2);
  assert_string_equal(rows[0].job_id, "job-b2");
  assert_string_equal(rows[1].job_id, "job-d");
  nrd_ledger_rows_free(rows, n);
  assert_int_equal(nrd_pg_ledger_open(f->pg, &next[1], 10, &rows, &n), NRD_OK);
  assert_int_equal(n, 0);
  nrd_ledger_rows_free(rows, n);
  nrd_ledger_rows_free(next, n_next);

  assert_int_equal(nrd_pg_ledger_list(f->pg, -1, 100, &rows, &n), NRD_OK);
  assert_int_equal(n, 5);
  assert_string_equal(rows[0].job_id, "job-d");
  assert_string_equal(rows[4].job_id, "job-a");
  nrd_ledger_rows_free(rows, n);

  assert_int_equal(nrd_pg_ledger_list(f->pg, NRD_ROW_ABANDONED, 100, &rows, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_string_equal(rows[0].job_id, "job-c");
  assert_string_equal(rows[0].last_error, "gone");
  nrd_ledger_rows_free(rows, n);

  assert_int_equal(nrd_pg_ledger_list(f->pg, NRD_ROW_CREATED, 100, &rows, &n), NRD_OK);
  assert_int_equal(n, 0);
  nrd_ledger_rows_free(rows, n);

  int64_t counts[NRD_ROW_STATE_COUNT];
  assert_int_equal(nrd_pg_ledger_count_by_state(f->pg, counts), NRD_OK);
  assert_int_equal(counts[NRD_ROW_PENDING], 4);
  assert_int_equal(counts[NRD_ROW_ABANDONED], 1);
  assert_int_equal(counts[NRD_ROW_CREATED], 0);
}

static void test_runs(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_run_record r;
  assert_int_equal(nrd_pg_run_insert(f->pg, "run_1", "api", true, 1000), NRD_OK);
  assert_int_equal(nrd_pg_run_get(f->pg, "run_1", &r), NRD_OK);
  assert_string_equal(r.run_id, "run_1");
  assert_string_equal(r.trigger, "api");
  assert_string_equal(r.state, "running");
  assert_true(r.dry_run);
  assert_int_equal(r.started_ms, 1000);
  assert_int_equal(r.finished_ms, 0);
  assert_null(r.report_json);
  nrd_run_record_cleanup(&r);

  assert_int_equal(nrd_pg_run_finish(f->pg, "run_1", "done", "{\"errors\":0}", 2000), NRD_OK);
  assert_int_equal(nrd_pg_run_get(f->pg, "run_1", &r), NRD_OK);
  assert_string_equal(r.state, "done");
  assert_string_equal(r.report_json, "{\"errors\":0}");
  assert_int_equal(r.finished_ms, 2000);
  nrd_run_record_cleanup(&r);

  assert_int_equal(nrd_pg_run_finish(f->pg, "run_none", "done", "{}", 2000), NRD_NONE);
  assert_int_equal(nrd_pg_run_get(f->pg, "run_none", &r), NRD_NONE);

  /* A run left running by a dead process is failed at start-up; one whose
   * process still has a session is not (another replica's run). */
  char err[256];
  struct nrd_pg *other = NULL;
  assert_int_equal(nrd_pg_open_as(f->url, "test-other", &other, NULL, err, sizeof err), NRD_OK);
  assert_int_equal(nrd_pg_run_insert(other, "run_2", "scheduler", false, 3000), NRD_OK);
  assert_int_equal(nrd_pg_run_insert(f->pg, "run_3", "scheduler", false, 3000), NRD_OK);
  assert_int_equal(nrd_pg_run_fail_stale(f->pg, 3500), NRD_OK);
  assert_int_equal(nrd_pg_run_get(f->pg, "run_2", &r), NRD_OK);
  assert_string_equal(r.state, "running");
  nrd_run_record_cleanup(&r);
  nrd_pg_close(other);
  /* The server ends the closed session's backend on its own time: wait for
   * it (bounded) before the dead process's run is failed. */
  for (int i = 0; i < 500; i++) {
    assert_int_equal(nrd_pg_run_fail_stale(f->pg, 4000), NRD_OK);
    assert_int_equal(nrd_pg_run_get(f->pg, "run_2", &r), NRD_OK);
    bool failed = strcmp(r.state, "failed") == 0;
    nrd_run_record_cleanup(&r);
    if (failed)
      break;
    nrd_sleep_ms(20);
  }
  assert_int_equal(nrd_pg_run_get(f->pg, "run_3", &r), NRD_OK);
  assert_string_equal(r.state, "running"); /* this process's own run */
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_pg_run_get(f->pg, "run_2", &r), NRD_OK);
  assert_string_equal(r.state, "failed");
  assert_false(r.dry_run);
  assert_int_equal(r.finished_ms, 4000);
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_pg_run_get(f->pg, "run_1", &r), NRD_OK);
  assert_string_equal(r.state, "done");
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_pg_run_fail_stale(f->pg, 5000), NRD_OK);
}

static void add_event(struct nrd_pg *st, const char *id, int64_t created)
{
  struct nrd_event e = {
    .id = (char *)id, .type = "run.completed", .body_json = "{}", .created_ms = created
  };
  assert_int_equal(nrd_pg_event_insert(st, &e), NRD_OK);
}

static void test_outbox(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_event ev;
  assert_int_equal(nrd_pg_event_next(f->pg, &ev), NRD_NONE);

  add_event(f->pg, "evt_b", 1000);
  add_event(f->pg, "evt_a", 1001);
  add_event(f->pg, "evt_c", 1002);
  struct nrd_event dup = { .id = "evt_a", .type = "x", .body_json = "{}", .created_ms = 1 };
  assert_int_equal(nrd_pg_event_insert(f->pg, &dup), NRD_NONE);

  /* Oldest first by insertion order, whatever the ids. */
  assert_int_equal(nrd_pg_event_next(f->pg, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_b");
  assert_string_equal(ev.type, "run.completed");
  assert_string_equal(ev.body_json, "{}");
  assert_int_equal(ev.attempts, 0);
  int64_t first_seq = ev.seq;
  nrd_event_cleanup(&ev);

  /* A failed attempt keeps it first; delivered moves on. */
  assert_int_equal(nrd_pg_event_mark(f->pg, "evt_b", "pending", 1, 9000, "HTTP 500"), NRD_OK);
  assert_int_equal(nrd_pg_event_next(f->pg, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_b");
  assert_int_equal(ev.attempts, 1);
  assert_int_equal(ev.next_attempt_ms, 9000);
  assert_string_equal(ev.last_error, "HTTP 500");
  nrd_event_cleanup(&ev);
  assert_int_equal(nrd_pg_event_mark(f->pg, "evt_b", "delivered", 2, 0, NULL), NRD_OK);
  assert_int_equal(nrd_pg_event_next(f->pg, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_a");
  assert_true(ev.seq > first_seq);
  nrd_event_cleanup(&ev);
  assert_int_equal(nrd_pg_event_mark(f->pg, "evt_none", "dead", 1, 0, NULL), NRD_NONE);

  struct nrd_event *list = NULL;
  size_t n = 0;
  assert_int_equal(nrd_pg_event_list(f->pg, NULL, 10, &list, &n), NRD_OK);
  assert_int_equal(n, 3);
  assert_string_equal(list[0].id, "evt_b");
  assert_string_equal(list[0].state, "delivered");
  assert_string_equal(list[2].id, "evt_c");
  nrd_events_free(list, n);

  assert_int_equal(nrd_pg_event_list(f->pg, "evt_b", 10, &list, &n), NRD_OK);
  assert_int_equal(n, 2);
  assert_string_equal(list[0].id, "evt_a");
  nrd_events_free(list, n);

  assert_int_equal(nrd_pg_event_list(f->pg, "evt_c", 10, &list, &n), NRD_OK);
  assert_int_equal(n, 0);
  nrd_events_free(list, n);

  assert_int_equal(nrd_pg_event_list(f->pg, "evt_unknown", 1, &list, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_string_equal(list[0].id, "evt_b");
  nrd_events_free(list, n);
}

static void test_prune(void **state)
{
  struct pg_fixture *f = *state;
  /* Old and finished: pruned. */
  assert_int_equal(nrd_pg_run_insert(f->pg, "run_old", "api", false, 100), NRD_OK);
  assert_int_equal(nrd_pg_run_finish(f->pg, "run_old", "done", "{}", 200), NRD_OK);
  assert_int_equal(nrd_pg_ledger_insert(f->pg, "job-old", "t", "i-1", "n", "n-r", 1, 100), NRD_OK);
  assert_int_equal(nrd_pg_ledger_abandon(f->pg, "job-old", "gone", 200), NRD_OK);
  add_event(f->pg, "evt_old", 100);
  assert_int_equal(nrd_pg_event_mark(f->pg, "evt_old", "delivered", 1, 0, NULL), NRD_OK);
  /* Old but still running, open or pending: kept. */
  assert_int_equal(nrd_pg_run_insert(f->pg, "run_live", "api", false, 100), NRD_OK);
  assert_int_equal(nrd_pg_ledger_insert(f->pg, "job-open", "t", "i-2", "n", "n-r", 1, 100), NRD_OK);
  add_event(f->pg, "evt_pending", 100);
  /* Recent and finished: kept. */
  assert_int_equal(nrd_pg_run_insert(f->pg, "run_new", "api", false, 5000), NRD_OK);
  assert_int_equal(nrd_pg_run_finish(f->pg, "run_new", "done", "{}", 6000), NRD_OK);

  int64_t deleted = -1;
  assert_int_equal(nrd_pg_prune(f->pg, 1000, &deleted), NRD_OK);
  assert_int_equal(deleted, 3);

  struct nrd_run_record r;
  struct nrd_ledger_row row;
  assert_int_equal(nrd_pg_run_get(f->pg, "run_old", &r), NRD_NONE);
  assert_int_equal(nrd_pg_run_get(f->pg, "run_live", &r), NRD_OK);
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_pg_run_get(f->pg, "run_new", &r), NRD_OK);
  nrd_run_record_cleanup(&r);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-old", &row), NRD_NONE);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-open", &row), NRD_OK);
  nrd_ledger_row_cleanup(&row);
  struct nrd_event ev;
  assert_int_equal(nrd_pg_event_next(f->pg, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_pending");
  nrd_event_cleanup(&ev);

  assert_int_equal(nrd_pg_prune(f->pg, 1000, &deleted), NRD_OK);
  assert_int_equal(deleted, 0);
}

/* ---- claims and leases on the database's clock ---- */

static int64_t db_now(struct nrd_pg *pg)
{
  int64_t now = 0;
  assert_int_equal(nrd_pg_now_ms(pg, &now), NRD_OK);
  return now;
}

static void test_claim_lease(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_ledger_row row;
  insert(f->pg, "job-1", "i-a", 1000);

  int64_t before = db_now(f->pg);
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-1", "A", "run_1", 2000, LEASE_MS, &row), NRD_OK);
  int64_t after = db_now(f->pg);
  assert_string_equal(row.owner, "A");
  assert_string_equal(row.run_id, "run_1");
  assert_int_equal(row.attempts, 1);
  assert_int_equal(row.updated_ms, 2000); /* the caller's time */
  /* The lease runs on the database's clock, not the caller's now_ms. */
  assert_true(row.lease_until_ms >= before + LEASE_MS && row.lease_until_ms <= after + LEASE_MS);
  nrd_ledger_row_cleanup(&row);

  /* B is refused while A's lease runs, whatever B's clock says (a host
   * whose clock is years ahead). */
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-1", "B", "run_2", 3000, LEASE_MS, &row),
                   NRD_NONE);
  assert_null(row.owner);
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-1", "B", "run_2", 4102444800000, LEASE_MS, NULL),
                   NRD_NONE);
  assert_int_equal(nrd_pg_ledger_claim_next(f->pg, "B", "run_2", 4102444800000, LEASE_MS, NULL),
                   NRD_NONE);
  /* A may claim again (resume), and renew: the duration from the host's
   * now, applied to the database's. */
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-1", "A", "run_1", 4000, LEASE_MS, NULL), NRD_OK);
  before = db_now(f->pg);
  assert_int_equal(nrd_pg_ledger_renew(f->pg, "job-1", "A", nrd_now_ms() + 2 * LEASE_MS), NRD_OK);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1", &row), NRD_OK);
  assert_true(row.lease_until_ms >= before + 2 * LEASE_MS - 1000);
  assert_true(row.lease_until_ms <= db_now(f->pg) + 2 * LEASE_MS + 1000);
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_pg_ledger_renew(f->pg, "job-1", "B", nrd_now_ms() + LEASE_MS), NRD_NONE);

  /* A short lease: once the database's clock passes it, B takes over (the
   * wait is bounded) and A can no longer write. */
  assert_int_equal(nrd_pg_ledger_renew(f->pg, "job-1", "A", nrd_now_ms() + 300), NRD_OK);
  int rc = NRD_NONE;
  for (int i = 0; i < 250 && rc == NRD_NONE; i++) {
    rc = nrd_pg_ledger_claim(f->pg, "job-1", "B", "run_2", 1, LEASE_MS, &row);
    if (rc == NRD_NONE)
      nrd_sleep_ms(20);
  }
  assert_int_equal(rc, NRD_OK);
  assert_string_equal(row.owner, "B");
  assert_string_equal(row.run_id, "run_2");
  assert_int_equal(row.attempts, 3);
  nrd_ledger_row_cleanup(&row);

  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING, .set_delete_sent = true };
  assert_int_equal(nrd_pg_ledger_update(f->pg, "job-1", "A", &u, 50002), NRD_NONE);
  assert_int_equal(nrd_pg_ledger_renew(f->pg, "job-1", "A", nrd_now_ms() + LEASE_MS), NRD_NONE);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1", &row), NRD_OK);
  assert_int_equal(row.state, NRD_ROW_PENDING);
  assert_false(row.delete_sent);
  nrd_ledger_row_cleanup(&row);

  /* Released, anyone may claim at once. */
  assert_int_equal(nrd_pg_ledger_release(f->pg, "job-1", "A"), NRD_NONE);
  assert_int_equal(nrd_pg_ledger_release(f->pg, "job-1", "B"), NRD_OK);
  assert_int_equal(nrd_pg_ledger_claim_next(f->pg, "C", "run_3", 50003, LEASE_MS, &row), NRD_OK);
  assert_string_equal(row.job_id, "job-1");
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_pg_ledger_claim(f->pg, "job-missing", "C", "run_3", 1, 1, NULL), NRD_NONE);
}

/* Many rows in one transaction, in batches: each row's flag says whether it
 * was new (a job already stored, or repeated in the same call, was not). */
static void test_insert_many(void **state)
{
  struct pg_fixture *f = *state;
  enum { N = 1203 };
  insert(f->pg, "job-0007", "i-old", 500);
  struct nrd_ledger_new *rows = nrd_xcalloc(N, sizeof *rows);
  char(*ids)[32] = nrd_xcalloc(N, sizeof *ids);
  bool *inserted = nrd_xcalloc(N, sizeof *inserted);
  for (int i = 0; i < N; i++) {
    /* The last row repeats the first of the last batch (row 1000). */
    snprintf(ids[i], sizeof ids[i], "job-%04d", i == N - 1 ? 1000 : i);
    rows[i] = (struct nrd_ledger_new){ ids[i], "instanceMigrate", "i-x", NULL, "x-r", i };
  }
  assert_int_equal(nrd_pg_ledger_insert_many(f->pg, rows, N, 1000, inserted), NRD_OK);
  int64_t counts[NRD_ROW_STATE_COUNT];
  assert_int_equal(nrd_pg_ledger_count_by_state(f->pg, counts), NRD_OK);
  assert_int_equal(counts[NRD_ROW_PENDING], N - 1);
  for (int i = 0; i < N; i++)
    assert_int_equal(inserted[i], i != 7 && i != N - 1);
  struct nrd_ledger_row row;
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-0007", &row), NRD_OK);
  assert_string_equal(row.instance_id, "i-old"); /* kept */
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_pg_ledger_get(f->pg, "job-1201", &row), NRD_OK);
  assert_int_equal(row.name_ms, 1201);
  assert_int_equal(row.created_ms, 1000);
  assert_null(row.instance_name);
  nrd_ledger_row_cleanup(&row);
  /* Again: nothing is new. */
  assert_int_equal(nrd_pg_ledger_insert_many(f->pg, rows, N, 2000, inserted), NRD_OK);
  for (int i = 0; i < N; i++)
    assert_false(inserted[i]);
  free(rows);
  free(ids);
  free(inserted);
}

/* ---- brakes, the console's queries ---- */

static void test_brakes(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_brake b;
  assert_int_equal(nrd_pg_brake_get(f->pg, "account", &b), NRD_NONE);
  struct nrd_brake set = {
    .reason = "quota", .message = "no quota left", .job_id = "job-1", .until_ms = 0
  };
  assert_int_equal(nrd_pg_brake_set(f->pg, "account", &set, 1000), NRD_OK);
  struct nrd_brake later = { .reason = "balance", .until_ms = 9000 };
  assert_int_equal(nrd_pg_brake_set(f->pg, "account", &later, 2000), NRD_OK);
  assert_int_equal(nrd_pg_brake_get(f->pg, "account", &b), NRD_OK);
  assert_string_equal(b.reason, "balance");
  assert_null(b.message);
  assert_null(b.job_id);
  assert_int_equal(b.until_ms, 9000);
  assert_int_equal(b.set_ms, 2000);
  nrd_brake_cleanup(&b);
  assert_int_equal(nrd_pg_brake_clear(f->pg, "account"), NRD_OK);
  assert_int_equal(nrd_pg_brake_clear(f->pg, "account"), NRD_OK);
  assert_int_equal(nrd_pg_brake_get(f->pg, "account", &b), NRD_NONE);
}

static void test_console(void **state)
{
  struct pg_fixture *f = *state;
  assert_int_equal(nrd_pg_run_insert(f->pg, "run_a", "api", false, 1000), NRD_OK);
  assert_int_equal(nrd_pg_run_finish(f->pg, "run_a", "done",
                                     "{\"totalChecked\":8,\"failedJobsFound\":4,"
                                     "\"instancesRecreated\":3,\"errors\":1,\"deferred\":2.5}",
                                     2000),
                   NRD_OK);
  assert_int_equal(nrd_pg_run_insert(f->pg, "run_b", "api", true, 3000), NRD_OK);
  assert_int_equal(nrd_pg_run_finish(f->pg, "run_b", "failed", "not json", 4000), NRD_OK);
  struct nrd_run_summary *runs = NULL;
  size_t n = 0;
  assert_int_equal(nrd_pg_run_list(f->pg, 10, &runs, &n), NRD_OK);
  assert_int_equal(n, 2);
  assert_string_equal(runs[0].run_id, "run_b");
  assert_true(runs[0].dry_run);
  assert_int_equal(runs[0].total_checked, -1);
  assert_string_equal(runs[1].run_id, "run_a");
  assert_int_equal(runs[1].total_checked, 8);
  assert_int_equal(runs[1].failed_found, 4);
  assert_int_equal(runs[1].recreated, 3);
  assert_int_equal(runs[1].errors, 1);
  assert_int_equal(runs[1].deferred, -1); /* not an integer */
  assert_int_equal(runs[1].finished_ms, 2000);
  nrd_run_summaries_free(runs, n);

  insert(f->pg, "job-1", "i-a", 3600000);
  insert(f->pg, "job-2", "i-b", 3600000);
  assert_int_equal(nrd_pg_ledger_abandon(f->pg, "job-1", "gone", 3600000 + 500), NRD_OK);
  assert_int_equal(nrd_pg_ledger_abandon(f->pg, "job-2", "gone", 3600000 + 1500), NRD_OK);
  struct nrd_hourly_bucket *b = NULL;
  assert_int_equal(nrd_pg_ledger_hourly(f->pg, 0, &b, &n), NRD_OK);
  assert_int_equal(n, 1);
  assert_int_equal(b[0].hour_ms, 3600000);
  assert_string_equal(b[0].state, "abandoned");
  assert_false(b[0].adopted);
  assert_int_equal(b[0].count, 2);
  assert_int_equal(b[0].ttr_sum_ms, 2000);
  assert_int_equal(b[0].ttr_max_ms, 1500);
  nrd_hourly_buckets_free(b, n);

  int64_t pending, delivered, dead;
  add_event(f->pg, "evt_1", 1);
  add_event(f->pg, "evt_2", 2);
  assert_int_equal(nrd_pg_event_mark(f->pg, "evt_2", "dead", 9, 0, "gone"), NRD_OK);
  assert_int_equal(nrd_pg_event_count_by_state(f->pg, &pending, &delivered, &dead), NRD_OK);
  assert_int_equal(pending, 1);
  assert_int_equal(delivered, 0);
  assert_int_equal(dead, 1);
}

/* ---- health: the ready probe's write, the start-up check, the last error ---- */

static void test_health_queries(void **state)
{
  struct pg_fixture *f = *state;
  char msg[256] = "";
  int version = 0;
  assert_int_equal(nrd_pg_schema_version(f->pg, &version), NRD_OK);
  assert_int_equal(version, 2); /* migrations/pg/0002 applied */
  assert_int_equal(nrd_pg_probe_write(f->pg, 1000), NRD_OK);
  assert_int_equal(nrd_pg_probe_write(f->pg, 2000), NRD_OK); /* the same row again */
  assert_int_equal(nrd_pg_quick_check(f->pg, msg, sizeof msg), NRD_OK);
  nrd_pg_release_memory(f->pg); /* a no-op: the connection still works */
  assert_int_equal(nrd_pg_ping(f->pg), NRD_OK);

  /* A database that takes no writes: the check says why, the probe fails
   * and the last error is PostgreSQL's. */
  char sql[160], err[256] = "";
  struct nrd_pg *ro = NULL;
  assert_int_equal(nrd_pg_open_as(f->url, "test-ro", &ro, NULL, err, sizeof err), NRD_OK);
  snprintf(sql, sizeof sql, "ALTER DATABASE %s SET default_transaction_read_only = on", f->db);
  assert_int_equal(pgt_exec("postgres", sql), 0);
  /* Its session ends (waited for): the next statement goes to a new
   * session, which has the database's setting. */
  assert_int_equal(pgt_exec("postgres",
                            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                            " WHERE application_name = 'test-ro'"),
                   0);
  assert_int_equal(nrd_pg_ping(ro), NRD_OK); /* reconnected, not an error */
  assert_int_equal(nrd_pg_quick_check(ro, msg, sizeof msg), NRD_ERR);
  assert_non_null(strstr(msg, "read_only"));
  assert_int_not_equal(nrd_pg_probe_write(ro, 3000), NRD_OK);
  assert_non_null(strstr(nrd_pg_last_error(ro), "read-only"));
  nrd_pg_close(ro);
}

/* ---- the URL's password is never shown ---- */

static void redacted_is(const char *url, const char *want)
{
  char out[256];
  nrd_pg_url_redact(url, out, sizeof out);
  assert_string_equal(out, want);
}

static void test_url_redaction(void **state)
{
  (void)state;
  redacted_is("postgres://app:s3cret@db.example:5432/recovery?sslmode=require",
              "postgres://app:***@db.example:5432/recovery?sslmode=require");
  redacted_is("postgresql://app@db/recovery", "postgresql://app@db/recovery");
  redacted_is("postgresql://db/recovery", "postgresql://db/recovery");
  redacted_is("postgresql://app:p%40ss:w@db/x", "postgresql://app:***@db/x");
  redacted_is("postgresql://db/x?user=app&password=s3cret&sslmode=verify-full",
              "postgresql://db/x?user=app&password=***&sslmode=verify-full");
  redacted_is("host=db user=app password=s3cret dbname=x",
              "host=db user=app password=*** dbname=x");
  redacted_is("host=db password = 's3 c\\'ret' dbname=x", "host=db password = *** dbname=x");
  assert_true(nrd_pg_url_is_pg("postgres://db/x"));
  assert_true(nrd_pg_url_is_pg("postgresql://db/x"));
  assert_false(nrd_pg_url_is_pg("/var/lib/recoveryd/recovery.db"));
  assert_false(nrd_pg_url_is_pg(NULL));
  char small[8];
  nrd_pg_url_redact("postgres://app:s3cret@db/x", small, sizeof small);
  assert_string_equal(small, "postgre");
}

/* A refused connection's error names the server without the password. */
static void test_connect_error_redacted(void **state)
{
  (void)state;
  char url[512], err[512] = "";
  struct nrd_pg *pg = NULL;
  snprintf(url, sizeof url, "postgresql://nrd:hunter2@/no_such_db_x?host=%s&port=%s",
           getenv("NRD_TEST_PG_HOST"), getenv("NRD_TEST_PG_PORT"));
  assert_int_equal(nrd_pg_open(url, &pg, NULL, err, sizeof err), NRD_ERR);
  assert_null(pg);
  assert_non_null(strstr(err, "nrd:***@"));
  assert_null(strstr(err, "hunter2"));
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, pg_fixture_setup, pg_fixture_teardown)

int main(void)
{
  pgt_require_server();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_url_redaction),
    cmocka_unit_test(test_connect_error_redacted),
    TEST(test_health_queries),
    TEST(test_insert_unique),
    TEST(test_insert_many),
    TEST(test_claim_lease),
    TEST(test_update_fields_and_event),
    TEST(test_intent_committed_alone),
    TEST(test_claim_held),
    TEST(test_claim_held_long),
    TEST(test_retry_abandon),
    TEST(test_lists_and_counts),
    TEST(test_runs),
    TEST(test_outbox),
    TEST(test_prune),
    TEST(test_brakes),
    TEST(test_console),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
