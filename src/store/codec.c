/* The ledger's and the snapshots' columns into their structs, for both
 * backends (store_codec.h). */
#include "store_codec.h"

#include <string.h>

#include "nrd/log.h"
#include "nrd/util.h"
#include "store_lists.h"

static char *dup_col(const struct store_row *row, int col)
{
  const char *t = row->text(row, col);
  return t ? nrd_xstrdup(t) : NULL;
}

bool store_ledger_decode(const struct store_row *row, struct nrd_ledger_row *out)
{
  memset(out, 0, sizeof *out);
  const char *state = row->text(row, LEDGER_COL_STATE);
  if (!nrd_row_state_parse(state, &out->state)) {
    LOG_ERROR_AT(NRD_FAULT_DISK, "store: ledger row with unknown state", "state", state);
    return false;
  }
  out->job_id = dup_col(row, LEDGER_COL_JOB_ID);
  out->job_type = dup_col(row, LEDGER_COL_JOB_TYPE);
  out->instance_id = dup_col(row, LEDGER_COL_INSTANCE_ID);
  out->instance_name = dup_col(row, LEDGER_COL_INSTANCE_NAME);
  out->new_name = dup_col(row, LEDGER_COL_NEW_NAME);
  out->name_ms = row->i64(row, LEDGER_COL_NAME_MS);
  out->new_instance_id = dup_col(row, LEDGER_COL_NEW_INSTANCE_ID);
  out->delete_sent = row->flag(row, LEDGER_COL_DELETE_SENT);
  out->create_sent = row->flag(row, LEDGER_COL_CREATE_SENT);
  out->adopted = row->flag(row, LEDGER_COL_ADOPTED);
  out->attempts = (int)row->i64(row, LEDGER_COL_ATTEMPTS);
  out->last_error = dup_col(row, LEDGER_COL_LAST_ERROR);
  out->owner = dup_col(row, LEDGER_COL_OWNER);
  out->lease_until_ms = row->i64(row, LEDGER_COL_LEASE_UNTIL);
  out->run_id = dup_col(row, LEDGER_COL_RUN_ID);
  out->created_ms = row->i64(row, LEDGER_COL_CREATED);
  out->updated_ms = row->i64(row, LEDGER_COL_UPDATED);
  out->accepted_ms = row->i64(row, LEDGER_COL_ACCEPTED);
  out->running_ms = row->i64(row, LEDGER_COL_RUNNING);
  out->status_error_state = dup_col(row, LEDGER_COL_SE_STATE);
  out->status_error_message = dup_col(row, LEDGER_COL_SE_MESSAGE);
  return true;
}

/* A list column (NULL: none) into out's list of that kind. */
static bool read_list(const struct store_row *row, int col, enum store_list kind,
                      struct nrd_instance *out)
{
  const char *json = row->text(row, col);
  return !json || store_list_read(json, kind, out);
}

bool store_snapshot_decode(const struct store_row *row, struct nrd_instance *out)
{
  char **text[] = {
    [SNAP_COL_ID] = &out->id,
    [SNAP_COL_NAME] = &out->name,
    [SNAP_COL_STATUS] = &out->status,
    [SNAP_COL_CLUSTER_ID] = &out->cluster_id,
    [SNAP_COL_CLUSTER_NAME] = &out->cluster_name,
    [SNAP_COL_PRODUCT_ID] = &out->product_id,
    [SNAP_COL_PRODUCT_NAME] = &out->product_name,
    [SNAP_COL_IMAGE_URL] = &out->image_url,
    [SNAP_COL_IMAGE_AUTH_ID] = &out->image_auth_id,
    [SNAP_COL_COMMAND] = &out->command,
    [SNAP_COL_GPU_NUM] = &out->gpu_num,
    [SNAP_COL_ROOTFS_SIZE] = &out->rootfs_size,
    [SNAP_COL_KIND] = &out->kind,
    [SNAP_COL_BILLING_MODE] = &out->billing_mode,
  };
  for (int c = SNAP_COL_ID; c <= SNAP_COL_BILLING_MODE; c++)
    *text[c] = dup_col(row, c);
  out->raw_json = dup_col(row, SNAP_COL_RAW);
  out->created_at = row->i64(row, SNAP_COL_CREATED_AT);
  out->entrypoint = dup_col(row, SNAP_COL_ENTRYPOINT);
  out->network_id = dup_col(row, SNAP_COL_NETWORK_ID);
  out->min_cuda_version = dup_col(row, SNAP_COL_MIN_CUDA);
  if (read_list(row, SNAP_COL_PORTS, STORE_LIST_PORTS, out) &&
      read_list(row, SNAP_COL_ENVS, STORE_LIST_ENVS, out) &&
      read_list(row, SNAP_COL_MOUNTS, STORE_LIST_MOUNTS, out) &&
      read_list(row, SNAP_COL_TOOLS, STORE_LIST_TOOLS, out))
    return true;
  LOG_ERROR_AT(NRD_FAULT_DISK, "store: snapshot has a broken list column", "instanceId", out->id);
  nrd_instance_cleanup(out);
  return false;
}

void store_upsert_init(struct store_upsert *u, nrd_snapshot_run_fn next, void *ud,
                       const char *run_id, int64_t now_ms)
{
  *u = (struct store_upsert){ .next = next, .ud = ud, .run_id = run_id, .now_ms = now_ms };
  for (size_t i = 0; i < sizeof u->lists / sizeof u->lists[0]; i++)
    nrd_buf_init(&u->lists[i]);
}

int store_upsert_pull(struct store_upsert *u, const struct nrd_instance **items, size_t *n)
{
  *items = NULL;
  *n = 0;
  int more = u->next(u->ud, items, n);
  if (more != 0)
    u->pulled = true;
  if (more < 0)
    u->dropped = true;
  return more < 0 ? -1 : more > 0;
}

const char *store_upsert_list(struct store_upsert *u, const struct nrd_instance *in,
                              enum store_list which)
{
  return store_list_json(in, which, &u->lists[which]);
}

int store_upsert_finish(struct store_upsert *u, int rc)
{
  for (size_t i = 0; i < sizeof u->lists / sizeof u->lists[0]; i++)
    nrd_buf_cleanup(&u->lists[i]);
  if (u->dropped)
    return NRD_NONE;
  if (rc == NRD_BUSY && u->pulled)
    return NRD_ERR;
  return rc;
}

int store_one_run_next(void *ud, const struct nrd_instance **items, size_t *n)
{
  struct store_one_run *r = ud;
  if (r->taken)
    return 0;
  r->taken = true;
  *items = r->items;
  *n = r->n;
  return 1;
}
