/* GET /api/instances/migration/runs/{runId}: one run's record. */

#include "http_internal.h"
#include "nrd/run.h"

enum http_handler_rc http_h_get_run(struct http_ctx *c, struct http_reply *out)
{
  struct nrd_run_record rec = { 0 };
  int rc = nrd_runner_run_record(http_runner(c), c->params[0], &rec);

  if (rc == NRD_OK)
    http_reply_json(out, 200, http_render_run(&rec));
  else if (rc == NRD_NONE)
    http_errorf(out, HTTP_E_RUN_NOT_FOUND, "no run with id '%.64s'", c->params[0]);
  else
    http_error(out, HTTP_E_STORE_UNAVAILABLE, NULL, NULL);
  if (rc == NRD_OK)
    nrd_run_record_cleanup(&rec);
  return HTTP_REPLY;
}
