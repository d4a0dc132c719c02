#ifndef NRD_PG_INTERNAL_H
#define NRD_PG_INTERNAL_H

/* Shared by the files of src/store/pg only: the connection, parameters,
 * the query and transaction runners. Nothing outside sees libpq-fe.h. */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nrd/migrations.h"
#include "nrd/store_pg.h"
#include "store_codec.h"

/* Embedded from migrations/pg/ by cmake/embed_migrations.cmake. */
extern const struct nrd_migration nrd_pg_migrations[];
extern const unsigned nrd_pg_migrations_count;

/* The first key of our advisory locks (two-key form): leadership names and
 * the migrations lock, apart from any other application's. */
#define PG_LOCK_LEADER 0x4e5244 /* "NRD" */
#define PG_LOCK_MIGRATE 0x4e5245
#define PG_LEADERS_MAX 8
#define PG_IDENTITY_MAX 64

struct nrd_pg {
  PGconn *conn;
  char identity[PG_IDENTITY_MAX];
  int64_t outbox_lease_ms;
  bool in_tx;
  bool claim_held;               /* a claim's transaction left open (ledger.c) */
  int64_t held_lease_ms;         /* its lease */
  int64_t held_since_ms;         /* when it was claimed (monotonic) */
  char *leaders[PG_LEADERS_MAX]; /* leadership names held by this session */
  char last_error[256];          /* PostgreSQL's message of the last failure */
  /* After a failed reconnect: no new try before retry_at (monotonic ms);
   * the wait doubles with each failure (PG_RETRY_MIN_MS..PG_RETRY_MAX_MS). */
  int64_t retry_at_ms, retry_wait_ms;
  unsigned reconnect_tries;
};

/* Parameters of one query, as text (libpq's text format). */
#define PG_PARAMS_MAX 32
struct pg_params {
  int n;
  const char *v[PG_PARAMS_MAX];
  char num[PG_PARAMS_MAX][24];
};
void pgp_text(struct pg_params *p, const char *v);     /* NULL: SQL NULL */
void pgp_text_opt(struct pg_params *p, const char *v); /* NULL or "": SQL NULL */
void pgp_i64(struct pg_params *p, int64_t v);
void pgp_bool(struct pg_params *p, bool v);
/* One parameter of a list for PG_PARAMS, added as the pgp_ function of its
 * kind: PG_TEXT(v), PG_TEXT_OPT(v), PG_I64(v), PG_BOOL(v). */
struct pg_arg {
  enum { PG_ARG_TEXT, PG_ARG_TEXT_OPT, PG_ARG_I64, PG_ARG_BOOL } kind;
  const char *text;
  int64_t i64;
};
#define PG_TEXT(v) ((struct pg_arg){ PG_ARG_TEXT, (v), 0 })
#define PG_TEXT_OPT(v) ((struct pg_arg){ PG_ARG_TEXT_OPT, (v), 0 })
#define PG_I64(v) ((struct pg_arg){ PG_ARG_I64, NULL, (v) })
#define PG_BOOL(v) ((struct pg_arg){ PG_ARG_BOOL, NULL, (v) ? 1 : 0 })
void pgp_args(struct pg_params *p, size_t n, const struct pg_arg *args);
/* Adds the parameters listed, in order ($1 first):
 * PG_PARAMS(&p, PG_TEXT(job_id), PG_I64(now_ms)). */
#define PG_PARAMS(p, ...)                                                               \
  pgp_args((p), sizeof((const struct pg_arg[]){ __VA_ARGS__ }) / sizeof(struct pg_arg), \
           (const struct pg_arg[]){ __VA_ARGS__ })

/* Runs sql with p (may be NULL). *rc gets NRD_OK with the result (caller
 * PQclear's it), or NRD_BUSY / NRD_ERR (logged with what) and NULL. A lost
 * connection (also one the server ended while it was idle) is reset first
 * when no transaction is open. */
PGresult *pg_exec(struct nrd_pg *pg, const char *sql, const struct pg_params *p, int *rc,
                  const char *what);
/* The same with n parameters in values (a query with more than PG_PARAMS_MAX). */
PGresult *pg_exec_values(struct nrd_pg *pg, const char *sql, int n, const char *const *values,
                         int *rc, const char *what);
/* Reads row i of r into out; false: the row is broken (logged). */
typedef bool (*pg_row_fn)(const PGresult *r, int i, void *out);
/* Runs sql and reads its first row, if any, with read (NULL: only asks
 * whether there is one): NRD_OK, NRD_NONE when no row, NRD_ERR when read
 * refused it. */
int pg_one_row(struct nrd_pg *pg, const char *sql, const struct pg_params *p, const char *what,
               pg_row_fn read, void *out);
/* The rows of a result, elem bytes each (arr NULL when none; caller frees). */
struct pg_rows {
  void *arr;
  size_t n, elem;
};
/* Runs sql and reads every row into rows->arr (zeroed slots). When read
 * refuses a row: NRD_ERR, with rows->n the rows read before it. */
