#ifndef NRD_CORE_INTERNAL_H
#define NRD_CORE_INTERNAL_H

/* Private to src/core: the runner, one run's context, the row executor. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nrd/config.h"
#include "nrd/novita.h"
#include "nrd/pool.h"
#include "nrd/run.h"
#include "nrd/store.h"
#include "nrd/util.h"

/* Per worker thread: its own Novita connection and store connection. */
struct nrd_worker {
  struct nrd_runner *runner;
  struct nrd_novita_conn *conn;
  struct nrd_store *store;
};

/* Product fallback look-ups of one run, each (name, region) fetched at most
 * once: the first worker to ask loads it, the others wait for it. */
struct product_entry {
  char *name, *region;
  bool loading, loaded;
  enum nrd_nv_rc rc;
  char *product_id;      /* NULL when none fits */
  char error[256];
  struct product_entry *next;
};

/* The capacity brake's look-ups of one run: each (product, cluster) once. */
struct capacity_entry {
  char *product, *cluster, *billing;
  bool loading, loaded;
  enum nrd_nv_rc rc;
  bool offered;          /* false: no capacity (or a create was refused for it) */
  bool event_sent;       /* recovery.blocked emitted for it in this run */
  char error[256];
  struct capacity_entry *next;
};

struct run_ctx {
  struct nrd_runner *runner;
  char run_id[64];
  enum nrd_trigger trigger;
  bool dry_run;
  bool watch_only;               /* the watch's run: its rows alone, no sync
                                    and no detection; sync_started_ms is when
                                    the watch saw their instances */
  char *const *watch_jobs;       /* their job ids (the queued run's) */
  size_t n_watch_jobs;
  int64_t started_ms;
  int64_t sync_started_ms;       /* wall clock when this run's listing began */
  int64_t deadline_mono_ms;

  pthread_mutex_t lock;          /* guards everything below */
  pthread_cond_t product_cond;
  struct product_entry *products;
  struct nrd_buf outcomes;       /* the outcomes printed, comma-separated: the
                                    report's array without its brackets */
  int total_checked, failed_found, recreated, errors, deferred;
  bool circuit_tripped;

  /* Brakes (issue "never delete what cannot be recreated"). */
  struct capacity_entry *capacity;
  bool account_blocked;          /* no delete (nor create) is sent in this run */
  char account_reason[64], account_message[256];
  bool account_event_sent;       /* recovery.blocked (account) emitted in this run */
  bool account_persisted;        /* the stored brake says this row set it */
  bool create_tried;             /* a create was sent in this run */
  bool create_accepted;          /* a create was accepted: the canary passed */
  long held_account, held_capacity;
};

struct nrd_runner {
  const struct nrd_config *cfg;
  struct nrd_novita *nv;
  char owner[160];               /* lease owner: host:pid:random, never cut */
  void (*event_hook)(void *ud);  /* new events in the outbox (may be NULL) */
  void *event_hook_ud;

  struct nrd_pool *pool;
  struct nrd_worker coord;       /* the coordinator thread's own connections */

  pthread_mutex_t query_lock;    /* guards query_store */
  struct nrd_store *query_store;

  pthread_mutex_t lock;          /* guards the queue below and stopping */
  pthread_cond_t cond;
  struct queued_run *current, *queue;
  bool stopping;
  atomic_bool stop_work;         /* read by workers without the lock */
  pthread_t thread;

  /* Lease keeper: renews the leases of rows being worked on. */
  pthread_mutex_t lease_lock;
  pthread_cond_t lease_cond;
  bool lease_stop;               /* guarded by lease_lock */
  char **active;                 /* job ids held by this process */
  size_t n_active, cap_active;
  pthread_t lease_thread;
};

/* The watch's run (watch.c): joins or queues a run of trigger "watch".
 * watch_only: a run over the n rows job_ids alone (written to the ledger,
 * their instances seen migrating since seen_ms and their snapshots stored),
 * without a sync; else a full run. 0, or -1 when stopping. */
int nrd_runner_request_watch(struct nrd_runner *r, bool dry_run, bool watch_only,
                             const char *const *job_ids, size_t n, int64_t seen_ms,
                             char run_id[64]);

/* Executes one run start to end on the coordinator thread. */
void nrd_run_execute(struct nrd_runner *r, struct run_ctx *ctx, char **result_json,
                     bool *completed, char **error_message);

/* Drives one ledger row as far as it goes in this run (worker thread). */
void nrd_recover_row(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_ledger_row *row);

/* A new outcome of row: {instanceId, instanceName, jobId, action}. */
cJSON *nrd_outcome_new(const struct nrd_ledger_row *row, const char *action);

/* Appends an outcome (takes item: printed into ctx->outcomes and freed).
 * Counts it. */
void nrd_run_add_outcome(struct run_ctx *ctx, cJSON *item);

/* The sync's snapshot writer (snapshot_writer.c): runs of instances are
 * stored on a pool worker, one transaction per page, while the coordinator
 * reads on. start: NULL when the pool refuses it (stopping). push takes the
 * items (moves them out, zeroing the slots) and waits while the bounded
 * queue is full; false once storing failed. page_end ends the page's
 * transaction (usable: commit, else roll back). finish waits for the
 * writer, frees it, and says whether every page was stored. */
struct snapshot_writer;
struct snapshot_writer *nrd_snapshot_writer_start(struct run_ctx *ctx);
bool nrd_snapshot_writer_push(struct snapshot_writer *sw, struct nrd_instance *items, size_t n);
void nrd_snapshot_writer_page_end(struct snapshot_writer *sw, bool usable);
bool nrd_snapshot_writer_finish(struct snapshot_writer *sw);

/* The lease keeper's list of rows in hand. */
void nrd_runner_hold(struct nrd_runner *r, const char *job_id);
void nrd_runner_unhold(struct nrd_runner *r, const char *job_id);

#endif
