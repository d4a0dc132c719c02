#ifndef NRD_STORE_CODEC_H
#define NRD_STORE_CODEC_H

/* The ledger's and the snapshots' columns, read into their structs the same
 * way on both backends: each backend selects the columns in the order below
 * (SQLite's STORE_LEDGER_COLS and snapshot query, PostgreSQL's
 * PG_LEDGER_COLS and snapshot query) and hands a struct store_row that
 * reads one column of the current row. (src/store/codec.c) */

#include <stdbool.h>
#include <stdint.h>

#include "nrd/domain.h"
#include "nrd/model.h"
#include "nrd/store.h"
#include "store_lists.h"

/* One result row. text: the column's text, NULL for SQL NULL, borrowed until
 * the next row; i64: 0 for NULL; flag: a boolean column (SQLite: an integer,
 * PostgreSQL: a boolean). A backend embeds it first in its own row. */
struct store_row {
  const char *(*text)(const struct store_row *row, int col);
  int64_t (*i64)(const struct store_row *row, int col);
  bool (*flag)(const struct store_row *row, int col);
};

enum store_ledger_col {
  LEDGER_COL_JOB_ID,
  LEDGER_COL_JOB_TYPE,
  LEDGER_COL_INSTANCE_ID,
  LEDGER_COL_INSTANCE_NAME,
  LEDGER_COL_STATE,
  LEDGER_COL_NEW_NAME,
  LEDGER_COL_NAME_MS,
  LEDGER_COL_NEW_INSTANCE_ID,
  LEDGER_COL_DELETE_SENT,
  LEDGER_COL_CREATE_SENT,
  LEDGER_COL_ADOPTED,
  LEDGER_COL_ATTEMPTS,
  LEDGER_COL_LAST_ERROR,
  LEDGER_COL_OWNER,
  LEDGER_COL_LEASE_UNTIL,
  LEDGER_COL_RUN_ID,
  LEDGER_COL_CREATED,
  LEDGER_COL_UPDATED,
  LEDGER_COL_ACCEPTED,
  LEDGER_COL_RUNNING,
  LEDGER_COL_SE_STATE,
  LEDGER_COL_SE_MESSAGE
};

enum store_snapshot_col {
  SNAP_COL_ID,
  SNAP_COL_NAME,
  SNAP_COL_STATUS,
  SNAP_COL_CLUSTER_ID,
  SNAP_COL_CLUSTER_NAME,
  SNAP_COL_PRODUCT_ID,
  SNAP_COL_PRODUCT_NAME,
  SNAP_COL_IMAGE_URL,
  SNAP_COL_IMAGE_AUTH_ID,
  SNAP_COL_COMMAND,
  SNAP_COL_GPU_NUM,
  SNAP_COL_ROOTFS_SIZE,
  SNAP_COL_KIND,
  SNAP_COL_BILLING_MODE,
  SNAP_COL_PORTS,
  SNAP_COL_ENVS,
  SNAP_COL_MOUNTS,
  SNAP_COL_RAW,
  SNAP_COL_CREATED_AT,
  SNAP_COL_ENTRYPOINT,
  SNAP_COL_NETWORK_ID,
  SNAP_COL_MIN_CUDA,
  SNAP_COL_TOOLS
};

/* A struct's columns, in the order both backends select them: each a heap
 * string (NULL for SQL NULL), an integer or a boolean at an offset in the
 * struct. One table per struct serves both backends' row readers and the
 * struct's cleanup. */
enum store_field_kind {
  STORE_F_TEXT, /* char *, a copy of the column's text */
  STORE_F_I64,  /* int64_t */
  STORE_F_INT,  /* int */
  STORE_F_FLAG, /* bool */
  STORE_F_SKIP  /* read by the struct's own decoder (the ledger's state) */
};
struct store_field {
  enum store_field_kind kind;
  size_t off;
};
struct store_shape {
  const struct store_field *fields;
  size_t n;
};
/* The columns of struct nrd_ledger_row (enum store_ledger_col), nrd_brake,
 * nrd_run_record, nrd_event (in PG_EVENT_COLS / STORE_EVENT_COLS order),
 * nrd_hourly_bucket, and the first columns of nrd_run_summary (its counts
 * follow, read by each backend its own way). */
extern const struct store_shape store_ledger_shape, store_brake_shape, store_run_record_shape,
    store_event_shape, store_bucket_shape, store_run_summary_shape;
/* Reads the row's columns 0 to sh->n - 1 into out's fields. */
void store_shape_read(const struct store_shape *sh, const struct store_row *row, void *out);

/* Fills out (zeroed first) from the row; false, with nothing to free, when
 * its state is not one we know (logged). */
bool store_ledger_decode(const struct store_row *row, struct nrd_ledger_row *out);

/* Fills out from the row; false when a list column is broken (logged, out
 * cleaned up). */
bool store_snapshot_decode(const struct store_row *row, struct nrd_instance *out);

/* One snapshots_upsert_runs, on either backend: the runs pulled from next,
 * each instance's list columns as JSON (the buffers reused), the outcome. A
 * backend's transaction pulls each run and writes it its own way. */
struct store_upsert {
  nrd_snapshot_run_fn next;
  void *ud;
  const char *run_id;
  int64_t now_ms;
  bool pulled;             /* a run was taken: the transaction cannot be run again */
  bool dropped;            /* the caller dropped the page: rolled back */
  struct nrd_buf lists[4]; /* by enum store_list */
};
void store_upsert_init(struct store_upsert *u, nrd_snapshot_run_fn next, void *ud,
                       const char *run_id, int64_t now_ms);
/* The next run: 1 with items and n set, 0 when there is none, -1 when the
 * caller dropped it (the transaction rolls back). */
int store_upsert_pull(struct store_upsert *u, const struct nrd_instance **items, size_t *n);
/* in's list of that kind as the column's JSON, valid until the next call
 * for the same kind. */
const char *store_upsert_list(struct store_upsert *u, const struct nrd_instance *in,
                              enum store_list which);
/* Frees the buffers; the transaction's rc as snapshots_upsert_runs answers:
 * NRD_NONE when the caller dropped a run, and a busy database after a run
 * was taken is an error (those runs cannot be taken again). */
int store_upsert_finish(struct store_upsert *u, int rc);

/* snapshots_upsert's one run, as a nrd_snapshot_run_fn over items. */
struct store_one_run {
  const struct nrd_instance *items;
  size_t n;
  bool taken;
};
int store_one_run_next(void *ud, const struct nrd_instance **items, size_t *n);

#endif
