/* The ledger's and the snapshots' columns into their structs, for both
 * backends (store_codec.h). */
#include "store_codec.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/log.h"
#include "nrd/util.h"
#include "store_lists.h"

static char *dup_col(const struct store_row *row, int col)
{
  const char *t = row->text(row, col);
  return t ? nrd_xstrdup(t) : NULL;
}

#define FIELD(type, kind, member)                 \
  {                                               \
    STORE_F_##kind, offsetof(struct type, member) \
  }
#define SHAPE(fields)                        \
  {                                          \
    fields, sizeof fields / sizeof fields[0] \
  }

static const struct store_field ledger_fields[] = {
  [LEDGER_COL_JOB_ID] = FIELD(nrd_ledger_row, TEXT, job_id),
  [LEDGER_COL_JOB_TYPE] = FIELD(nrd_ledger_row, TEXT, job_type),
  [LEDGER_COL_INSTANCE_ID] = FIELD(nrd_ledger_row, TEXT, instance_id),
  [LEDGER_COL_INSTANCE_NAME] = FIELD(nrd_ledger_row, TEXT, instance_name),
  [LEDGER_COL_STATE] = FIELD(nrd_ledger_row, SKIP, state),
  [LEDGER_COL_NEW_NAME] = FIELD(nrd_ledger_row, TEXT, new_name),
  [LEDGER_COL_NAME_MS] = FIELD(nrd_ledger_row, I64, name_ms),
  [LEDGER_COL_NEW_INSTANCE_ID] = FIELD(nrd_ledger_row, TEXT, new_instance_id),
  [LEDGER_COL_DELETE_SENT] = FIELD(nrd_ledger_row, FLAG, delete_sent),
  [LEDGER_COL_CREATE_SENT] = FIELD(nrd_ledger_row, FLAG, create_sent),
  [LEDGER_COL_ADOPTED] = FIELD(nrd_ledger_row, FLAG, adopted),
  [LEDGER_COL_ATTEMPTS] = FIELD(nrd_ledger_row, INT, attempts),
  [LEDGER_COL_LAST_ERROR] = FIELD(nrd_ledger_row, TEXT, last_error),
  [LEDGER_COL_OWNER] = FIELD(nrd_ledger_row, TEXT, owner),
  [LEDGER_COL_LEASE_UNTIL] = FIELD(nrd_ledger_row, I64, lease_until_ms),
  [LEDGER_COL_RUN_ID] = FIELD(nrd_ledger_row, TEXT, run_id),
  [LEDGER_COL_CREATED] = FIELD(nrd_ledger_row, I64, created_ms),
  [LEDGER_COL_UPDATED] = FIELD(nrd_ledger_row, I64, updated_ms),
  [LEDGER_COL_ACCEPTED] = FIELD(nrd_ledger_row, I64, accepted_ms),
  [LEDGER_COL_RUNNING] = FIELD(nrd_ledger_row, I64, running_ms),
  [LEDGER_COL_SE_STATE] = FIELD(nrd_ledger_row, TEXT, status_error_state),
  [LEDGER_COL_SE_MESSAGE] = FIELD(nrd_ledger_row, TEXT, status_error_message),
};
static const struct store_field brake_fields[] = {
  FIELD(nrd_brake, TEXT, reason), FIELD(nrd_brake, TEXT, message), FIELD(nrd_brake, TEXT, job_id),
  FIELD(nrd_brake, I64, until_ms), FIELD(nrd_brake, I64, set_ms)
};
static const struct store_field run_record_fields[] = {
  FIELD(nrd_run_record, TEXT, run_id),     FIELD(nrd_run_record, TEXT, trigger),
  FIELD(nrd_run_record, TEXT, state),      FIELD(nrd_run_record, FLAG, dry_run),
  FIELD(nrd_run_record, I64, started_ms),  FIELD(nrd_run_record, I64, finished_ms),
  FIELD(nrd_run_record, TEXT, report_json)
};
static const struct store_field event_fields[] = { FIELD(nrd_event, TEXT, id),
                                                   FIELD(nrd_event, TEXT, type),
                                                   FIELD(nrd_event, TEXT, body_json),
                                                   FIELD(nrd_event, I64, created_ms),
                                                   FIELD(nrd_event, TEXT, state),
                                                   FIELD(nrd_event, INT, attempts),
                                                   FIELD(nrd_event, I64, next_attempt_ms),
                                                   FIELD(nrd_event, TEXT, last_error),
                                                   FIELD(nrd_event, I64, seq) };
