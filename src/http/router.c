/* The route table and its matcher. The dispatcher (server.c) answers 404 or
 * 405 (+ Allow) from what http_route_find says, in one place. */

#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "nrd/metrics.h"
#include "nrd/util.h"

#define API "/api/instances/migration"

static const struct http_route routes[] = {
  { "POST", API "/check-failed", http_h_check_failed, "check_failed", true },
  { "GET", API "/runs/{runId}", http_h_get_run, "get_run", false },
  { "GET", API "/recoveries", http_h_list_recoveries, "list_recoveries", false },
  { "POST", API "/recoveries/{jobId}/retry", http_h_retry_recovery, "retry_recovery", true },
  { "POST", API "/recoveries/{jobId}/abandon", http_h_abandon_recovery, "abandon_recovery", true },
  { "GET", API "/scheduler/status", http_h_scheduler_status, "scheduler_status", false },
  { "POST", API "/scheduler/trigger", http_h_scheduler_trigger, "scheduler_trigger", true },
  { "POST", API "/scheduler/pause", http_h_scheduler_pause, "scheduler_pause", true },
  { "POST", API "/scheduler/resume", http_h_scheduler_resume, "scheduler_resume", true },
  { "GET", API "/events", http_h_list_events, "list_events", false },
  { "GET", "/health", http_h_health, "health", false },
  { "GET", "/ready", http_h_ready, "ready", false },
  { "GET", "/metrics", http_h_metrics, "metrics", false },
  { "GET", API "/runs", http_h_list_runs, "list_runs", false },
  { "GET", API "/overview", http_h_overview, "overview", false },
  { "GET", API "/stats/hourly", http_h_stats_hourly, "stats_hourly", false },
  { "GET", "/", http_h_ui_index, "ui", false },
  { "GET", "/ui", http_h_ui_index, "ui", false },
  { "GET", "/ui/", http_h_ui_index, "ui", false },
  { "GET", "/ui/{file}", http_h_ui_file, "ui", false },
  { "GET", "/openapi.yaml", http_h_openapi, "openapi", false },
};

void http_routes_declare_metrics(void)
{
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    nrd_metrics_http_route(routes[i].name);
  nrd_metrics_http_route("unmatched");
}

/* HEAD is answered wherever GET is (without the body: MHD leaves it out). */
static bool method_matches(const char *route_method, const char *method)
{
  return strcmp(route_method, method) == 0 ||
         (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

static bool path_char_ok(char ch)
{
  return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
         ch == '.' || ch == '_' || ch == '~' || ch == '-' || ch == '/';
}

bool http_path_ok(const char *path)
{
  size_t len;

  if (!path || path[0] != '/')
    return false;
  len = strlen(path);
  if (len > HTTP_MAX_PATH)
    return false;
  for (size_t i = 0; i < len; i++) {
    if (!path_char_ok(path[i]))
      return false;
  }
  return !strstr(path, "..") && !strstr(path, "//");
}

/* Length of the segment starting at s (up to '/' or the end). */
static size_t seg_len(const char *s)
{
  return strcspn(s, "/");
}

/* Matches path against pattern segment by segment; on success fills params
 * (heap copies) when params is not NULL. */
static bool pattern_match(const char *pattern, const char *path, char *params[HTTP_MAX_PARAMS])
{
  const char *p = pattern, *q = path;
  size_t np = 0;

  for (;;) {
    if (*p != '/' || *q != '/')
      return false;
    p++;
    q++;
    size_t pl = seg_len(p), ql = seg_len(q);
    if (pl > 1 && p[0] == '{' && p[pl - 1] == '}') {
      if (ql == 0 || np >= HTTP_MAX_PARAMS)
        return false;
      if (params)
        params[np] = nrd_xstrndup(q, ql);
      np++;
    } else if (pl != ql || memcmp(p, q, pl) != 0) {
      return false;
    }
    p += pl;
    q += ql;
    if (*p == '\0' && *q == '\0')
      return true;
    if (*p == '\0' || *q == '\0')
      return false;
  }
}

enum http_match http_route_find(const char *method, const char *path,
                                const struct http_route **route, char *params[HTTP_MAX_PARAMS],
                                char *allow, size_t allowlen)
{
  bool path_known = false;
  size_t used = 0;

  for (size_t i = 0; i < HTTP_MAX_PARAMS; i++)
    params[i] = NULL;
  *route = NULL;
  if (allowlen > 0)
    allow[0] = '\0';
  if (!http_path_ok(path))
    return HTTP_MATCH_NOT_FOUND;

  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
    const struct http_route *rt = &routes[i];
    /* Both start with '/': a first segment that differs in its first byte
     * (and is no {param}) rules the route out without a closer look. */
    if (rt->pattern[1] != path[1] && rt->pattern[1] != '{')
      continue;
    /* A pattern without parameters is its one path: a strcmp decides. */
    bool literal = !strchr(rt->pattern, '{');
    if (literal ? strcmp(rt->pattern, path) != 0 : !pattern_match(rt->pattern, path, NULL))
      continue;
    if (method_matches(rt->method, method)) {
      pattern_match(rt->pattern, path, params);
      *route = rt;
      return HTTP_MATCH_OK;
    }
    path_known = true;
    if (used < allowlen) {
      int n = snprintf(allow + used, allowlen - used, "%s%s%s", used ? ", " : "", rt->method,
                       strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
      if (n > 0)
        used += (size_t)n;
    }
  }
  return path_known ? HTTP_MATCH_BAD_METHOD : HTTP_MATCH_NOT_FOUND;
}
