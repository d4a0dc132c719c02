#ifndef NRD_STORE_INTERNAL_H
#define NRD_STORE_INTERNAL_H

/* Shared by the files of src/store only: the connection, its statement cache
 * and the transaction runner. Nothing outside src/store sees sqlite3.h. */

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_codec.h"
#include "store_ops.h"

/* Every statement the store runs, prepared once per connection on first use. */
enum store_stmt {
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_SCHEMA_VERSION,
  STMT_MIGRATION_APPLIED,
  STMT_MIGRATION_RECORD,
  STMT_SNAPSHOT_UPSERT,
  STMT_SNAPSHOT_GET,
  STMT_SNAPSHOT_SEEN,
  STMT_LEDGER_INSERT,
  STMT_LEDGER_OPEN,
  STMT_LEDGER_LIST,
  STMT_LEDGER_GET,
  STMT_LEDGER_COUNT,
  STMT_LEDGER_CLAIM,
  STMT_LEDGER_RENEW,
  STMT_LEDGER_RELEASE,
  STMT_LEDGER_UPDATE,
  STMT_LEDGER_RETRY,
  STMT_LEDGER_ABANDON,
  STMT_LEDGER_FOLLOWING,
  STMT_LEDGER_STARTED,
  STMT_LEDGER_RETRY_START,
  STMT_RUN_INSERT,
  STMT_RUN_FINISH,
  STMT_RUN_GET,
  STMT_RUN_FAIL_STALE,
  STMT_EVENT_INSERT,
  STMT_EVENT_NEXT,
  STMT_EVENT_MARK,
  STMT_EVENT_LIST,
  STMT_PRUNE_RUNS,
  STMT_PRUNE_LEDGER,
  STMT_PRUNE_EVENTS,
  STMT_BRAKE_GET,
  STMT_BRAKE_SET,
  STMT_BRAKE_CLEAR,
  STMT_CONSOLE_RUNS,
  STMT_CONSOLE_EVENT_COUNT,
  STMT_CONSOLE_HOURLY,
  STMT_READY_PROBE,
  STMT_COUNT
};

/* Column lists shared by the SQL in store.c and the row readers. The open
 * states are also the WHERE of the partial index ledger_open_order
 * (migrations/0002), which the open-rows query names: keep them equal. */
#define STORE_OPEN_STATES "'pending', 'deleting', 'deleted', 'creating'"
#define STORE_LEDGER_COLS                                                                    \
  "job_id, job_type, instance_id, instance_name, state, new_name, name_ms, new_instance_id," \
  " delete_sent, create_sent, adopted, attempts, last_error, owner, lease_until_ms, run_id," \
  " created_ms, updated_ms, coalesce(accepted_ms, 0), coalesce(running_ms, 0),"              \
  " status_error_state, status_error_message"
#define STORE_EVENT_COLS \
  "id, type, body_json, created_ms, state, attempts, next_attempt_ms, last_error, seq"

struct nrd_sqlite {
  sqlite3 *db;
  sqlite3_stmt *stmts[STMT_COUNT];
  char last_error[256]; /* SQLite's message of the last failure */
};

/* The cached statement, prepared on first use; NULL (logged) if it cannot be
 * prepared. Borrowed: hand it back with store_done after use. */
sqlite3_stmt *store_stmt(struct nrd_sqlite *st, enum store_stmt id);
/* Resets the statement and clears its bindings. NULL is fine. */
void store_done(sqlite3_stmt *s);

/* Maps a SQLite result code to NRD_BUSY or NRD_ERR, logging errors with what. */
int store_fail(struct nrd_sqlite *st, int rc, const char *what);

/* Steps a bound statement that returns no row; changes (may be NULL) gets the
 * number of rows it wrote. Does not reset it. */
int store_step_write(struct nrd_sqlite *st, sqlite3_stmt *s, const char *what, int *changes);

/* Runs fn inside BEGIN IMMEDIATE ... COMMIT. fn returns NRD_OK or NRD_NONE
 * (committed, and returned), NRD_BUSY (rolled back and the whole transaction
 * retried a bounded number of times, then NRD_BUSY) or NRD_ERR (rolled back).
 * fn must therefore be safe to run again from the start. */
