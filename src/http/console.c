/* The operator console's read-only endpoints: recent runs, an overview
 * (ledger rows by state, brake, breaker, webhook backlog) and finished
 * recoveries per hour. */

#include <stdlib.h>

#include "http_internal.h"
#include "nrd/run.h"
#include "nrd/store.h"
#include "nrd/util.h"

#define RUNS_LIMIT_DEFAULT 20
#define RUNS_LIMIT_MAX 1000
#define DAYS_DEFAULT 7
#define DAYS_MAX 30

/* Answers 200 with json, or 503 STORE_UNAVAILABLE when the query failed. */
static enum http_handler_rc reply_query(int rc, char *json, struct http_reply *out)
{
  if (rc == NRD_OK && json) {
    http_reply_json(out, 200, json);
  } else {
    free(json);
    http_error(out, HTTP_E_STORE_UNAVAILABLE, NULL, NULL);
  }
  return HTTP_REPLY;
}

/* An integer query parameter in [min, max], *v untouched when absent; false
 * (with 400 INVALID_QUERY in out) when present but not such a number. */
static bool query_int(struct http_ctx *c, const char *key, int64_t min, int64_t max,
                      int64_t *v, struct http_reply *out)
{
  char text[32];
  int has = http_query(c, key, text, sizeof text);

  if (has == 0 || (has > 0 && nrd_parse_i64(text, min, max, v)))
    return true;
  http_errorf(out, HTTP_E_INVALID_QUERY, "%s must be an integer from %lld to %lld", key,
              (long long)min, (long long)max);
  return false;
}

enum http_handler_rc http_h_list_runs(struct http_ctx *c, struct http_reply *out)
{
  size_t limit = 0;
  char *json = NULL;

  if (!http_query_limit(c, RUNS_LIMIT_DEFAULT, RUNS_LIMIT_MAX, &limit, out))
    return HTTP_REPLY;
  int rc = nrd_runner_list_runs(http_runner(c), limit, &json);
  return reply_query(rc, json, out);
}

enum http_handler_rc http_h_overview(struct http_ctx *c, struct http_reply *out)
{
  char *json = NULL;
  int rc = nrd_runner_overview(http_runner(c), &json);
  return reply_query(rc, json, out);
}

enum http_handler_rc http_h_stats_hourly(struct http_ctx *c, struct http_reply *out)
{
  int64_t days = DAYS_DEFAULT;
  char *json = NULL;

  if (!query_int(c, "days", 1, DAYS_MAX, &days, out))
    return HTTP_REPLY;
  int rc = nrd_runner_hourly_stats(http_runner(c), (int)days * 24, &json);
  return reply_query(rc, json, out);
}
