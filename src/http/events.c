/* GET /api/instances/migration/events?since=<eventId>&limit=: the outbox,
 * oldest first, for a backend that polls instead of taking webhooks. */

#include <stdlib.h>

#include "http_internal.h"
#include "nrd/run.h"
#include "nrd/util.h"

#define LIMIT_DEFAULT 100
#define LIMIT_MAX 1000
#define SINCE_MAX 64

enum http_handler_rc http_h_list_events(struct http_ctx *c, struct http_reply *out)
{
  char since[SINCE_MAX + 1];
  size_t limit = 0;
  int has_since = http_query(c, "since", since, sizeof since);
  struct nrd_event *ev = NULL;
  size_t n = 0;

  if (has_since < 0) {
    http_errorf(out, HTTP_E_INVALID_QUERY, "since must be an event id of at most %d characters",
                SINCE_MAX);
    return HTTP_REPLY;
  }
  if (!http_query_limit(c, LIMIT_DEFAULT, LIMIT_MAX, &limit, out))
    return HTTP_REPLY;
  if (nrd_runner_events(http_runner(c), has_since > 0 ? since : NULL, limit, &ev, &n) != NRD_OK) {
    http_error(out, HTTP_E_STORE_UNAVAILABLE, NULL, NULL);
    return HTTP_REPLY;
  }
  http_reply_json(out, 200, http_render_events(ev, n));
  nrd_events_free(ev, n);
  return HTTP_REPLY;
}