typedef int (*store_tx_fn)(struct nrd_sqlite *st, void *arg);
int store_tx(struct nrd_sqlite *st, store_tx_fn fn, void *arg);

/* Runs one bound write statement in its own transaction (retried on busy;
 * the bindings survive the retries), then resets it. NRD_OK when it changed
 * at least one row, NRD_NONE when it changed none. changes may be NULL. */
int store_write_one(struct nrd_sqlite *st, sqlite3_stmt *s, const char *what, int *changes);

/* The shapes every statement takes. bound says whether store_stmt gave s and
 * every binding took (`s && store_bind_...`): when false, s (NULL is fine) is
 * only reset and the answer is NRD_ERR. Each resets s when done. */
/* store_write_one in its own transaction. */
int store_write_bound(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                      int *changes);
/* One write step inside the caller's transaction: NRD_OK when it changed a
 * row, NRD_NONE when none; changes (may be NULL) gets how many. */
int store_step_bound(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                     int *changes);
/* store_step_bound, then (when it changed a row) event, if any, into the
 * outbox; an event already there counts as written (at least once). */
int store_step_with_event(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                          const struct nrd_event *event);
/* Reads one result row into ctx; false stops the read with NRD_ERR. */
typedef bool (*store_row_fn)(sqlite3_stmt *s, void *ctx);
/* Hands every result row to row (NULL: only steps): NRD_OK at the end. */
int store_each_row(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                   store_row_fn row, void *ctx);
/* Reads the first result row with row (NULL: only asks whether there is
 * one): NRD_OK, or NRD_NONE when there is no row. */
int store_one_row(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                  store_row_fn row, void *out);
/* A growing array of elem-byte rows; store_rows_next gives the next slot,
 * zeroed and already counted in len, or NULL once max rows (when max is not
 * 0) are there: the rows past it are skipped. */
struct store_rows {
  void *arr;
  size_t len, cap, elem, max;
};
void *store_rows_next(struct store_rows *r);

/* Binders by parameter name (":job"), false on failure (a wrong name is our
 * bug). NULL binds SQL NULL; store_bind_text_opt binds "" as NULL too. The
 * text is copied. */
bool store_bind_text(sqlite3_stmt *s, const char *name, const char *v);
bool store_bind_text_opt(sqlite3_stmt *s, const char *name, const char *v);
/* Without a copy: v must outlive every step of the statement (and its
 * retries) until store_done. */
bool store_bind_text_static(sqlite3_stmt *s, const char *name, const char *v);
bool store_bind_i64(sqlite3_stmt *s, const char *name, int64_t v);

/* The column as a heap copy (caller frees), NULL for SQL NULL. */
char *store_col_text(sqlite3_stmt *s, int col);

/* Inserts an event inside the caller's transaction (outbox.c). NRD_NONE when
 * an event with that id is already there. */
int store_event_insert_in_tx(struct nrd_sqlite *st, const struct nrd_event *e);
/* Steps s (bound: as store_each_row) and reads every ledger row
 * (STORE_LEDGER_COLS) into a grown array (caller frees); resets s. */
int store_ledger_read_rows(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound,
                           struct nrd_ledger_row **rows, size_t *n);

/* A struct store_row over s's current row (store_codec.h). */
struct sqlite_row {
  struct store_row row;
  sqlite3_stmt *s;
};
void store_row_init(struct sqlite_row *r, sqlite3_stmt *s);
/* Reads s's current row into out by the shape (store_codec.h); true. */
bool store_shape_row(sqlite3_stmt *s, const struct store_shape *sh, void *out);
/* Runs statement id with its one text parameter param bound to key and reads
 * its row into out (size bytes, zeroed first) by the shape: as store_one_row. */
int store_get_shaped(struct nrd_sqlite *st, enum store_stmt id, const char *param, const char *key,
                     const char *what, const struct store_shape *sh, void *out, size_t size);

/* Applies the embedded migrations (migrate.c). */
int store_migrate(struct nrd_sqlite *st, unsigned *applied, char *err, size_t errlen);

#endif
