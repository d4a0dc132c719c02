/* The error catalogue: one stable code, HTTP status and default message per
 * error, and the one renderer of the error shape. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "http_internal.h"
#include "nrd/util.h"

struct http_err_info {
  const char *code;
  unsigned status;
  const char *message;
};

static const struct http_err_info catalogue[HTTP_E_COUNT] = {
  [HTTP_E_NOT_FOUND] = { "NOT_FOUND", 404, "no such resource" },
  [HTTP_E_METHOD_NOT_ALLOWED] = { "METHOD_NOT_ALLOWED", 405,
                                  "method not allowed on this path; see the Allow header" },
  [HTTP_E_PAYLOAD_TOO_LARGE] = { "PAYLOAD_TOO_LARGE", 413, "request body too large" },
  [HTTP_E_UNSUPPORTED_MEDIA_TYPE] = { "UNSUPPORTED_MEDIA_TYPE", 415,
                                      "send the body as application/json" },
  [HTTP_E_INVALID_JSON] = { "INVALID_JSON", 400, "request body is not valid JSON" },
  [HTTP_E_INVALID_BODY] = { "INVALID_BODY", 400, "request body must be a JSON object" },
  [HTTP_E_UNKNOWN_FIELD] = { "UNKNOWN_FIELD", 400, "unknown field in request body" },
  [HTTP_E_INVALID_FIELD] = { "INVALID_FIELD", 400, "a field has the wrong type" },
  [HTTP_E_INVALID_QUERY] = { "INVALID_QUERY", 400, "a query parameter is not valid" },
  [HTTP_E_INVALID_STATE] = { "INVALID_STATE", 400, "unknown state" },
  [HTTP_E_INVALID_LIMIT] = { "INVALID_LIMIT", 400, "limit must be an integer 1-1000" },
  [HTTP_E_UNAUTHORIZED] = { "UNAUTHORIZED", 401,
                            "missing or invalid bearer token (Authorization: Bearer <token>)" },
  [HTTP_E_RUN_NOT_FOUND] = { "RUN_NOT_FOUND", 404, "no run with that id" },
  [HTTP_E_RECOVERY_NOT_FOUND] = { "RECOVERY_NOT_FOUND", 404,
                                  "no recovery for that job id in a state that allows this" },
  [HTTP_E_SCHEDULER_PAUSED] = { "SCHEDULER_PAUSED", 409,
                                "the scheduler is paused; resume it first" },
  [HTTP_E_SCHEDULER_DISABLED] = { "SCHEDULER_DISABLED", 503,
                                  "the scheduler is not running in this process" },
  [HTTP_E_NOT_READY] = { "NOT_READY", 503, "the database does not answer" },
  [HTTP_E_SHUTTING_DOWN] = { "SHUTTING_DOWN", 503, "the service is shutting down" },
  [HTTP_E_NOVITA_UNAVAILABLE] = { "NOVITA_UNAVAILABLE", 502, "the run could not complete" },
  [HTTP_E_DUPLICATE_FIELD] = { "DUPLICATE_FIELD", 400,
                               "a member appears more than once in the request body" },
  [HTTP_E_STORE_UNAVAILABLE] = { "STORE_UNAVAILABLE", 503,
                                 "the service's database cannot be read or written" },
  [HTTP_E_BAD_FRAMING] = { "BAD_FRAMING", 400,
                           "the request's length is ambiguous; the connection is closed" },
  [HTTP_E_LENGTH_REQUIRED] = { "LENGTH_REQUIRED", 411,
                               "an HTTP/1.0 request with a body needs Content-Length" },
  [HTTP_E_NOT_IMPLEMENTED] = { "NOT_IMPLEMENTED", 501,
                               "only the chunked Transfer-Encoding is supported" },
  [HTTP_E_INTERNAL] = { "INTERNAL", 500, "internal error; see the service log" },
};

static const struct http_err_info *info(enum http_err e)
{
  if ((unsigned)e >= HTTP_E_COUNT)
    e = HTTP_E_INTERNAL;
  return &catalogue[e];
}

const char *http_err_code(enum http_err e)
{
  return info(e)->code;
}

unsigned http_err_status(enum http_err e)
{
  return info(e)->status;
}

void http_reply_cleanup(struct http_reply *r)
{
  free(r->body);
  r->body = NULL;
}

void http_reply_json(struct http_reply *r, unsigned status, char *body)
{
  free(r->body);
  r->status = status;
  r->body = body;
  r->content_type = NULL;
}

void http_error(struct http_reply *r, enum http_err e, const char *message, const char *result_json)
{
  const struct http_err_info *in = info(e);
  struct nrd_buf b;

  nrd_buf_init(&b);
  nrd_buf_puts(&b, "{\"success\":false,\"error\":{\"code\":");
  nrd_buf_json_str(&b, in->code);
  nrd_buf_puts(&b, ",\"message\":");
  nrd_buf_json_str(&b, message ? message : in->message);
  nrd_buf_puts(&b, "}");
  if (result_json) {
    nrd_buf_puts(&b, ",\"result\":");
    nrd_buf_puts(&b, result_json);
  }
  nrd_buf_puts(&b, "}");
  http_reply_json(r, in->status, nrd_buf_steal(&b));
}

void http_errorf(struct http_reply *r, enum http_err e, const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  http_error(r, e, msg, NULL);
}
