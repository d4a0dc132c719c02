#ifndef NRD_CORE_STEPS_H
#define NRD_CORE_STEPS_H

/* Private to src/core: DESIGN's four steps of a run, one file each, in the
 * order run.c sequences them. Each returns 0 when the run goes on, -1 when
 * it ends here (msg says why, or the run's store failure does). */

#include "core_internal.h"

/* A migrating instance the sync saw: id and name, sorted by id. */
struct migrating {
  char *id, *name;
  const struct nrd_job *newest; /* newest migration job, borrowed from the job lists */
};

/* One migration job type, listed on a pool worker while the coordinator
 * goes on with the instance pages (the listing is owned by the run). */
struct job_listing {
  struct run_ctx *ctx;
  const char *type;
  int64_t start_s, end_s;
  bool queued; /* handed to the pool (else listed inline) */
  enum nrd_nv_rc rc;
  struct nrd_nv_error err;
  struct nrd_job *jobs;
  size_t n;
};

/* What the sync and the detection listed; freed by nrd_sync_free. */
struct sync_state {
  struct run_ctx *ctx;
  struct migrating *items;
  size_t n, cap;
  bool store_failed;
  struct job_listing listings[2];
  bool listings_started;
  struct snapshot_writer *writer;
  struct nrd_job *jobs[2]; /* the job lists, taken from the listings by detect */
  size_t n_jobs[2];
};

/* 1. sync (sync.c): every instance listed, its snapshot stored, the
 * migrating ones noted; from the first of them on, the job listings of
 * step 2 run on pool workers. */
int nrd_sync(struct run_ctx *ctx, struct nrd_worker *w, struct sync_state *s, char *msg,
             size_t msglen);
void nrd_sync_listings_start(struct sync_state *s);
void nrd_sync_list_jobs(struct job_listing *l, struct nrd_worker *w);
struct migrating *nrd_sync_find(struct sync_state *s, const char *instance_id);
void nrd_sync_free(struct sync_state *s);

/* 2. detect (detect.c): the newest job of each migrating instance; one
 * ledger row per failed one, all in one transaction. */
int nrd_detect(struct run_ctx *ctx, struct nrd_worker *w, struct sync_state *s, char *msg,
               size_t msglen);

/* 3. recover (recover.c): every open row, the oldest first, up to the
 * brake, on the pool (the canary and the account brake's probe on the
 * coordinator); nrd_recover_row is the row executor. */
int nrd_recover(struct run_ctx *ctx, struct nrd_worker *w);

/* 4. report (report.c): see core_internal.h (the run's tally). */

#endif
