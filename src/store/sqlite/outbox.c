/* The webhook outbox: events written beside the state change that caused
 * them, delivered in seq order. */

#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

/* Columns in STORE_EVENT_COLS order. */
static bool read_event(sqlite3_stmt *s, void *event)
{
  return store_shape_row(s, &store_event_shape, event);
}

static bool read_event_into(sqlite3_stmt *s, void *rows)
{
  return read_event(s, store_rows_next(rows));
}

/* Binds e to the insert statement; false on a binding failure. */
static bool bind_event(sqlite3_stmt *s, const struct nrd_event *e)
{
  return store_bind_text(s, ":id", e->id) && store_bind_text(s, ":type", e->type) &&
         store_bind_text(s, ":body", e->body_json) &&
         store_bind_i64(s, ":created", e->created_ms) &&
         store_bind_text_opt(s, ":state", e->state) &&
         store_bind_i64(s, ":attempts", e->attempts) &&
         store_bind_i64(s, ":next_attempt", e->next_attempt_ms) &&
         store_bind_text(s, ":error", e->last_error);
}

int store_event_insert_in_tx(struct nrd_sqlite *st, const struct nrd_event *e)
{
  sqlite3_stmt *s = store_stmt(st, STMT_EVENT_INSERT);
  return store_step_bound(st, s, s && bind_event(s, e), "event insert", NULL);
}

int nrd_sqlite_event_insert(struct nrd_sqlite *st, const struct nrd_event *e)
{
  sqlite3_stmt *s = store_stmt(st, STMT_EVENT_INSERT);
  return store_write_bound(st, s, s && bind_event(s, e), "event insert", NULL);
}

int nrd_sqlite_event_next(struct nrd_sqlite *st, struct nrd_event *out)
{
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = store_stmt(st, STMT_EVENT_NEXT);
  return store_one_row(st, s, s != NULL, "event next", read_event, out);
}

int nrd_sqlite_event_mark(struct nrd_sqlite *st, const char *id, const char *state, int attempts,
                          int64_t next_attempt_ms, const char *last_error)
{
  sqlite3_stmt *s = store_stmt(st, STMT_EVENT_MARK);
  bool bound = s && store_bind_text(s, ":id", id) && store_bind_text(s, ":state", state) &&
               store_bind_i64(s, ":attempts", attempts) &&
               store_bind_i64(s, ":next_attempt", next_attempt_ms) &&
               store_bind_text(s, ":error", last_error);
  return store_write_bound(st, s, bound, "event mark", NULL);
}

int nrd_sqlite_event_list(struct nrd_sqlite *st, const char *since_id, size_t limit,
                          struct nrd_event **out, size_t *n)
{
  *out = NULL;
  *n = 0;
  sqlite3_stmt *s = store_stmt(st, STMT_EVENT_LIST);
  struct store_rows r = { .elem = sizeof **out };
  int64_t lim = limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit;
  bool bound = s && store_bind_text(s, ":since", since_id) && store_bind_i64(s, ":limit", lim);
  int rc = store_each_row(st, s, bound, "event list", read_event_into, &r);
  if (rc != NRD_OK) {
    nrd_events_free(r.arr, r.len);
    return rc;
  }
  *out = r.arr;
  *n = r.len;
  return NRD_OK;
}
