/* The pure "what next" of a ledger row (nrd/recovery.h). */
#include <stdio.h>
#include <string.h>

#include "nrd/recovery.h"

const char *nrd_step_name(enum nrd_step s)
{
  switch (s) {
  case NRD_STEP_NONE:
    return "none";
  case NRD_STEP_DELETE:
    return "delete";
  case NRD_STEP_CONFIRM_DELETED:
    return "confirm_deleted";
  case NRD_STEP_CREATE:
    return "create";
  case NRD_STEP_LOOKUP_CREATE:
    return "lookup_create";
  case NRD_STEP_ABANDON_GONE:
    return "abandon_gone";
  case NRD_STEP_ABANDON_HEALTHY:
    return "abandon_healthy";
  }
  return "unknown";
}

/* RECOVER_STATUSES, as ",migrating,exited," (set before the first run). */
static char recover_statuses[512] = ",migrating,";

void nrd_recovery_set_statuses(const char *csv)
{
  snprintf(recover_statuses, sizeof(recover_statuses), ",%s,", csv && *csv ? csv : "migrating");
}

bool nrd_status_recoverable(const char *status)
{
  char key[80];
  if (!status || !*status || strchr(status, ','))
    return false;
  snprintf(key, sizeof(key), ",%s,", status);
  return strstr(recover_statuses, key) != NULL;
}

/* Statuses in which an instance we asked to delete counts as going away. */
static bool is_going(const char *status)
{
  return status &&
         (!strcmp(status, "toRemove") || !strcmp(status, "removing") || !strcmp(status, "removed"));
}

enum nrd_step nrd_recovery_next(const struct nrd_ledger_row *row, bool listed, const char *status)
{
  switch (row->state) {
  case NRD_ROW_PENDING:
    if (row->delete_sent) /* re-opened by an operator after a delete */
      return (listed && !is_going(status)) ? NRD_STEP_DELETE : NRD_STEP_CONFIRM_DELETED;
    if (!listed)
      return NRD_STEP_ABANDON_GONE;
    if (!nrd_status_recoverable(status))
      return NRD_STEP_ABANDON_HEALTHY;
    return NRD_STEP_DELETE;
  case NRD_ROW_DELETING:
    /* The delete was written as sent before it left: if the instance is still
     * there, send it again; if it is gone, it was ours. */
    return (listed && !is_going(status)) ? NRD_STEP_DELETE : NRD_STEP_CONFIRM_DELETED;
  case NRD_ROW_DELETED:
    return row->create_sent ? NRD_STEP_LOOKUP_CREATE : NRD_STEP_CREATE;
  case NRD_ROW_CREATING:
    return NRD_STEP_LOOKUP_CREATE;
  case NRD_ROW_CREATED:
  case NRD_ROW_FAILED:
  case NRD_ROW_ABANDONED:
  case NRD_ROW_RUNNING:
  case NRD_ROW_START_FAILED:
  case NRD_ROW_STATE_COUNT:
    break;
  }
  return NRD_STEP_NONE;
}
