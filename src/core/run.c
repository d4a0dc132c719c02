/* One run of check-failed, sequenced: sync -> detect -> recover -> report
 * (DESIGN's run steps, one file each). This file only orders them and says
 * how the run ended. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steps.h"
#include "nrd/log.h"
#include "nrd/util.h"

/* Steps 1 and 2; the watch's run has neither (the watch wrote its rows and
 * stored their snapshots). */
static int find_failed(struct run_ctx *ctx, struct nrd_worker *w, char *msg, size_t msglen)
{
  struct sync_state s = { .ctx = ctx };
  int rc = nrd_sync(ctx, w, &s, msg, msglen);
  if (rc == 0)
    rc = nrd_detect(ctx, w, &s, msg, msglen);
  nrd_sync_free(&s); /* the listings are done with before the rows are worked on */
  return rc;
}

/* Step 3, then the replacements not yet running (one look each). */
static int recover(struct run_ctx *ctx, struct nrd_worker *w, char *msg, size_t msglen)
{
  if (nrd_recover(ctx, w) != 0)
    return -1;
  if (!ctx->dry_run)
    nrd_follow_created(w, ctx);
  nrd_memory_trim(); /* before the report, the run's largest allocation */
  if (ctx->circuit_tripped) {
    snprintf(msg, msglen, "Novita circuit opened during the run; %d rows deferred", ctx->deferred);
    return -1;
  }
  return 0;
}

void nrd_run_execute(struct nrd_runner *r, struct run_ctx *ctx, char **result_json, bool *completed,
                     char **error_message)
{
  struct nrd_worker *w = &r->coord;
  char msg[512] = "", why[300];
  int rc = -1;

  nrd_log_set_run_id(ctx->run_id);
  LOG_INFO("run started", "trigger", nrd_trigger_name(ctx->trigger), "#dryRun",
           NRD_BOOL(ctx->dry_run));
  nrd_novita_conn_set_deadline(w->conn, ctx->deadline_mono_ms);
  /* A store that failed before the run (the run lock could not be asked
   * for) sends Novita nothing, as one that fails at the run's first write. */
  if (ctx->store_failed)
    LOG_DEBUG("run not started: the store is unavailable");
  else if (!nrd_runner_db_file_ok(r, why, sizeof(why)))
    nrd_run_store_failed_msg(ctx, why);
  else if (ctx->watch_only || find_failed(ctx, w, msg, sizeof(msg)) == 0)
    rc = recover(ctx, w, msg, sizeof(msg));

  /* 4. report */
  *completed = rc == 0;
  if (nrd_run_store_reason(ctx, msg, sizeof(msg)))
    *completed = false;
  *result_json = nrd_report_text(ctx);
  *error_message = msg[0] ? nrd_xstrdup(msg) : NULL;
  if (msg[0])
    LOG_WARN("run could not complete", "reason", msg);
  LOG_INFO("run finished", "#totalChecked", NRD_I64(ctx->total_checked), "#failedJobsFound",
           NRD_I64(ctx->failed_found), "#instancesRecreated", NRD_I64(ctx->recreated), "#errors",
           NRD_I64(ctx->errors), "#completed", NRD_BOOL(*completed));
  nrd_log_set_run_id(NULL);
}
