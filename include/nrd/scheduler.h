#ifndef NRD_SCHEDULER_H
#define NRD_SCHEDULER_H

#include <stdbool.h>

#include "nrd/config.h"
#include "nrd/run.h"

/* Runs check-failed every cfg->migration_interval_minutes (0: never on its
 * own; trigger still works). Scheduled runs and watch ticks happen only on
 * the leader: on PostgreSQL the one replica holding the leadership lock
 * (a follower tries again every third of RECOVERY_LEASE_SECONDS, 1-10 s,
 * and runs at once when it takes over); on SQLite always. A trigger starts
 * (or joins) a run on any replica. Pausing stops scheduled and triggered runs from
 * starting; a run in progress is not interrupted. */

struct nrd_scheduler;

struct nrd_scheduler *nrd_scheduler_create(const struct nrd_config *cfg, struct nrd_runner *r);
/* Joins the scheduler's and the watch's threads; status and the other calls
 * stay safe (a trigger reaches a halted runner, which refuses) until
 * nrd_scheduler_destroy. Idempotent. */
void nrd_scheduler_halt(struct nrd_scheduler *s);
void nrd_scheduler_destroy(struct nrd_scheduler *s);

/* {"enabled","paused","running","intervalMinutes","dryRun","leader",
 *  "leaderSince","lastRunId","lastRunAt","nextRunAt","totalRuns",
 *  "totalTriggered","watch"}; heap JSON, caller frees. */
char *nrd_scheduler_status_json(struct nrd_scheduler *s);
/* Requests a run now (joins one in progress). 0 with run_id set; -1 when
 * paused or stopping. */
int nrd_scheduler_trigger(struct nrd_scheduler *s, char run_id[64]);
void nrd_scheduler_pause(struct nrd_scheduler *s);
void nrd_scheduler_resume(struct nrd_scheduler *s);
bool nrd_scheduler_paused(struct nrd_scheduler *s);

#endif
