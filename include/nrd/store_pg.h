#ifndef NRD_STORE_PG_H
#define NRD_STORE_PG_H

/* PostgreSQL storage through libpq: the operations of nrd/store.h with the
 * same meaning, for replicas on several hosts sharing one database. One
 * struct nrd_pg is one connection: use it from one thread at a time.
 *
 * What differs from SQLite, and why:
 * - Leases are on the database's clock (now()), so hosts whose clocks
 *   disagree still agree on who holds a row. The caller's times keep their
 *   meaning as durations: a lease of lease_ms from now, and a renewal to
 *   lease_until_ms lasts lease_until_ms - (the host's now) from the
 *   database's now. created_ms/updated_ms and the other record times are
 *   the caller's, as in SQLite.
 * - Claims lock rows with SELECT ... FOR UPDATE SKIP LOCKED: a row another
 *   replica is claiming right now is skipped, never waited for.
 * - The outbox is claimed: nrd_pg_event_next gives the oldest pending event
 *   to one sender (this connection's identity) for the outbox lease; another
 *   sender gets NRD_NONE until it is marked or the lease ends.
 * - Leadership (the scheduler, the watch loop) is a session advisory lock:
 *   it ends with the holder's connection, so a dead replica's leadership
 *   passes on as soon as the database sees its connection close.
 * - A run left 'running' is stale when the process that started it (its
 *   identity, libpq's application_name) has no session left.
 *
 * Results are those of nrd/store.h: NRD_OK, NRD_NONE, NRD_BUSY (a lost
 * connection, a serialization failure or deadlock: try later), NRD_ERR. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nrd/model.h"
#include "nrd/store.h"

struct nrd_pg;

/* True when url selects PostgreSQL (postgres:// or postgresql://). */
bool nrd_pg_url_is_pg(const char *url);
/* url with its password replaced by "***" (the user:password@ of a URI and
 * any password= parameter), for logs and errors. Always NUL-terminated. */
void nrd_pg_url_redact(const char *url, char *out, size_t outlen);

/* Connects (url: a libpq URI or conninfo; sslmode as it says) and applies
 * pending migrations (migrations/pg), each once, in a transaction under an
 * advisory lock, so replicas starting together do not race. Refuses a schema
 * newer than this binary. err gets one line (the URL redacted). applied (may
 * be NULL) gets the number of migrations applied now. The connection's
 * identity is this process's (see nrd_pg_identity). */
int nrd_pg_open(const char *url, struct nrd_pg **out, unsigned *applied, char *err, size_t errlen);
/* The same with another identity (at most 63 bytes): several "processes" in
 * one, for tests and tools. */
int nrd_pg_open_as(const char *url, const char *identity, struct nrd_pg **out, unsigned *applied,
                   char *err, size_t errlen);
void nrd_pg_close(struct nrd_pg *pg);
/* This process's identity: "nrd-<host>-<pid>-<random>", made once. */
const char *nrd_pg_identity(void);
/* How long a claimed outbox event stays with its sender (default 60 s):
 * longer than one delivery attempt. */
void nrd_pg_set_outbox_lease(struct nrd_pg *pg, int64_t lease_ms);
int nrd_pg_schema_version(struct nrd_pg *pg, int *version);
int nrd_pg_ping(struct nrd_pg *pg);
/* The ready probe's write (one row of ready_probe). */
int nrd_pg_probe_write(struct nrd_pg *pg, int64_t now_ms);
/* A cheap health query in place of SQLite's PRAGMA quick_check: NRD_OK when
 * the server takes writes, NRD_ERR with why in msg when it is a standby in
 * recovery, sets default_transaction_read_only, or does not answer. */
int nrd_pg_quick_check(struct nrd_pg *pg, char *msg, size_t msglen);
/* PostgreSQL's message (first line) of the last failure, "unknown error"
 * when none was recorded. Borrowed until the next call on the connection. */
