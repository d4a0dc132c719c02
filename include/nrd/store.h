#ifndef NRD_STORE_H
#define NRD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nrd/domain.h"
#include "nrd/model.h"

/* The service's storage behind one narrow interface, with two backends:
 * SQLite (a file, the default) and PostgreSQL (DATABASE_URL: one database
 * that replicas on several hosts share; nrd/store_pg.h says what differs).
 * Callers do not know which they have. One struct nrd_store is one
 * connection: use it from one thread at a time (one per thread).
 *
 * SQLite: WAL, a busy timeout, statements prepared once and reset after
 * use, BEGIN IMMEDIATE for every write transaction (busy retried a bounded
 * number of times). PostgreSQL: parameterised queries, claims with FOR
 * UPDATE SKIP LOCKED and leases on the database's clock.
 *
 * Results are enum nrd_store_rc (nrd/domain.h). The rows, runs and events
 * it reads and writes are the plain data of nrd/domain.h. */

struct nrd_store;
struct nrd_config;

/* Where the store is: PostgreSQL at url when url is set (postgres:// or
 * postgresql://), else SQLite at path. Both borrowed. */
struct nrd_store_target {
  const char *url;
  const char *path;
};
/* The target a configuration names: DATABASE_URL, else DATABASE_PATH. */
struct nrd_store_target nrd_store_target_of(const struct nrd_config *cfg);
/* The target for logs: the path, or the URL with its password as "***". */
void nrd_store_target_describe(const struct nrd_store_target *t, char *out, size_t outlen);

/* Opens the target and applies pending migrations (SQLite: creating the
 * folder 0700 and the file 0600 when missing). Refuses a database whose
 * schema is newer than this binary. err gets one line on failure (never
 * the URL's password). applied (may be NULL) gets the number of migrations
 * applied now. */
int nrd_store_open(const struct nrd_store_target *t, struct nrd_store **out, unsigned *applied,
                   char *err, size_t errlen);
/* nrd_store_open of the SQLite file at path (tools and tests). */
int nrd_store_open_path(const char *path, struct nrd_store **out, unsigned *applied, char *err,
                        size_t errlen);
void nrd_store_close(struct nrd_store *st);
/* The SQLite file this store is (borrowed), NULL when it is not a local
 * file (PostgreSQL). */
const char *nrd_store_file(const struct nrd_store *st);
/* What nrd_store_import_sqlite copied: rows per table, and the rows that
 * were there already (copied before). */
struct nrd_store_import {
  int64_t ledger, snapshots, runs, events, brakes;
  int64_t present;
};
/* Copies the SQLite ledger at path (its schema current: open it with
 * nrd_store_open_path first) into st, which must be PostgreSQL, in one
 * transaction: every ledger row (open ones are resumed, finished ones keep
 * their jobs from being detected again), snapshots, runs, the outbox's
 * events and brakes. Rows copied before are left as they are; a row whose
 * key is there as a different row refuses the whole copy (NRD_ERR, err
 * says which). Refuses a file whose rows are leased at now_ms (its service
 * still runs). */
int nrd_store_import_sqlite(struct nrd_store *st, const char *path, int64_t now_ms,
                            struct nrd_store_import *out, char *err, size_t errlen);
/* Highest applied migration version. */
int nrd_store_schema_version(struct nrd_store *st, int *version);
/* A cheap read that proves the database answers (for /ready). */
int nrd_store_ping(struct nrd_store *st);
/* A cheap write (one row of ready_probe) that proves it can be written.
 * Never waits for the write lock: NRD_BUSY when another transaction holds
 * it (this process's or another's), which proves nothing either way. */
int nrd_store_probe_write(struct nrd_store *st, int64_t now_ms);
/* PRAGMA quick_check on SQLite; on PostgreSQL a cheap health query (the
 * server takes writes). NRD_OK, or NRD_ERR with the first complaint in msg. */
int nrd_store_quick_check(struct nrd_store *st, char *msg, size_t msglen);
/* The database's message of this connection's last failure ("unknown
 * error" when none was recorded). Borrowed until the next call on the
 * connection. */
