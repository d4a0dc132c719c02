#ifndef NRD_CORE_INTERNAL_H
#define NRD_CORE_INTERNAL_H

/* Private to src/core: the runner, one run's context, the row executor. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "nrd/config.h"
#include "nrd/novita.h"
#include "nrd/pool.h"
#include "nrd/run.h"
#include "nrd/store.h"
#include "nrd/thread.h"
#include "nrd/util.h"

/* Per worker thread: its own Novita connection and store connection. */
struct nrd_worker {
  struct nrd_runner *runner;
  struct nrd_novita_conn *conn;
  struct nrd_store *store;
};

/* A look-up of one run fetched at most once: the first worker to ask loads
 * it outside ctx->lock, the others wait on ctx->product_cond for it; a failed
 * load is tried again by the next worker to ask. (placement.c) */
struct run_once {
  bool loading, loaded;
  enum nrd_nv_rc rc;
  char error[256]; /* Novita's message when rc is not NRD_NV_OK */
};
struct run_ctx;
/* With ctx->lock held: waits out a load under way; true when the caller is
 * to load now (marked loading; it unlocks for the load, locks again and ends
 * with run_once_done), false when a good load is there. */
bool run_once_begin(struct run_ctx *ctx, struct run_once *o);
/* With ctx->lock held: records the load's rc (and err's message) and wakes
 * the waiters. */
void run_once_done(struct run_ctx *ctx, struct run_once *o, enum nrd_nv_rc rc,
                   const struct nrd_nv_error *err);
/* The load's rc; its message into err when it failed. */
enum nrd_nv_rc run_once_rc(const struct run_once *o, struct nrd_nv_error *err);

/* Product fallback look-ups of one run, each (name, region) fetched once. */
struct product_entry {
  char *name, *region;
  struct run_once load;
  char *product_id; /* NULL when none fits */
  struct product_entry *next;
};

/* The capacity brake's look-ups of one run: each (product, cluster) once. */
struct capacity_entry {
  char *product, *cluster, *billing;
  struct run_once load;
  bool offered;     /* false: no capacity (or a create was refused for it) */
  char *product_id; /* the id of the product offered there (NULL: none) */
  bool event_sent;  /* recovery.blocked emitted for it in this run */
  struct capacity_entry *next;
};

/* Where a replacement goes (RECOVERY_PLACEMENT, RECOVERY_BILLING_FALLBACK):
 * the snapshot's own cluster and billing unless fallback. */
struct placement {
  bool found;
  bool fallback; /* cluster or billing differs from the snapshot's */
  char cluster[128], region[64], billing[16], product_id[128];
  char why[384]; /* with fallback: what was full and where it went */
};

struct run_ctx {
  struct nrd_runner *runner;
  char run_id[64];
  enum nrd_trigger trigger;
  bool dry_run;
  bool watch_only;         /* the watch's run: its rows alone, no sync
                                    and no detection; sync_started_ms is when
                                    the watch saw their instances */
  char *const *watch_jobs; /* their job ids (the queued run's) */
  size_t n_watch_jobs;
  int64_t started_ms;
  int64_t sync_started_ms; /* wall clock when this run's listing began */
  int64_t deadline_mono_ms;

  /* Where every outcome goes (takes item): the report's tally, set by the
   * coordinator. The row executor hands its outcomes back through it. */
  void (*outcome)(struct run_ctx *ctx, cJSON *item);

  pthread_mutex_t lock; /* guards everything below */
  pthread_cond_t product_cond;
  struct product_entry *products;
  struct nrd_buf outcomes; /* the outcomes printed, comma-separated: the
                                    report's array without its brackets */
  int total_checked, failed_found, recreated, errors, deferred;
  bool circuit_tripped;
  bool store_failed;     /* a ledger or snapshot write failed */
  char store_error[400]; /* "store unavailable: <SQLite's message>" */

  /* Brakes (issue "never delete what cannot be recreated"). */
  struct capacity_entry *capacity;
  bool account_blocked; /* no delete (nor create) is sent in this run */
  char account_reason[64], account_message[256];
  bool account_event_sent; /* recovery.blocked (account) emitted in this run */
  bool account_persisted;  /* the stored brake says this row set it */
  bool create_tried;       /* a create was sent in this run */
  bool create_accepted;    /* a create was accepted: the canary passed */
  long held_account, held_capacity;

  /* GET /v1/clusters, loaded once per run when a placement fallback asks. */
  struct run_once clusters_load;
  struct nrd_cluster *clusters;
  size_t n_clusters;
};

