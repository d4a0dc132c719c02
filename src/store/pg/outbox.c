/* The webhook outbox on PostgreSQL: events written beside the state change
 * that caused them, delivered in seq order by one sender at a time. */

#include "pg_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/util.h"

/* Columns in PG_EVENT_COLS order. */
static bool read_event(const PGresult *r, int i, void *event)
{
  memset(event, 0, sizeof(struct nrd_event));
  pg_shape_row(r, i, &store_event_shape, event);
  return true;
}

int pg_write_with_event(struct nrd_pg *pg, const char *sql, const struct pg_params *p,
                        const char *what, const struct nrd_event *event)
{
  int rc = pg_write(pg, sql, p, what, NULL);
  if (rc != NRD_OK || !event)
    return rc;
  rc = pg_event_insert(pg, event);
  /* An event already in the outbox (same id) is not a failure: at least once. */
  return rc == NRD_NONE ? NRD_OK : rc;
}

struct write_event_ctx {
  const char *sql;
  const struct pg_params *p;
  const char *what;
  const struct nrd_event *event;
};

static int write_event_fn(struct nrd_pg *pg, void *arg)
{
  const struct write_event_ctx *c = arg;
  return pg_write_with_event(pg, c->sql, c->p, c->what, c->event);
}

int pg_tx_write_with_event(struct nrd_pg *pg, const char *sql, const struct pg_params *p,
                           const char *what, const struct nrd_event *event)
{
  struct write_event_ctx c = { sql, p, what, event };
  return pg_tx(pg, write_event_fn, &c);
}

int pg_event_insert(struct nrd_pg *pg, const struct nrd_event *e)
{
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_TEXT(e->id), PG_TEXT(e->type), PG_TEXT(e->body_json), PG_I64(e->created_ms),
            PG_TEXT_OPT(e->state), PG_I64(e->attempts), PG_I64(e->next_attempt_ms),
            PG_TEXT(e->last_error));
  return pg_write(pg,
                  "INSERT INTO events (id, type, body_json, created_ms, state, attempts,"
                  " next_attempt_ms, last_error) VALUES ($1, $2, $3, $4,"
                  " coalesce($5, 'pending'), $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                  &p, "event insert", NULL);
}

int nrd_pg_event_insert(struct nrd_pg *pg, const struct nrd_event *e)
{
  return pg_event_insert(pg, e);
}

int nrd_pg_event_next(struct nrd_pg *pg, struct nrd_event *out)
{
  memset(out, 0, sizeof *out);
  struct pg_params p = { 0 };
  pgp_text(&p, pg->identity);
  pgp_i64(&p, pg->outbox_lease_ms);
  /* The head of the queue only (FOR UPDATE without SKIP LOCKED: skipping
   * it would send the next one first), and only when no other sender holds
   * it. */
  return pg_one_row(pg,
                    "WITH head AS (SELECT seq FROM events WHERE state = 'pending'"
                    " ORDER BY seq LIMIT 1 FOR UPDATE)"
                    " UPDATE events e SET claimed_by = $1,"
                    " claim_until_ms = nrd_now_ms() + $2::bigint FROM head"
                    " WHERE e.seq = head.seq AND (e.claimed_by IS NULL OR e.claimed_by = $1"
                    " OR e.claim_until_ms < nrd_now_ms())"
                    " RETURNING e.id, e.type, e.body_json, e.created_ms, e.state,"
                    " e.attempts, e.next_attempt_ms, e.last_error, e.seq",
                    &p, "event next", read_event, out);
}

int nrd_pg_event_mark(struct nrd_pg *pg, const char *id, const char *state, int attempts,
                      int64_t next_attempt_ms, const char *last_error)
{
  struct pg_params p = { 0 };
  PG_PARAMS(&p, PG_TEXT(id), PG_TEXT(state), PG_I64(attempts), PG_I64(next_attempt_ms),
            PG_TEXT(last_error), PG_TEXT(pg->identity));
  return pg_write(pg,
                  "UPDATE events SET state = $2, attempts = $3, next_attempt_ms = $4,"
                  " last_error = $5, claimed_by = NULL, claim_until_ms = 0 WHERE id = $1"
                  " AND (claimed_by IS NULL OR claimed_by = $6 OR claim_until_ms < nrd_now_ms())",
                  &p, "event mark", NULL);
}

int nrd_pg_event_list(struct nrd_pg *pg, const char *since_id, size_t limit, struct nrd_event **out,
                      size_t *n)
{
  *out = NULL;
  *n = 0;
  struct pg_params p = { 0 };
  pgp_text(&p, since_id);
  pgp_i64(&p, limit > (size_t)INT64_MAX ? INT64_MAX : (int64_t)limit);
  struct pg_rows rows = { .elem = sizeof **out };
  int rc = pg_read_rows(pg,
                        "SELECT " PG_EVENT_COLS " FROM events"
                        " WHERE seq > coalesce((SELECT seq FROM events WHERE id = $1), 0)"
                        " ORDER BY seq LIMIT $2",
                        &p, "event list", read_event, &rows);
  *out = rows.arr; /* read_event refuses no row */
  *n = rows.n;
  return rc;
}

int nrd_pg_event_count_by_state(struct nrd_pg *pg, int64_t *pending, int64_t *delivered,
                                int64_t *dead)
{
  *pending = *delivered = *dead = 0;
  int rc;
  PGresult *r =
      pg_exec(pg, "SELECT state, count(*) FROM events GROUP BY state", NULL, &rc, "event count");
  if (!r)
    return rc;
  for (int i = 0; i < PQntuples(r); i++) {
    const char *state = PQgetvalue(r, i, 0);
    int64_t c = pg_col_i64(r, i, 1);
    if (strcmp(state, "pending") == 0)
      *pending = c;
    else if (strcmp(state, "delivered") == 0)
      *delivered = c;
    else if (strcmp(state, "dead") == 0)
      *dead = c;
  }
  PQclear(r);
  return NRD_OK;
}