const char *nrd_pg_last_error(const struct nrd_pg *pg);
/* How many times this connection tried to connect again (a lost session);
 * after a failed try the next waits 100 ms, doubling to 2 s, and calls
 * meanwhile fail at once (NRD_BUSY). */
unsigned nrd_pg_reconnect_tries(const struct nrd_pg *pg);
/* Nothing to give back on PostgreSQL: a no-op, for the same interface. */
void nrd_pg_release_memory(struct nrd_pg *pg);
/* The database's clock (epoch ms). */
int nrd_pg_now_ms(struct nrd_pg *pg, int64_t *now_ms);

/* ---- leadership: a session advisory lock per name ---- */
/* NRD_OK when this connection holds (or now takes) the leadership name,
 * NRD_NONE when another session holds it, NRD_BUSY when the connection is
 * lost (and with it any leadership it held). */
int nrd_pg_leader_try(struct nrd_pg *pg, const char *name);
/* Gives it up; NRD_OK also when not held. */
int nrd_pg_leader_release(struct nrd_pg *pg, const char *name);

/* ---- snapshots ---- */
int nrd_pg_snapshots_upsert(struct nrd_pg *pg, const struct nrd_instance *items, size_t n,
                            const char *run_id, int64_t now_ms);
int nrd_pg_snapshots_upsert_runs(struct nrd_pg *pg, nrd_snapshot_run_fn next, void *ud,
                                 const char *run_id, int64_t now_ms);
int nrd_pg_snapshot_get(struct nrd_pg *pg, const char *instance_id, struct nrd_instance *out);
int nrd_pg_snapshot_seen_since(struct nrd_pg *pg, const char *instance_id, int64_t since_ms);

/* ---- recovery ledger ---- */
int nrd_pg_ledger_insert(struct nrd_pg *pg, const char *job_id, const char *job_type,
                         const char *instance_id, const char *instance_name, const char *new_name,
                         int64_t name_ms, int64_t now_ms);
int nrd_pg_ledger_insert_many(struct nrd_pg *pg, const struct nrd_ledger_new *rows, size_t n,
                              int64_t now_ms, bool *inserted);
int nrd_pg_ledger_open(struct nrd_pg *pg, const struct nrd_ledger_row *after, size_t limit,
                       struct nrd_ledger_row **rows, size_t *n);
int nrd_pg_ledger_list(struct nrd_pg *pg, int state, size_t limit, struct nrd_ledger_row **rows,
                       size_t *n);
int nrd_pg_ledger_get(struct nrd_pg *pg, const char *job_id, struct nrd_ledger_row *out);
int nrd_pg_ledger_count_by_state(struct nrd_pg *pg, int64_t counts[NRD_ROW_STATE_COUNT]);
/* Claims job_id (open, and free, expired or already owner's) for lease_ms
 * on the database's clock; now_ms is the row's updated_ms. */
int nrd_pg_ledger_claim(struct nrd_pg *pg, const char *job_id, const char *owner,
                        const char *run_id, int64_t now_ms, int64_t lease_ms,
                        struct nrd_ledger_row *out);
/* The same claim, its transaction left open on pg until the owner's next
 * nrd_pg_ledger_update or nrd_pg_ledger_release on pg, which commits with
 * it (nrd_store_ledger_claim_held). */
int nrd_pg_ledger_claim_held(struct nrd_pg *pg, const char *job_id, const char *owner,
                             const char *run_id, int64_t now_ms, int64_t lease_ms,
                             struct nrd_ledger_row *out);
/* Claims the oldest open row that nobody holds (or whose lease ended),
 * skipping rows other sessions are claiming. NRD_NONE when there is none. */
int nrd_pg_ledger_claim_next(struct nrd_pg *pg, const char *owner, const char *run_id,
                             int64_t now_ms, int64_t lease_ms, struct nrd_ledger_row *out);
/* lease_until_ms is the host's clock: the lease is extended by the same
 * duration from the database's now. */
int nrd_pg_ledger_renew(struct nrd_pg *pg, const char *job_id, const char *owner,
                        int64_t lease_until_ms);