struct nrd_runner {
  const struct nrd_config *cfg;
  struct nrd_novita *nv;
  char owner[160];              /* lease owner: host:pid:random, never cut */
  void (*event_hook)(void *ud); /* new events in the outbox (may be NULL) */
  void *event_hook_ud;

  struct nrd_pool *pool;
  struct nrd_worker coord; /* the coordinator thread's own connections */

  pthread_mutex_t query_lock; /* guards query_store and the readiness below */
  struct nrd_store *query_store;
  bool integrity_failed; /* PRAGMA quick_check failed at start-up */
  int64_t probe_mono_ms; /* the last write probe (/ready), 0 none */
  bool probe_ok;
  dev_t db_dev; /* the database file as opened */
  ino_t db_ino;
  atomic_bool db_file_logged; /* its disappearance was logged */

  pthread_mutex_t lock; /* guards the queue below and stopping */
  pthread_cond_t cond;
  struct queued_run *current, *queue;
  bool stopping;
  bool halted;           /* nrd_runner_halt ran */
  atomic_bool running;   /* a run executes (read without the lock) */
  atomic_bool stop_work; /* read by workers without the lock */
  pthread_t thread;

  /* Lease keeper (lease.c): renews the leases of rows being worked on. */
  pthread_mutex_t lease_lock;
  pthread_cond_t lease_cond;
  bool lease_stop; /* guarded by lease_lock */
  char **active;   /* job ids held by this process */
  size_t n_active, cap_active;
  pthread_t lease_thread;
  struct nrd_store *lease_store; /* the keeper's connection, opened before its thread */

  struct follow_poller *follow; /* follow.c: replacements looked at between runs */
  struct control *control;      /* control.c: the operator's writes */
};

/* The watch's run (watch.c): joins or queues a run of trigger "watch".
 * watch_only: a run over the n rows job_ids alone (written to the ledger,
 * their instances seen migrating since seen_ms and their snapshots stored),
 * without a sync; else a full run. 0, or -1 when stopping. */
int nrd_runner_request_watch(struct nrd_runner *r, bool dry_run, bool watch_only,
                             const char *const *job_ids, size_t n, int64_t seen_ms,
                             char run_id[64]);

/* ---- the cluster's run lock (runlock.c), taken by the coordinator ---- */

enum run_lock_rc {
  RUN_LOCK_ALONE,      /* no lock to take (SQLite), or waited for too long */
  RUN_LOCK_HELD,       /* taken: run, then nrd_run_lock_release */
  RUN_LOCK_JOIN,       /* not held: the run to end as is in *joined */
  RUN_LOCK_STORE_DOWN, /* the store did not answer: the run fails unsent */
  RUN_LOCK_STOPPED,    /* the runner stopped while another replica held it */
};
/* On a shared store: takes the run lock, waiting (a try every 200 ms, up to
 * a run deadline) while another replica's run holds it. When the run it
 * waited for ended done with dry_run's setting and no row deferred, and
 * may_join (the run has no watch rows of its own to recover), gives the
 * lock back and answers RUN_LOCK_JOIN with that run's record in *joined
 * (caller cleans it up). */
enum run_lock_rc nrd_run_lock_take(struct nrd_runner *r, bool dry_run, bool may_join,
                                   struct nrd_run_record *joined);
/* Gives it up (nothing when not held). */
void nrd_run_lock_release(struct nrd_runner *r);
/* The report of a run that joined other: other's, with this run's runId and
 * "joinedRunId" (caller frees); *errors gets its error count. */
char *nrd_run_lock_joined_report(const struct nrd_run_record *other, const char *run_id,
                                 int *errors);

/* Executes one run start to end on the coordinator thread. */
void nrd_run_execute(struct nrd_runner *r, struct run_ctx *ctx, char **result_json, bool *completed,
                     char **error_message);

/* Drives one ledger row as far as it goes in this run (worker thread). */
void nrd_recover_row(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_ledger_row *row);

/* ---- the report's tally (report.c): a leaf, called by every step ---- */

/* A new outcome of row: {instanceId, instanceName, jobId, action}. */
cJSON *nrd_outcome_new(const struct nrd_ledger_row *row, const char *action);
/* Appends an outcome (takes item: printed into ctx->outcomes and freed).
 * Counts it. What ctx->outcome points at. */
