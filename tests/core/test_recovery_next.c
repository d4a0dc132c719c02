/* The pure "what next" of a ledger row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nrd/recovery.h"

static struct nrd_ledger_row row(enum nrd_row_state s, bool delete_sent, bool create_sent)
{
  struct nrd_ledger_row r = { .state = s, .delete_sent = delete_sent, .create_sent = create_sent };
  return r;
}

static void test_pending(void **state)
{
  (void)state;
  struct nrd_ledger_row r = row(NRD_ROW_PENDING, false, false);
  assert_int_equal(nrd_recovery_next(&r, true, "migrating"), NRD_STEP_DELETE);
  /* Gone before we acted: someone else removed it. */
  assert_int_equal(nrd_recovery_next(&r, false, NULL), NRD_STEP_ABANDON_GONE);
  /* Healthy again: never delete a running instance. */
  assert_int_equal(nrd_recovery_next(&r, true, "running"), NRD_STEP_ABANDON_HEALTHY);
  assert_int_equal(nrd_recovery_next(&r, true, NULL), NRD_STEP_ABANDON_HEALTHY);
}

static void test_pending_after_operator_retry(void **state)
{
  (void)state;
  /* Re-opened after we had sent a delete: never abandoned as "someone else's". */
  struct nrd_ledger_row r = row(NRD_ROW_PENDING, true, false);
  assert_int_equal(nrd_recovery_next(&r, false, NULL), NRD_STEP_CONFIRM_DELETED);
  assert_int_equal(nrd_recovery_next(&r, true, "running"), NRD_STEP_DELETE);
}

static void test_deleting(void **state)
{
  (void)state;
  struct nrd_ledger_row r = row(NRD_ROW_DELETING, true, false);
  assert_int_equal(nrd_recovery_next(&r, true, "migrating"), NRD_STEP_DELETE);
  assert_int_equal(nrd_recovery_next(&r, true, "running"), NRD_STEP_DELETE);
  assert_int_equal(nrd_recovery_next(&r, true, "removing"), NRD_STEP_CONFIRM_DELETED);
  assert_int_equal(nrd_recovery_next(&r, true, "toRemove"), NRD_STEP_CONFIRM_DELETED);
  assert_int_equal(nrd_recovery_next(&r, false, NULL), NRD_STEP_CONFIRM_DELETED);
}

static void test_deleted_and_creating(void **state)
{
  (void)state;
  struct nrd_ledger_row r = row(NRD_ROW_DELETED, true, false);
  assert_int_equal(nrd_recovery_next(&r, false, NULL), NRD_STEP_CREATE);
  r.create_sent = true; /* a create may exist: never a blind second one */
  assert_int_equal(nrd_recovery_next(&r, false, NULL), NRD_STEP_LOOKUP_CREATE);
  r = row(NRD_ROW_CREATING, true, true);
  assert_int_equal(nrd_recovery_next(&r, false, NULL), NRD_STEP_LOOKUP_CREATE);
  assert_int_equal(nrd_recovery_next(&r, true, "running"), NRD_STEP_LOOKUP_CREATE);
}

static void test_done_states(void **state)
{
  (void)state;
  enum nrd_row_state done[] = { NRD_ROW_CREATED, NRD_ROW_FAILED, NRD_ROW_ABANDONED, NRD_ROW_RUNNING,
                                NRD_ROW_START_FAILED };
  for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++) {
    struct nrd_ledger_row r = row(done[i], true, true);
    assert_int_equal(nrd_recovery_next(&r, true, "migrating"), NRD_STEP_NONE);
  }
  assert_string_equal(nrd_step_name(NRD_STEP_LOOKUP_CREATE), "lookup_create");
}

/* RECOVER_STATUSES: exited is recovered only when named. */
static void test_recover_statuses(void **state)
{
  (void)state;
  struct nrd_ledger_row r = row(NRD_ROW_PENDING, false, false);
  assert_true(nrd_status_recoverable("migrating"));
  assert_false(nrd_status_recoverable("exited"));
  assert_int_equal(nrd_recovery_next(&r, true, "exited"), NRD_STEP_ABANDON_HEALTHY);
  nrd_recovery_set_statuses("migrating,exited");
  assert_true(nrd_status_recoverable("exited"));
  assert_false(nrd_status_recoverable("exit"));
  assert_false(nrd_status_recoverable("migrating,exited"));
  assert_false(nrd_status_recoverable(""));
  assert_false(nrd_status_recoverable(NULL));
  assert_int_equal(nrd_recovery_next(&r, true, "exited"), NRD_STEP_DELETE);
  assert_int_equal(nrd_recovery_next(&r, true, "running"), NRD_STEP_ABANDON_HEALTHY);
  nrd_recovery_set_statuses(NULL); /* back to the default */
  assert_false(nrd_status_recoverable("exited"));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_pending),     cmocka_unit_test(test_pending_after_operator_retry),
    cmocka_unit_test(test_deleting),    cmocka_unit_test(test_deleted_and_creating),
    cmocka_unit_test(test_done_states), cmocka_unit_test(test_recover_statuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