const char *nrd_store_last_error(const struct nrd_store *st);
/* Gives back the memory of the connection's page cache (SQLite: up to
 * 128 KB after a sync; the cache fills again as it is used). Nothing on
 * PostgreSQL. */
void nrd_store_release_memory(struct nrd_store *st);
/* Leadership of name (the scheduler's): on PostgreSQL a session advisory
 * lock held by this connection while its session lasts, NRD_OK when held
 * (or taken now), NRD_NONE when another replica's session holds it,
 * NRD_BUSY when the connection was lost (and the leadership with it). On
 * SQLite always NRD_OK: one host, and every process on it leads, as before. */
int nrd_store_leader_try(struct nrd_store *st, const char *name);
/* Gives it up (NRD_OK also when not held; a no-op on SQLite). */
int nrd_store_leader_release(struct nrd_store *st, const char *name);

/* ---- snapshots ---- */

/* Upserts a page of instances in one transaction, following DESIGN.md:
 * first sight stores any status; later, the configuration is refreshed only
 * when the new status is settled (nrd_status_is_settled), a known value is
 * never replaced by an absent one (NULL scalar; list not present), a present
 * empty list does replace. status, last_seen_ms and seen_run always update. */
int nrd_store_snapshots_upsert(struct nrd_store *st, const struct nrd_instance *items, size_t n,
                               const char *run_id, int64_t now_ms);
/* The same for a page whose instances arrive in runs while it is stored, in
 * one transaction: next(ud, &items, &n) returns 1 with the next run (the
 * caller's, borrowed until next is called again), 0 at the page's end
 * (commit), -1 when the page is to be dropped (rolled back: NRD_NONE). The
 * transaction and the process's write lock are held while next is called,
 * so next must not wait for anything that writes to the store. */
typedef int (*nrd_snapshot_run_fn)(void *ud, const struct nrd_instance **items, size_t *n);
int nrd_store_snapshots_upsert_runs(struct nrd_store *st, nrd_snapshot_run_fn next, void *ud,
                                    const char *run_id, int64_t now_ms);
/* Fills out (caller cleans up with nrd_instance_cleanup). NRD_NONE if unknown. */
int nrd_store_snapshot_get(struct nrd_store *st, const char *instance_id, struct nrd_instance *out);
/* NRD_OK when a listing saw the instance at or after since_ms (by any
 * process sharing the database), NRD_NONE if not. */
int nrd_store_snapshot_seen_since(struct nrd_store *st, const char *instance_id, int64_t since_ms);

/* ---- recovery ledger ---- */

/* Inserts a pending row unless one exists for job_id. NRD_OK inserted,
 * NRD_NONE already there. */
int nrd_store_ledger_insert(struct nrd_store *st, const char *job_id, const char *job_type,
                            const char *instance_id, const char *instance_name,
                            const char *new_name, int64_t name_ms, int64_t now_ms);

/* The same for many rows in one transaction (a run finds thousands at once).
 * inserted (may be NULL) gets, per row, whether it was new. */
struct nrd_ledger_new {
  const char *job_id, *job_type, *instance_id, *instance_name, *new_name;
  int64_t name_ms;
};
int nrd_store_ledger_insert_many(struct nrd_store *st, const struct nrd_ledger_new *rows, size_t n,
                                 int64_t now_ms, bool *inserted);

/* Open rows (pending..creating), oldest first (created_ms, then job_id), at
 * most limit, after the row `after` in that order (NULL: from the first).
 * Caller frees. */
int nrd_store_ledger_open(struct nrd_store *st, const struct nrd_ledger_row *after, size_t limit,
                          struct nrd_ledger_row **rows, size_t *n);
/* Rows in a state (or all when state < 0), newest first, at most limit. */
int nrd_store_ledger_list(struct nrd_store *st, int state, size_t limit,
                          struct nrd_ledger_row **rows, size_t *n);
int nrd_store_ledger_get(struct nrd_store *st, const char *job_id, struct nrd_ledger_row *out);
/* Number of rows in each state (all rows), indexed by enum nrd_row_state. */
int nrd_store_ledger_count_by_state(struct nrd_store *st, int64_t counts[NRD_ROW_STATE_COUNT]);