static const struct store_field bucket_fields[] = {
  FIELD(nrd_hourly_bucket, I64, hour_ms),    FIELD(nrd_hourly_bucket, TEXT, state),
  FIELD(nrd_hourly_bucket, FLAG, adopted),   FIELD(nrd_hourly_bucket, I64, count),
  FIELD(nrd_hourly_bucket, I64, ttr_sum_ms), FIELD(nrd_hourly_bucket, I64, ttr_max_ms)
};
static const struct store_field run_summary_fields[] = {
  FIELD(nrd_run_summary, TEXT, run_id),    FIELD(nrd_run_summary, TEXT, trigger),
  FIELD(nrd_run_summary, TEXT, state),     FIELD(nrd_run_summary, FLAG, dry_run),
  FIELD(nrd_run_summary, I64, started_ms), FIELD(nrd_run_summary, I64, finished_ms)
};

const struct store_shape store_ledger_shape = SHAPE(ledger_fields);
const struct store_shape store_brake_shape = SHAPE(brake_fields);
const struct store_shape store_run_record_shape = SHAPE(run_record_fields);
const struct store_shape store_event_shape = SHAPE(event_fields);
const struct store_shape store_bucket_shape = SHAPE(bucket_fields);
const struct store_shape store_run_summary_shape = SHAPE(run_summary_fields);

void store_shape_read(const struct store_shape *sh, const struct store_row *row, void *out)
{
  for (size_t c = 0; c < sh->n; c++) {
    char *field = (char *)out + sh->fields[c].off;
    switch (sh->fields[c].kind) {
    case STORE_F_TEXT:
      *(char **)(void *)field = dup_col(row, (int)c);
      break;
    case STORE_F_I64:
      *(int64_t *)(void *)field = row->i64(row, (int)c);
      break;
    case STORE_F_INT:
      *(int *)(void *)field = (int)row->i64(row, (int)c);
      break;
    case STORE_F_FLAG:
      *(bool *)(void *)field = row->flag(row, (int)c);
      break;
    case STORE_F_SKIP:
      break;
    }
  }
}

/* Frees the text fields of n structs of size bytes at arr (the shape's). */
static void shape_free_text(const struct store_shape *sh, void *arr, size_t n, size_t size)
{
  for (size_t i = 0; i < n && arr; i++) {
    for (size_t c = 0; c < sh->n; c++) {
      if (sh->fields[c].kind == STORE_F_TEXT)
        free(*(char **)(void *)((char *)arr + i * size + sh->fields[c].off));
    }
  }
}

/* One struct's cleanup: its text freed, the struct zeroed (NULL: nothing). */
static void shape_cleanup(const struct store_shape *sh, void *obj, size_t size)
{
  shape_free_text(sh, obj, 1, size);
  if (obj)
    memset(obj, 0, size);
}

/* An array's: each struct's text, then the array. */
static void shape_free(const struct store_shape *sh, void *arr, size_t n, size_t size)
{
  shape_free_text(sh, arr, n, size);
  free(arr);
}

void nrd_ledger_row_cleanup(struct nrd_ledger_row *row)
{
  shape_cleanup(&store_ledger_shape, row, sizeof *row);
}

void nrd_ledger_rows_free(struct nrd_ledger_row *rows, size_t n)
{
  shape_free(&store_ledger_shape, rows, n, sizeof *rows);
}

void nrd_event_cleanup(struct nrd_event *e)
{
  shape_cleanup(&store_event_shape, e, sizeof *e);
}

void nrd_events_free(struct nrd_event *e, size_t n)
{
  shape_free(&store_event_shape, e, n, sizeof *e);
}

void nrd_run_record_cleanup(struct nrd_run_record *r)
{
  shape_cleanup(&store_run_record_shape, r, sizeof *r);
}

void nrd_run_summaries_free(struct nrd_run_summary *runs, size_t n)
{
  shape_free(&store_run_summary_shape, runs, n, sizeof *runs);
}

void nrd_hourly_buckets_free(struct nrd_hourly_bucket *b, size_t n)
{
  shape_free(&store_bucket_shape, b, n, sizeof *b);
}

void nrd_brake_cleanup(struct nrd_brake *b)
{
  shape_cleanup(&store_brake_shape, b, sizeof *b);
}

bool store_ledger_decode(const struct store_row *row, struct nrd_ledger_row *out)
{
  memset(out, 0, sizeof *out);
  const char *state = row->text(row, LEDGER_COL_STATE);
  if (!nrd_row_state_parse(state, &out->state)) {
    LOG_ERROR_AT(NRD_FAULT_DISK, "store: ledger row with unknown state", "state", state);
    return false;
  }
  store_shape_read(&store_ledger_shape, row, out);
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
