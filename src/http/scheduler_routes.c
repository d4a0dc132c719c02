/* The scheduler endpoints. Without a scheduler in this process they answer
 * 503 SCHEDULER_DISABLED. */

#include <stdio.h>

#include "http_internal.h"
#include "nrd/scheduler.h"
#include "nrd/util.h"

/* NULL (with out filled) when the scheduler is off or the body has fields. */
static struct nrd_scheduler *scheduler_for(struct http_ctx *c, struct http_reply *out)
{
  struct nrd_scheduler *s = http_scheduler(c);

  if (!s) {
    http_error(out, HTTP_E_SCHEDULER_DISABLED, NULL, NULL);
    return NULL;
  }
  if (http_body_fields(c->json, NULL, 0, out) != 0)
    return NULL;
  return s;
}

enum http_handler_rc http_h_scheduler_status(struct http_ctx *c, struct http_reply *out)
{
  struct nrd_scheduler *s = scheduler_for(c, out);
  char *json;

  if (!s)
    return HTTP_REPLY;
  json = nrd_scheduler_status_json(s);
  if (json)
    http_reply_json(out, 200, json);
  else
    http_error(out, HTTP_E_INTERNAL, NULL, NULL);
  return HTTP_REPLY;
}

enum http_handler_rc http_h_scheduler_trigger(struct http_ctx *c, struct http_reply *out)
{
  struct nrd_scheduler *s = scheduler_for(c, out);
  char run_id[64];
  struct nrd_buf b;

  if (!s)
    return HTTP_REPLY;
  if (nrd_scheduler_trigger(s, run_id) != 0) {
    http_error(out, nrd_scheduler_paused(s) ? HTTP_E_SCHEDULER_PAUSED : HTTP_E_SHUTTING_DOWN, NULL,
               NULL);
    return HTTP_REPLY;
  }
  http_run_accepted(&b, "Failed migration check triggered", run_id);
  nrd_buf_puts(&b, "}");
  http_reply_json(out, 202, nrd_buf_steal(&b));
  return HTTP_REPLY;
}

/* Pauses or resumes the scheduler and answers with its new state. */
static enum http_handler_rc set_paused(struct http_ctx *c, struct http_reply *out, bool paused)
{
  struct nrd_scheduler *s = scheduler_for(c, out);
  char body[64];

  if (!s)
    return HTTP_REPLY;
  if (paused)
    nrd_scheduler_pause(s);
  else
    nrd_scheduler_resume(s);
  snprintf(body, sizeof body, "{\"success\":true,\"paused\":%s}", paused ? "true" : "false");
  http_reply_json(out, 200, nrd_xstrdup(body));
  return HTTP_REPLY;
}

enum http_handler_rc http_h_scheduler_pause(struct http_ctx *c, struct http_reply *out)
{
  return set_paused(c, out, true);
}

enum http_handler_rc http_h_scheduler_resume(struct http_ctx *c, struct http_reply *out)
{
  return set_paused(c, out, false);
}