/* Claims an open row for owner until now+lease (BEGIN IMMEDIATE): succeeds when
 * the row is open and free, its lease expired, or already owner's. Sets run_id
 * and increments attempts. NRD_NONE when another owner holds it or it is done.
 * out (may be NULL) gets the row as claimed. */
int nrd_store_ledger_claim(struct nrd_store *st, const char *job_id, const char *owner,
                           const char *run_id, int64_t now_ms, int64_t lease_ms,
                           struct nrd_ledger_row *out);
/* The same claim for a row whose first write follows at once on the same
 * connection (the row executor's): on PostgreSQL the claim is not committed
 * on its own but with that write (the owner's next nrd_store_ledger_update
 * or nrd_store_ledger_release on st), one commit fewer a row; until then
 * its row is locked, so no other session can claim or change it, and only
 * reads may be made on st. A process that dies before that write loses the
 * claim with nothing written. On SQLite it is nrd_store_ledger_claim. */
int nrd_store_ledger_claim_held(struct nrd_store *st, const char *job_id, const char *owner,
                                const char *run_id, int64_t now_ms, int64_t lease_ms,
                                struct nrd_ledger_row *out);
/* Extends the lease; NRD_NONE if owner lost it. */
int nrd_store_ledger_renew(struct nrd_store *st, const char *job_id, const char *owner,
                           int64_t lease_until_ms);
/* Gives the row back (owner cleared), state untouched. */
int nrd_store_ledger_release(struct nrd_store *st, const char *job_id, const char *owner);

/* A state change by the lease owner, in one transaction. Fields left NULL/false
 * keep their stored value. An event (may be NULL) is inserted into the outbox
 * in the same transaction. NRD_NONE when owner no longer holds the row. */
struct nrd_event;
struct nrd_ledger_update {
  enum nrd_row_state state;
  const char *new_instance_id;
  const char *last_error; /* NULL keeps; "" clears */
  bool set_delete_sent;
  bool clear_delete_sent; /* the delete was refused: nothing was deleted */
  bool set_create_sent;
  bool set_adopted;
  bool release; /* clear owner and lease in the same write */
  const struct nrd_event *event;
};
int nrd_store_ledger_update(struct nrd_store *st, const char *job_id, const char *owner,
                            const struct nrd_ledger_update *u, int64_t now_ms);

/* Operator control. retry: failed -> pending, last_error kept (delete_sent and
 * create_sent stay, so the state machine resumes safely: a sent delete is
 * never abandoned, a sent create is looked up by name first); abandon: any open or failed row -> abandoned with reason.
 * NRD_NONE if no such row or not in a state that allows it. */
int nrd_store_ledger_retry(struct nrd_store *st, const char *job_id, int64_t now_ms);
int nrd_store_ledger_abandon(struct nrd_store *st, const char *job_id, const char *reason,
                             int64_t now_ms);

/* ---- following a replacement to running (follow.c) ---- */

/* Where a read of the rows to follow resumes: after the row accepted at
 * accepted_ms with job_id, in the read's order. */
struct nrd_follow_cursor {
  int64_t accepted_ms;
  const char *job_id;
};
/* Rows in created whose create was accepted (accepted_ms set, and before
 * accepted_before_ms unless it is 0) and whose replacement is known, oldest
 * accepted first (then by job id), after the cursor (NULL: from the
 * oldest), at most limit. Caller frees. */
int nrd_store_ledger_following(struct nrd_store *st, int64_t accepted_before_ms,
                               const struct nrd_follow_cursor *after, size_t limit,
                               struct nrd_ledger_row **rows, size_t *n);
/* created -> running (running true) or start_failed (with Novita's
 * statusError state/message and a reason, any may be NULL), with an event
 * (may be NULL) in the same transaction. Only a row still in created and not
 * leased changes: NRD_NONE otherwise (someone else settled it). */
struct nrd_ledger_started {
  bool running;
  const char *error_state, *error_message, *reason;
  const struct nrd_event *event;
};
int nrd_store_ledger_started(struct nrd_store *st, const char *job_id,
                             const struct nrd_ledger_started *u, int64_t now_ms);
