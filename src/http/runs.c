/* GET /api/instances/migration/runs/{runId}: one run's record. */

#include "http_internal.h"
#include "nrd/run.h"
#include "nrd/store.h"

enum http_handler_rc http_h_get_run(struct http_ctx *c, struct http_reply *out)
{
  char *json = NULL;
  int rc = nrd_runner_get_run(http_runner(c), c->params[0], &json);

  if (rc == NRD_OK && json)
    http_reply_json(out, 200, json);
  else if (rc == NRD_NONE)
    http_errorf(out, HTTP_E_RUN_NOT_FOUND, "no run with id '%.64s'", c->params[0]);
  else
    http_error(out, HTTP_E_STORE_UNAVAILABLE, NULL, NULL);
  return HTTP_REPLY;
}
