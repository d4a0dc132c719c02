#ifndef NRD_WATCH_H
#define NRD_WATCH_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "nrd/config.h"
#include "nrd/run.h"

/* The watch loop (issue 15): every WATCH_INTERVAL_SECONDS it lists Novita's
 * failed migration jobs (state=fail, one call per type over
 * MIGRATION_JOB_LOOKBACK_HOURS) and compares their ids with the failed jobs
 * already seen (the ledger's rows, plus jobs it looked at and let go). A new
 * one is confirmed (no newer migration job of its instance; the instance,
 * GET /v1/gpu/instance, still migrating), written to the ledger, and a run of
 * trigger "watch" recovers it: the ledger's open rows without a sync, or a
 * full run when an instance has no snapshot yet. A tick is skipped while a
 * run is active, the scheduler is paused or another replica leads; a tick whose listing failed
 * doubles the wait (up to 16 intervals). The scheduler owns it. */

struct nrd_watch;

/* NULL when cfg->watch_interval_seconds is 0. The first tick is at once.
 * leader false: ticks are skipped until nrd_watch_set_leader(w, true). */
struct nrd_watch *nrd_watch_create(const struct nrd_config *cfg, struct nrd_runner *r, bool leader);
/* Joins the watch's thread; nrd_watch_status stays safe until destroy. */
void nrd_watch_halt(struct nrd_watch *w);    /* NULL is a no-op; idempotent */
void nrd_watch_destroy(struct nrd_watch *w); /* NULL is a no-op */
void nrd_watch_set_paused(struct nrd_watch *w, bool paused);
/* Whether this replica leads (the scheduler's leadership): only a leader's
 * watch ticks. */
void nrd_watch_set_leader(struct nrd_watch *w, bool leader);
/* Adds "watch": {enabled, intervalSeconds, lastTickAt, nextTickAt, ticks,
 * failedJobsSeen, detected, consecutiveFailures, lastError, lastRunId} to o
 * (w may be NULL: enabled false). */
void nrd_watch_status(struct nrd_watch *w, cJSON *o);

#endif
