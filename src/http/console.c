/* The operator console's read-only endpoints: recent runs, an overview
 * (ledger rows by state, brake, breaker, webhook backlog) and finished
 * recoveries per hour. */

#include <stdlib.h>

#include "http_internal.h"
#include "nrd/run.h"
#include "nrd/util.h"

#define RUNS_LIMIT_DEFAULT 20
#define RUNS_LIMIT_MAX 1000
#define DAYS_DEFAULT 7
#define DAYS_MAX 30

/* Answers 200 with json (rendered when the query went through), or 503
 * STORE_UNAVAILABLE when it failed. */
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
static bool query_int(struct http_ctx *c, const char *key, int64_t min, int64_t max, int64_t *v,
                      struct http_reply *out)
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
  struct nrd_run_summary *runs = NULL;
  size_t n = 0;
  char *json = NULL;

  if (!http_query_limit(c, RUNS_LIMIT_DEFAULT, RUNS_LIMIT_MAX, &limit, out))
    return HTTP_REPLY;
  int rc = nrd_runner_run_summaries(http_runner(c), limit, &runs, &n);
  if (rc == NRD_OK) {
    json = http_render_run_summaries(runs, n);
    nrd_run_summaries_free(runs, n);
  }
  return reply_query(rc, json, out);
}

enum http_handler_rc http_h_overview(struct http_ctx *c, struct http_reply *out)
{
  struct nrd_overview ov;
  int rc = nrd_runner_overview(http_runner(c), &ov);
  return reply_query(rc, rc == NRD_OK ? http_render_overview(&ov) : NULL, out);
}

enum http_handler_rc http_h_stats_hourly(struct http_ctx *c, struct http_reply *out)
{
  int64_t days = DAYS_DEFAULT, from_ms, to_ms;
  struct nrd_hourly_bucket *b = NULL;
  size_t n = 0;
  char *json = NULL;

  if (!query_int(c, "days", 1, DAYS_MAX, &days, out))
    return HTTP_REPLY;
  int rc = nrd_runner_hourly(http_runner(c), (int)days * 24, &from_ms, &to_ms, &b, &n);
  if (rc == NRD_OK) {
    json = http_render_hourly((int)days * 24, from_ms, to_ms, b, n);
    nrd_hourly_buckets_free(b, n);
  }
  return reply_query(rc, json, out);
}