int pg_read_rows(struct nrd_pg *pg, const char *sql, const struct pg_params *p, const char *what,
                 pg_row_fn read, struct pg_rows *rows);
/* Fills p with statement i's parameters; false: statement i is not sent. */
typedef bool (*pg_fill_fn)(size_t i, struct pg_params *p, void *ud);
/* Runs sql n times inside the caller's transaction, the parameters of each
 * filled by fill, with a round trip per chunk of them rather than per
 * statement (libpq's pipeline mode). NRD_OK when each sent changed a row;
 * NRD_ERR when one changed none or failed (the transaction is then
 * aborted); NRD_BUSY when the connection was lost. */
int pg_write_pipelined(struct nrd_pg *pg, const char *sql, size_t n, pg_fill_fn fill, void *ud,
                       const char *what);
/* A write: NRD_OK when it changed rows, NRD_NONE when none; changes may be NULL. */
int pg_write(struct nrd_pg *pg, const char *sql, const struct pg_params *p, const char *what,
             int64_t *changes);

/* Runs fn between BEGIN and COMMIT. fn returns NRD_OK or NRD_NONE
 * (committed), NRD_BUSY (rolled back and run again, a bounded number of
 * times) or NRD_ERR (rolled back). A COMMIT that fails (the connection
 * lost: its outcome unknown) is not run again: NRD_BUSY. */
typedef int (*pg_tx_fn)(struct nrd_pg *pg, void *arg);
int pg_tx(struct nrd_pg *pg, pg_tx_fn fn, void *arg);

/* Column readers: a heap copy or NULL for SQL NULL; integers; booleans. */
char *pg_col_text(const PGresult *r, int row, int col);
int64_t pg_col_i64(const PGresult *r, int row, int col);
bool pg_col_bool(const PGresult *r, int row, int col);

int pg_migrate(struct nrd_pg *pg, unsigned *applied, char *err, size_t errlen);
/* pg_write inside the caller's transaction, then (when it changed a row)
 * event, if any, into the outbox; an event already there counts as
 * written (at least once). */
int pg_write_with_event(struct nrd_pg *pg, const char *sql, const struct pg_params *p,
                        const char *what, const struct nrd_event *event);
/* pg_write_with_event in a transaction of its own (pg_tx). */
int pg_tx_write_with_event(struct nrd_pg *pg, const char *sql, const struct pg_params *p,
                           const char *what, const struct nrd_event *event);
/* Inserts an event inside the caller's transaction; NRD_NONE when its id exists. */
int pg_event_insert(struct nrd_pg *pg, const struct nrd_event *e);
/* A struct store_row over row i of r (store_codec.h). */
struct pg_row {
  struct store_row row;
  const PGresult *r;
  int i;
};
void pg_row_init(struct pg_row *row, const PGresult *r, int i);
/* Reads row i of r into out by the shape (store_codec.h). */
void pg_shape_row(const PGresult *r, int i, const struct store_shape *sh, void *out);
/* Runs sql with p and reads its first row into out (size bytes, zeroed
 * first) by the shape: as pg_one_row. */
int pg_one_shaped(struct nrd_pg *pg, const char *sql, const struct pg_params *p, const char *what,
                  const struct store_shape *sh, void *out, size_t size);
/* pg_one_shaped with key as the one parameter. */
int pg_get_shaped(struct nrd_pg *pg, const char *sql, const char *key, const char *what,
                  const struct store_shape *sh, void *out, size_t size);

/* Reads row i of a result of PG_LEDGER_COLS into a struct nrd_ledger_row
 * (ledger.c); false: a state we do not know (logged). */
bool pg_ledger_read_row(const PGresult *r, int i, void *row);
/* Runs sql and reads every ledger row it returns (caller frees). */
int pg_ledger_query_rows(struct nrd_pg *pg, const char *sql, const struct pg_params *p,
                         struct nrd_ledger_row **rows, size_t *n, const char *what);
/* Forgets the leadership names (the session that held them is gone). */
void pg_leaders_forget(struct nrd_pg *pg);

/* The open states, also the partial index ledger_open_order's WHERE. */
#define PG_OPEN_STATES "'pending', 'deleting', 'deleted', 'creating'"
#define PG_LEDGER_COLS                                                                       \
  "job_id, job_type, instance_id, instance_name, state, new_name, name_ms, new_instance_id," \
  " delete_sent, create_sent, adopted, attempts, last_error, owner, lease_until_ms, run_id," \
  " created_ms, updated_ms, coalesce(accepted_ms, 0), coalesce(running_ms, 0),"              \
  " status_error_state, status_error_message"
#define PG_EVENT_COLS \
  "id, type, body_json, created_ms, state, attempts, next_attempt_ms, last_error, seq"

#endif
