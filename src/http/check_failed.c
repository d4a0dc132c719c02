/* POST /api/instances/migration/check-failed: start (or join) a run in the
 * background (202), or wait for its report (immediate: 200, 502 when Novita
 * kept the run from completing, 503 STORE_UNAVAILABLE when our database
 * could not be written). */

#include <stdlib.h>

#include "http_internal.h"
#include "nrd/json.h"
#include "nrd/run.h"
#include "nrd/util.h"

static const struct http_field fields[] = {
  { "immediate", HTTP_FIELD_BOOL },
  { "dryRun", HTTP_FIELD_BOOL },
};

/* Runs on the coordinator thread when the joined run ends. */
static void on_run_done(void *ud, const struct nrd_run_result *res)
{
  struct http_wait_result w = {
    .completed = res->completed,
    .store_failed = res->store_failed,
    .error_message = nrd_xstrdup(res->error_message),
    .result_json = nrd_xstrdup(res->result_json),
  };
  http_ctx_finish_wait(ud, &w);
}

static void render_report(struct http_ctx *c, struct http_reply *out)
{
  const struct http_wait_result *w = &c->result;
  const char *result = w->result_json ? w->result_json : "{}";
  char at[32];
  struct nrd_buf b;

  if (!w->completed && w->store_failed) {
    http_error(out, HTTP_E_STORE_UNAVAILABLE,
               w->error_message ? w->error_message : "store unavailable", result);
    return;
  }
  if (!w->completed) {
    http_error(out, HTTP_E_NOVITA_UNAVAILABLE,
               w->error_message ? w->error_message : "the run could not complete", result);
    return;
  }
  nrd_iso8601(nrd_now_ms(), at);
  nrd_buf_init(&b);
  nrd_buf_puts(&b, "{\"success\":true,\"message\":\"Failed migration check completed\","
                   "\"result\":");
  nrd_buf_puts(&b, result);
  nrd_buf_puts(&b, ",\"executedAt\":");
  nrd_buf_json_str(&b, at);
  nrd_buf_printf(&b, ",\"duration\":%lld}", (long long)http_elapsed_ms(c));
  http_reply_json(out, 200, nrd_buf_steal(&b));
}

void http_run_accepted(struct nrd_buf *b, const char *message, const char *run_id)
{
  nrd_buf_init(b);
  nrd_buf_puts(b, "{\"success\":true,\"message\":");
  nrd_buf_json_str(b, message);
  nrd_buf_puts(b, ",\"jobId\":");
  nrd_buf_json_str(b, run_id);
  nrd_buf_puts(b, ",\"runId\":");
  nrd_buf_json_str(b, run_id);
}

static void render_scheduled(struct http_ctx *c, const char *run_id, struct http_reply *out)
{
  char at[32];
  struct nrd_buf b;

  nrd_iso8601(nrd_now_ms(), at);
  http_run_accepted(&b, "Failed migration check job scheduled successfully", run_id);
  nrd_buf_puts(&b, ",\"scheduledAt\":");
  nrd_buf_json_str(&b, at);
  nrd_buf_printf(&b, ",\"duration\":%lld}", (long long)http_elapsed_ms(c));
  http_reply_json(out, 202, nrd_buf_steal(&b));
}

enum http_handler_rc http_h_check_failed(struct http_ctx *c, struct http_reply *out)
{
  bool immediate = false, dry = false;
  char run_id[64];

  if (http_body_fields(c->json, fields, sizeof fields / sizeof fields[0], out) != 0)
    return HTTP_REPLY;
  nrd_json_bool(c->json, "immediate", &immediate);
  nrd_json_bool(c->json, "dryRun", &dry);
  dry = dry || http_cfg(c)->migration_dry_run;

  if (!immediate) {
    if (nrd_runner_request(http_runner(c), NRD_TRIGGER_API, dry, NULL, NULL, run_id) != 0) {
      http_error(out, HTTP_E_SHUTTING_DOWN, NULL, NULL);
      return HTTP_REPLY;
    }
    render_scheduled(c, run_id, out);
    return HTTP_REPLY;
  }

  c->render = render_report;
  http_ctx_ref(c); /* held by on_run_done */
  if (nrd_runner_request(http_runner(c), NRD_TRIGGER_API, dry, on_run_done, c, run_id) != 0) {
    http_ctx_unref(c);
    http_error(out, HTTP_E_SHUTTING_DOWN, NULL, NULL);
    return HTTP_REPLY;
  }
  return HTTP_WAIT;
}
