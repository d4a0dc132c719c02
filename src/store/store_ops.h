#ifndef NRD_STORE_OPS_H
#define NRD_STORE_OPS_H

/* The operations of nrd/store.h that each backend carries out, in one list.
 * SQLite's are nrd_sqlite_<name> (the .c files of src/store), PostgreSQL's nrd_pg_<name>
 * (src/store/pg, nrd/store_pg.h); each takes its own connection first, then
 * the parameters listed here. nrd_store_<name> (backend.c) calls the one its
 * struct nrd_store holds.
 *
 * OP(return type, name, (parameters after the connection), (their names))
 *
 * Adding an operation: declare nrd_store_<name> in nrd/store.h, write
 * nrd_sqlite_<name> and nrd_pg_<name>, add its line here. The few whose
 * shape differs (open, close, ping, last_error, release_memory) are written
 * out in backend.c. */

#include "nrd/store.h"

#define NRD_UNPAREN(...) __VA_ARGS__

/* clang-format off */
#define NRD_STORE_OPS(OP)                                                                         \
  OP(int, schema_version, (int *version), (version))                                              \
  OP(int, probe_write, (int64_t now_ms), (now_ms))                                                \
  OP(int, quick_check, (char *msg, size_t msglen), (msg, msglen))                                 \
  OP(int, snapshots_upsert, (const struct nrd_instance *items, size_t n, const char *run_id,      \
                             int64_t now_ms), (items, n, run_id, now_ms))                         \
  OP(int, snapshots_upsert_runs, (nrd_snapshot_run_fn next, void *ud, const char *run_id,         \
                                  int64_t now_ms), (next, ud, run_id, now_ms))                    \
  OP(int, snapshot_get, (const char *instance_id, struct nrd_instance *out), (instance_id, out))  \
  OP(int, snapshot_seen_since, (const char *instance_id, int64_t since_ms),                       \
     (instance_id, since_ms))                                                                     \
  OP(int, ledger_insert, (const char *job_id, const char *job_type, const char *instance_id,      \
                          const char *instance_name, const char *new_name, int64_t name_ms,       \
                          int64_t now_ms),                                                        \
     (job_id, job_type, instance_id, instance_name, new_name, name_ms, now_ms))                   \
  OP(int, ledger_insert_many, (const struct nrd_ledger_new *rows, size_t n, int64_t now_ms,       \
                               bool *inserted), (rows, n, now_ms, inserted))                      \
  OP(int, ledger_open, (const struct nrd_ledger_row *after, size_t limit,                         \
                        struct nrd_ledger_row **rows, size_t *n), (after, limit, rows, n))        \
  OP(int, ledger_list, (int state, size_t limit, struct nrd_ledger_row **rows, size_t *n),        \
     (state, limit, rows, n))                                                                     \
  OP(int, ledger_get, (const char *job_id, struct nrd_ledger_row *out), (job_id, out))            \
  OP(int, ledger_count_by_state, (int64_t counts[NRD_ROW_STATE_COUNT]), (counts))                 \
  OP(int, ledger_claim, (const char *job_id, const char *owner, const char *run_id,               \
                         int64_t now_ms, int64_t lease_ms, struct nrd_ledger_row *out),           \
     (job_id, owner, run_id, now_ms, lease_ms, out))                                              \
  OP(int, ledger_renew, (const char *job_id, const char *owner, int64_t lease_until_ms),          \
     (job_id, owner, lease_until_ms))                                                             \
  OP(int, ledger_release, (const char *job_id, const char *owner), (job_id, owner))               \
  OP(int, ledger_update, (const char *job_id, const char *owner,                                  \
                          const struct nrd_ledger_update *u, int64_t now_ms),                     \
     (job_id, owner, u, now_ms))                                                                  \
  OP(int, ledger_retry, (const char *job_id, int64_t now_ms), (job_id, now_ms))                   \
  OP(int, ledger_abandon, (const char *job_id, const char *reason, int64_t now_ms),               \
     (job_id, reason, now_ms))                                                                    \
  OP(int, ledger_following, (int64_t accepted_before_ms, const struct nrd_follow_cursor *after,   \
                             size_t limit, struct nrd_ledger_row **rows, size_t *n),              \
     (accepted_before_ms, after, limit, rows, n))                                                 \
  OP(int, ledger_started, (const char *job_id, const struct nrd_ledger_started *u,                \
                           int64_t now_ms), (job_id, u, now_ms))                                  \
  OP(int, ledger_retry_start, (const char *job_id, const char *new_name, int64_t name_ms,         \
                               int64_t now_ms), (job_id, new_name, name_ms, now_ms))              \
  OP(int, run_insert, (const char *run_id, const char *trigger, bool dry_run,                     \
                       int64_t started_ms), (run_id, trigger, dry_run, started_ms))               \
  OP(int, run_finish, (const char *run_id, const char *state, const char *report_json,            \
                       int64_t finished_ms), (run_id, state, report_json, finished_ms))           \
  OP(int, run_get, (const char *run_id, struct nrd_run_record *out), (run_id, out))               \
  OP(int, run_fail_stale, (int64_t now_ms), (now_ms))                                             \
  OP(int, run_holding_lock, (const char *lock_name, struct nrd_run_record *out),                  \
     (lock_name, out))                                                                            \
  OP(int, event_insert, (const struct nrd_event *e), (e))                                         \
  OP(int, event_next, (struct nrd_event *out), (out))                                             \
  OP(int, event_mark, (const char *id, const char *state, int attempts, int64_t next_attempt_ms,  \
                       const char *last_error), (id, state, attempts, next_attempt_ms, last_error)) \
  OP(int, event_list, (const char *since_id, size_t limit, struct nrd_event **out, size_t *n),    \
     (since_id, limit, out, n))                                                                   \
  OP(int, brake_get, (const char *name, struct nrd_brake *out), (name, out))                      \
  OP(int, brake_set, (const char *name, const struct nrd_brake *b, int64_t now_ms),               \
     (name, b, now_ms))                                                                           \
  OP(int, brake_clear, (const char *name), (name))                                                \
  OP(int, prune, (int64_t cutoff_ms, int64_t *deleted), (cutoff_ms, deleted))                     \
  OP(int, run_list, (size_t limit, struct nrd_run_summary **out, size_t *n), (limit, out, n))     \
  OP(int, event_count_by_state, (int64_t *pending, int64_t *delivered, int64_t *dead),            \
     (pending, delivered, dead))                                                                  \
  OP(int, ledger_hourly, (int64_t since_ms, struct nrd_hourly_bucket **out, size_t *n),           \
     (since_ms, out, n))
/* clang-format on */

/* SQLite's versions (the .c files of src/store). */
struct nrd_sqlite;
#define NRD_SQLITE_DECLARE(ret, name, params, args) \
  ret nrd_sqlite_##name(struct nrd_sqlite *db, NRD_UNPAREN params);
NRD_STORE_OPS(NRD_SQLITE_DECLARE)
#undef NRD_SQLITE_DECLARE
int nrd_sqlite_open(const char *path, struct nrd_sqlite **out, unsigned *applied, char *err,
                    size_t errlen);
void nrd_sqlite_close(struct nrd_sqlite *db);
int nrd_sqlite_ping(struct nrd_sqlite *db);
const char *nrd_sqlite_last_error(const struct nrd_sqlite *db);
void nrd_sqlite_release_memory(struct nrd_sqlite *db);

#endif