int nrd_pg_ledger_release(struct nrd_pg *pg, const char *job_id, const char *owner);
int nrd_pg_ledger_update(struct nrd_pg *pg, const char *job_id, const char *owner,
                         const struct nrd_ledger_update *u, int64_t now_ms);
int nrd_pg_ledger_retry(struct nrd_pg *pg, const char *job_id, int64_t now_ms);
int nrd_pg_ledger_abandon(struct nrd_pg *pg, const char *job_id, const char *reason,
                          int64_t now_ms);
/* Following the replacement (nrd/store.h; leases on the database's clock). */
int nrd_pg_ledger_following(struct nrd_pg *pg, int64_t accepted_before_ms,
                            const struct nrd_follow_cursor *after, size_t limit,
                            struct nrd_ledger_row **rows, size_t *n);
int nrd_pg_ledger_started(struct nrd_pg *pg, const char *job_id, const struct nrd_ledger_started *u,
                          int64_t now_ms);
int nrd_pg_ledger_retry_start(struct nrd_pg *pg, const char *job_id, const char *new_name,
                              int64_t name_ms, int64_t now_ms);

/* ---- runs ---- */
int nrd_pg_run_insert(struct nrd_pg *pg, const char *run_id, const char *trigger, bool dry_run,
                      int64_t started_ms);
int nrd_pg_run_finish(struct nrd_pg *pg, const char *run_id, const char *state,
                      const char *report_json, int64_t finished_ms);
int nrd_pg_run_get(struct nrd_pg *pg, const char *run_id, struct nrd_run_record *out);
/* Marks failed the runs left 'running' by processes with no session left. */
int nrd_pg_run_fail_stale(struct nrd_pg *pg, int64_t now_ms);
/* The newest 'running' run of the process (identity) whose session holds
 * the leadership lock lock_name in this database; NRD_NONE when none. */
int nrd_pg_run_holding_lock(struct nrd_pg *pg, const char *lock_name, struct nrd_run_record *out);

/* ---- outbox ---- */
int nrd_pg_event_insert(struct nrd_pg *pg, const struct nrd_event *e);
/* Claims the oldest pending event for this connection's identity (see
 * above). NRD_NONE when there is none or another sender holds it. */
int nrd_pg_event_next(struct nrd_pg *pg, struct nrd_event *out);
/* NRD_NONE when no such event, or another sender holds it now. Clears the
 * claim. */
int nrd_pg_event_mark(struct nrd_pg *pg, const char *id, const char *state, int attempts,
                      int64_t next_attempt_ms, const char *last_error);
int nrd_pg_event_list(struct nrd_pg *pg, const char *since_id, size_t limit, struct nrd_event **out,
                      size_t *n);

/* ---- brakes ---- */
int nrd_pg_brake_get(struct nrd_pg *pg, const char *name, struct nrd_brake *out);
int nrd_pg_brake_set(struct nrd_pg *pg, const char *name, const struct nrd_brake *b,
                     int64_t now_ms);
int nrd_pg_brake_clear(struct nrd_pg *pg, const char *name);

/* ---- retention ---- */
int nrd_pg_prune(struct nrd_pg *pg, int64_t cutoff_ms, int64_t *deleted);

/* ---- the operator console's queries ---- */
int nrd_pg_run_list(struct nrd_pg *pg, size_t limit, struct nrd_run_summary **out, size_t *n);
int nrd_pg_event_count_by_state(struct nrd_pg *pg, int64_t *pending, int64_t *delivered,
                                int64_t *dead);
int nrd_pg_ledger_hourly(struct nrd_pg *pg, int64_t since_ms, struct nrd_hourly_bucket **out,
                         size_t *n);

/* nrd_store_import_sqlite on PostgreSQL. */
int nrd_pg_import_sqlite(struct nrd_pg *pg, const char *path, int64_t now_ms,
                         struct nrd_store_import *out, char *err, size_t errlen);

#endif
