#ifndef NRD_RECOVERY_H
#define NRD_RECOVERY_H

#include <stdbool.h>

#include "nrd/store.h"

/* "What next" for one ledger row: a pure function of the row and what this
 * run's sync saw of its instance, so tests can drive the state machine
 * without I/O. The executor (src/core/recover.c) writes the next state to the
 * ledger before each side effect. */

enum nrd_step {
  NRD_STEP_NONE = 0,        /* row is finished */
  NRD_STEP_DELETE,          /* check the replacement can be built, then delete */
  NRD_STEP_CONFIRM_DELETED, /* we sent a delete and the instance is gone: mark deleted */
  NRD_STEP_CREATE,          /* create the replacement (no create sent before) */
  NRD_STEP_LOOKUP_CREATE,   /* a create may exist: look the name up, adopt or create */
  NRD_STEP_ABANDON_GONE,    /* instance vanished before we sent a delete */
  NRD_STEP_ABANDON_HEALTHY  /* instance left the RECOVER_STATUSES (`migrating`) before
                               we sent a delete */
};
const char *nrd_step_name(enum nrd_step s);

/* RECOVER_STATUSES: the statuses in which an instance whose newest migration
 * job failed is recovered (default "migrating"); a comma-separated list, set
 * once before the first run. nrd_status_recoverable: status is one of them. */
void nrd_recovery_set_statuses(const char *csv);
bool nrd_status_recoverable(const char *status);

/* listed: the instance was in this run's listing; status: its status there
 * (NULL when not listed). */
enum nrd_step nrd_recovery_next(const struct nrd_ledger_row *row, bool listed, const char *status);

#endif
