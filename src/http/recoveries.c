/* The recovery ledger for operators: list rows, retry a failed row, abandon
 * a row. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "nrd/json.h"
#include "nrd/run.h"
#include "nrd/util.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define REASON_MAX 1000

static void allowed_states(struct nrd_buf *b)
{
  for (int s = 0; s < NRD_ROW_STATE_COUNT; s++)
    nrd_buf_printf(b, "%s%s", s ? ", " : "", nrd_row_state_name((enum nrd_row_state)s));
}

enum http_handler_rc http_h_list_recoveries(struct http_ctx *c, struct http_reply *out)
{
  char state[32];
  enum nrd_row_state parsed;
  size_t limit = 0;
  int has_state = http_query(c, "state", state, sizeof state);
  struct nrd_ledger_row *rows = NULL;
  size_t n = 0;

  if (has_state < 0 || (has_state > 0 && !nrd_row_state_parse(state, &parsed))) {
    struct nrd_buf allowed;
    nrd_buf_init(&allowed);
    allowed_states(&allowed);
    http_errorf(out, HTTP_E_INVALID_STATE, "unknown state '%s'; allowed: %s",
                has_state > 0 ? state : "?", allowed.data);
    nrd_buf_cleanup(&allowed);
    return HTTP_REPLY;
  }
  if (!http_query_limit(c, LIMIT_DEFAULT, LIMIT_MAX, &limit, out))
    return HTTP_REPLY;
  if (nrd_runner_recoveries(http_runner(c), has_state > 0 ? (int)parsed : -1, limit, &rows, &n) !=
      NRD_OK) {
    http_error(out, HTTP_E_STORE_UNAVAILABLE, NULL, NULL);
    return HTTP_REPLY;
  }
  http_reply_json(out, 200, http_render_recoveries(rows, n));
  nrd_ledger_rows_free(rows, n);
  return HTTP_REPLY;
}

static void render_done(struct http_reply *out, const char *job_id, const char *message)
{
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_puts(&b, "{\"success\":true,\"jobId\":");
  nrd_buf_json_str(&b, job_id);
  nrd_buf_puts(&b, ",\"message\":");
  nrd_buf_json_str(&b, message);
  nrd_buf_puts(&b, "}");
  http_reply_json(out, 200, nrd_buf_steal(&b));
}

static void render_store_rc(struct http_reply *out, int rc, const char *job_id,
                            const char *done_message, const char *what)
{
  if (rc == NRD_OK)
    render_done(out, job_id, done_message);
  else if (rc == NRD_NONE)
    http_errorf(out, HTTP_E_RECOVERY_NOT_FOUND,
                "no recovery for job '%.64s' in a state that allows %s", job_id, what);
  else
    http_error(out, HTTP_E_STORE_UNAVAILABLE, NULL, NULL);
}

/* Runs on the runner's control thread when the write is done. */
static void on_control_done(void *ud, const struct nrd_control_result *res)
{
  struct http_wait_result w = { .rc = res->rc };
  if (res->new_replacement) {
    struct nrd_buf b;
    nrd_buf_init(&b);
    nrd_buf_printf(&b,
                   "A new replacement named '%s' will be created on the next run; the "
                   "replacement that did not start (%s) is left as it is",
                   res->new_name, res->old_id);
    w.detail = nrd_buf_steal(&b);
  }
  http_ctx_finish_wait(ud, &w);
}

static void render_retry(struct http_ctx *c, struct http_reply *out)
{
  if (c->result.detail)
    render_done(out, c->params[0], c->result.detail);
  else
    render_store_rc(out, c->result.rc, c->params[0], "Recovery queued for retry on the next run",
                    "a retry (failed or start_failed)");
}

static void render_abandon(struct http_ctx *c, struct http_reply *out)
{
  render_store_rc(out, c->result.rc, c->params[0], "Recovery abandoned",
                  "abandoning (open or failed)");
}

/* Hands the write to the runner's control thread; the answer is rendered
 * when it is done (the wait protocol). */
static enum http_handler_rc control(struct http_ctx *c, enum nrd_control what, const char *reason,
                                    void (*render)(struct http_ctx *, struct http_reply *),
                                    struct http_reply *out)
{
  c->render = render;
  http_ctx_ref(c); /* held by on_control_done */
  if (nrd_runner_control(http_runner(c), what, c->params[0], reason, on_control_done, c) != 0) {
    http_ctx_unref(c);
    http_error(out, HTTP_E_SHUTTING_DOWN, NULL, NULL);
    return HTTP_REPLY;
  }
  return HTTP_WAIT;
}

enum http_handler_rc http_h_retry_recovery(struct http_ctx *c, struct http_reply *out)
{
  if (http_body_fields(c->json, NULL, 0, out) != 0)
    return HTTP_REPLY;
  return control(c, NRD_CONTROL_RETRY, NULL, render_retry, out);
}

enum http_handler_rc http_h_abandon_recovery(struct http_ctx *c, struct http_reply *out)
{
  static const struct http_field fields[] = { { "reason", HTTP_FIELD_STRING } };
  const char *reason;

  if (http_body_fields(c->json, fields, 1, out) != 0)
    return HTTP_REPLY;
  reason = nrd_json_str_nonempty(c->json, "reason");
  if (reason && strlen(reason) > REASON_MAX) {
    http_errorf(out, HTTP_E_INVALID_FIELD, "field 'reason' must be at most %d characters",
                REASON_MAX);
    return HTTP_REPLY;
  }
  return control(c, NRD_CONTROL_ABANDON, reason ? reason : "abandoned by an operator",
                 render_abandon, out);
}
