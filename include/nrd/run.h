#ifndef NRD_RUN_H
#define NRD_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nrd/config.h"
#include "nrd/novita.h"
#include "nrd/domain.h"

/* The run coordinator: one run at a time; callers that arrive during a run
 * join it when their dry-run setting matches, otherwise they join (or create)
 * the one queued run that starts after it. A run: sync -> detect -> recover
 * (on the worker pool) -> report. */

enum nrd_trigger { NRD_TRIGGER_API = 0, NRD_TRIGGER_SCHEDULER, NRD_TRIGGER_CLI, NRD_TRIGGER_WATCH };
const char *nrd_trigger_name(enum nrd_trigger t);

/* What waiters are told at the end of a run. Valid only during the callback. */
struct nrd_run_result {
  const char *run_id;
  bool completed;            /* false: Novita unavailable / circuit open / listing failed */
  bool store_failed;         /* with !completed: our database could not be written */
  const char *error_message; /* when !completed */
  const char *result_json;   /* the report's "result" object, always present */
  int64_t started_ms, finished_ms;
  int errors; /* rows that failed in this run */
};
typedef void (*nrd_run_done_fn)(void *ud, const struct nrd_run_result *res);

struct nrd_runner;

/* The runner owns a worker pool of cfg->migration_max_concurrent threads, each
 * with its own Novita connection and store connection, and one coordinator
 * thread. cfg and nv must outlive it. */
struct nrd_runner *nrd_runner_create(const struct nrd_config *cfg, struct nrd_novita *nv, char *err,
                                     size_t errlen);
/* Called (from a worker or the coordinator) after a write that put events
 * in the outbox, so a sender can go at once. Set before the first run. */
void nrd_runner_set_event_hook(struct nrd_runner *r, void (*fn)(void *ud), void *ud);

/* Stops starting work, parks in-flight rows, tells every waiter and joins
 * the runner's threads; its queries stay answerable and new work is
 * refused, for requests still coming on open connections, until
 * nrd_runner_destroy. Idempotent. */
void nrd_runner_halt(struct nrd_runner *r);
/* nrd_runner_halt, then frees everything. */
void nrd_runner_destroy(struct nrd_runner *r);
/* Ask the current run to stop starting new work (shutdown begins). */
void nrd_runner_stop(struct nrd_runner *r);

/* Joins or queues a run. done (may be NULL) is called once, from the
 * coordinator thread, when that run ends (also when it is cancelled at
 * shutdown). run_id gets the id of the run joined. Returns 0, or -1 when the
 * runner is stopping (done is then not called). */
int nrd_runner_request(struct nrd_runner *r, enum nrd_trigger trigger, bool dry_run,
                       nrd_run_done_fn done, void *ud, char run_id[64]);

/* Runs (or joins) one run and waits for it: for the CLI. *result_json (heap,
 * caller frees) gets the report's result; returns 0 when the run completed with
 * no failed row, 1 when a row failed, 2 when the run could not complete. */
int nrd_runner_run_sync(struct nrd_runner *r, enum nrd_trigger trigger, bool dry_run,
                        char **result_json, char **error_message);

/* True while a run executes. */
bool nrd_runner_busy(struct nrd_runner *r);

/* ---- queries for the HTTP layer (thread-safe; each takes the runner's
 * query connection under a lock). Plain data of nrd/domain.h, which
 * src/http renders; the caller frees it with domain.h's free functions. ---- */

/* The run's record: from the store, or (asked for, not yet recorded by the
 * coordinator) from the queue, state running. NRD_NONE when no such run.
 * Caller: nrd_run_record_cleanup. */
int nrd_runner_run_record(struct nrd_runner *r, const char *run_id, struct nrd_run_record *out);
/* Ledger rows in state (-1: every state), at most limit; nrd_ledger_rows_free. */
int nrd_runner_recoveries(struct nrd_runner *r, int state, size_t limit,
                          struct nrd_ledger_row **rows, size_t *n);
/* Outbox events after since (all when NULL or unknown), oldest first, at
 * most limit; nrd_events_free. */
int nrd_runner_events(struct nrd_runner *r, const char *since, size_t limit,
                      struct nrd_event **events, size_t *n);
/* Operator control, written by the runner's control thread on its own
 * connection (the caller never waits for the store): done (may be NULL) is
 * called once from that thread. 0, or -1 when the runner is stopping (done
 * is then not called).
 *   RETRY: a failed row back to pending; a start_failed row gets a new
 *     replacement, with a new fixed name (new_name), created by the next
 *     run; the one that did not start (old_id) is left as it is.
 *   ABANDON: an open or failed row to abandoned, with reason (NULL: "abandoned
 *     by operator").
 * rc: NRD_OK, NRD_NONE when no such row or not in a state that allows it,
 * else the store's trouble. Strings valid during the callback only. */
enum nrd_control { NRD_CONTROL_RETRY = 0, NRD_CONTROL_ABANDON };
struct nrd_control_result {
  int rc;
  bool new_replacement;          /* RETRY of a start_failed row */
  const char *new_name, *old_id; /* with new_replacement */
};
typedef void (*nrd_control_done_fn)(void *ud, const struct nrd_control_result *res);
int nrd_runner_control(struct nrd_runner *r, enum nrd_control what, const char *job_id,
                       const char *reason, nrd_control_done_fn done, void *ud);
/* Ledger rows per state, for /metrics. */
int nrd_runner_count_states(struct nrd_runner *r, int64_t counts[NRD_ROW_STATE_COUNT]);
/* The database answers (for /ready). */
bool nrd_runner_store_ok(struct nrd_runner *r);

/* ---- the operator console's read-only views (console.c) ---- */

/* The newest runs first, without outcomes, at most limit;
 * nrd_run_summaries_free. */
int nrd_runner_run_summaries(struct nrd_runner *r, size_t limit, struct nrd_run_summary **runs,
                             size_t *n);

/* The ledger, brake, breaker and outbox at a glance. */
struct nrd_overview {
  int64_t ledger[NRD_ROW_STATE_COUNT]; /* rows per state */
  int64_t max_recoveries_per_run;
  const char *circuit; /* "closed" | "open" | "half-open" (static) */
  bool run_in_progress, dry_run_only, webhooks_configured;
  int64_t pending, delivered, dead; /* outbox events per state */
  int64_t generated_ms;
};
int nrd_runner_overview(struct nrd_runner *r, struct nrd_overview *out);

/* Finished rows per hour over the last `hours` hours: from the start of the
 * hour hours - 1 hours ago (*from_ms) to now (*to_ms); nrd_hourly_buckets_free. */
int nrd_runner_hourly(struct nrd_runner *r, int hours, int64_t *from_ms, int64_t *to_ms,
                      struct nrd_hourly_bucket **buckets, size_t *n);

#endif