void nrd_report_add_outcome(struct run_ctx *ctx, cJSON *item);
/* A `deferred` outcome of row naming reason. */
void nrd_report_defer(struct run_ctx *ctx, const struct nrd_ledger_row *row, const char *reason);
/* The store failed before the rows were worked: every open row the ledger
 * still lists is deferred naming the failure. */
void nrd_report_defer_open_rows(struct run_ctx *ctx, struct nrd_worker *w);
/* The run's store failed (first call wins, with st's SQLite message, or
 * what): every row not yet worked is deferred and the run answers 503. */
void nrd_run_store_failed(struct run_ctx *ctx, struct nrd_store *st);
void nrd_run_store_failed_msg(struct run_ctx *ctx, const char *what);
/* Copies "store unavailable: ..." into out and returns true; false (out
 * untouched) while the store is fine. */
bool nrd_run_store_reason(struct run_ctx *ctx, char *out, size_t outlen);
/* The report as JSON text (caller frees), its outcomes last. The outcomes'
 * buffer becomes the report (moved up to make room for the head), so the
 * largest text of the run is never held twice. */
char *nrd_report_text(struct run_ctx *ctx);
/* The run.completed event for the outbox (written on st): the counts. */
void nrd_report_event(struct run_ctx *ctx, struct nrd_store *st, const char *state, bool completed,
                      int64_t finished_ms);

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

/* The capacity entry of (product, cluster, billing), loaded once per run:
 * offered when a product of that name (or product_id) is deployable there.
 * Called with ctx->lock held; may drop it while loading. (placement.c) */
struct capacity_entry *nrd_capacity_entry(struct run_ctx *ctx, struct nrd_worker *w,
                                          const char *kind, const char *product,
                                          const char *product_id, const char *cluster,
                                          const char *billing);

/* The first place offering snap's product that RECOVERY_PLACEMENT and
 * RECOVERY_BILLING_FALLBACK allow: its own cluster and billing first, then
 * (unless pinned, as network storage pins a row) the other clusters of its
 * region, then any other; in each cluster its billing, then onDemand when
 * allowed. NRD_NV_OK with out->found false when none offers it; else the
 * failure of a look-up (err says why). */
enum nrd_nv_rc nrd_place(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_instance *snap,
                         bool pinned, struct placement *out, struct nrd_nv_error *err);

/* The database file is still the one opened (same device and inode);
 * false with why filled (logged once) when it was deleted or replaced. */
bool nrd_runner_db_file_ok(struct nrd_runner *r, char *why, size_t whylen);
/* Following replacements to running (follow.c). nrd_follow_created looks
 * at the rows in created once each (with ctx: those accepted before the run
 * started, their outcomes in the run's report); returns the rows settled. start/stop: the poller between runs. */
int nrd_follow_created(struct nrd_worker *w, struct run_ctx *ctx);
void nrd_follow_start(struct nrd_runner *r, struct nrd_store *st); /* takes st */
void nrd_follow_stop(struct nrd_runner *r);
/* The operator's writes (control.c): start takes st, its thread's own
 * connection; stop does the ops already asked for, then joins. */
void nrd_control_start(struct nrd_runner *r, struct nrd_store *st);
void nrd_control_stop(struct nrd_runner *r);
void nrd_control_free(struct nrd_runner *r);

/* Failed newest jobs whose instance this run listed in a status not in
 * RECOVER_STATUSES: `ignored` outcomes, logged and counted once per job
 * (ignored.c). recovering(ud, instance_id) says whether this run's sync
 * listed the instance in a recovered status: such a job is the ledger's,
 * never ignored, and costs no store read. */
typedef bool (*nrd_recovering_fn)(void *ud, const char *instance_id);
void nrd_report_ignored(struct run_ctx *ctx, struct nrd_worker *w, struct nrd_job *jobs[2],
                        const size_t n_jobs[2], nrd_recovering_fn recovering, void *ud);

/* The lease keeper (lease.c): the rows in hand, its thread. init before
 * the runner's threads, start once lease_store is open, stop at the end
 * (joins, closes lease_store). */
void nrd_lease_hold(struct nrd_runner *r, const char *job_id);
void nrd_lease_unhold(struct nrd_runner *r, const char *job_id);
void nrd_lease_init(struct nrd_runner *r);
int nrd_lease_start(struct nrd_runner *r);
void nrd_lease_stop(struct nrd_runner *r);

/* Readiness (health.c): the file's identity and PRAGMA quick_check, taken
 * once at start-up on the query connection. */
void nrd_runner_startup_checks(struct nrd_runner *r);

#endif