/* Operator retry of a start_failed row: back to deleted (the old instance is
 * gone) with a new fixed replacement name, the replacement id and the start
 * fields cleared and create_sent cleared, so the next run creates a new
 * replacement. The start_failed replacement is left to the operator.
 * NRD_NONE when the row is not start_failed. */
int nrd_store_ledger_retry_start(struct nrd_store *st, const char *job_id, const char *new_name,
                                 int64_t name_ms, int64_t now_ms);

/* ---- runs ---- */

int nrd_store_run_insert(struct nrd_store *st, const char *run_id, const char *trigger,
                         bool dry_run, int64_t started_ms);
int nrd_store_run_finish(struct nrd_store *st, const char *run_id, const char *state,
                         const char *report_json, int64_t finished_ms);
int nrd_store_run_get(struct nrd_store *st, const char *run_id, struct nrd_run_record *out);
/* Marks runs left 'running' by a dead process as failed (at start-up). */
int nrd_store_run_fail_stale(struct nrd_store *st, int64_t now_ms);
/* The run under way under another session's run lock lock_name (a
 * leadership name, nrd_store_leader_try): the newest 'running' run recorded
 * by the process whose session holds it. NRD_NONE when no session holds it,
 * or its run is not recorded yet. SQLite: always NRD_NONE (one host, no
 * shared run lock). */
int nrd_store_run_holding_lock(struct nrd_store *st, const char *lock_name,
                               struct nrd_run_record *out);

/* ---- outbox (webhook events) ---- */

int nrd_store_event_insert(struct nrd_store *st, const struct nrd_event *e);
/* Oldest pending event (in seq order), whatever its next_attempt_ms. */
int nrd_store_event_next(struct nrd_store *st, struct nrd_event *out);
int nrd_store_event_mark(struct nrd_store *st, const char *id, const char *state, int attempts,
                         int64_t next_attempt_ms, const char *last_error);
/* Events after since_id (all when NULL or unknown), oldest first, at most limit. */
int nrd_store_event_list(struct nrd_store *st, const char *since_id, size_t limit,
                         struct nrd_event **out, size_t *n);

/* ---- brakes that outlive a run (migrations/0003) ---- */

struct nrd_brake {
  char *reason, *message, *job_id; /* heap, may be NULL */
  int64_t until_ms;                /* a not-before time (wall clock), 0: none */
  int64_t set_ms;
};
void nrd_brake_cleanup(struct nrd_brake *b);
/* NRD_OK with *out filled, NRD_NONE when the brake name is not set. */
int nrd_store_brake_get(struct nrd_store *st, const char *name, struct nrd_brake *out);
/* Sets (or replaces) the brake name. */
int nrd_store_brake_set(struct nrd_store *st, const char *name, const struct nrd_brake *b,
                        int64_t now_ms);
/* Releases it; NRD_OK also when it was not set. */
int nrd_store_brake_clear(struct nrd_store *st, const char *name);

/* ---- retention ---- */
/* Deletes finished runs, done ledger rows (created/running/abandoned) and delivered or
 * dead events older than cutoff. */
int nrd_store_prune(struct nrd_store *st, int64_t cutoff_ms, int64_t *deleted);

/* ---- the operator console's read-only queries (console.c) ---- */

/* A run without its outcomes (struct nrd_run_summary, nrd/domain.h).
 * The newest runs first, at most limit. *out: caller frees with
 * nrd_run_summaries_free. */
int nrd_store_run_list(struct nrd_store *st, size_t limit, struct nrd_run_summary **out, size_t *n);

/* Outbox events per state (pending, delivered, dead); a state with no event
 * counts 0. */
int nrd_store_event_count_by_state(struct nrd_store *st, int64_t *pending, int64_t *delivered,
                                   int64_t *dead);

/* Finished ledger rows (not open) whose last change is at or after since_ms,
 * grouped by the hour of that change, state and adopted, oldest hour first
 * (struct nrd_hourly_bucket, nrd/domain.h). */
int nrd_store_ledger_hourly(struct nrd_store *st, int64_t since_ms, struct nrd_hourly_bucket **out,
                            size_t *n);

#endif
