/* The PostgreSQL connection: opening (identity, migrations), parameters,
 * the query and transaction runners, the URL's redaction, leadership. */

#include "pg_internal.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "nrd/log.h"
#include "nrd/util.h"

#define PG_TX_ATTEMPTS 4
#define PG_OUTBOX_LEASE_MS 60000

/* ---- parameters and columns ---- */

void pgp_text(struct pg_params *p, const char *v)
{
  if (p->n >= PG_PARAMS_MAX)
    abort(); /* our bug: a query with more parameters than the array */
  p->v[p->n++] = v;
}

void pgp_text_opt(struct pg_params *p, const char *v)
{
  pgp_text(p, v && *v ? v : NULL);
}

void pgp_i64(struct pg_params *p, int64_t v)
{
  if (p->n >= PG_PARAMS_MAX)
    abort();
  snprintf(p->num[p->n], sizeof p->num[p->n], "%" PRId64, v);
  p->v[p->n] = p->num[p->n];
  p->n++;
}

void pgp_bool(struct pg_params *p, bool v)
{
  pgp_text(p, v ? "true" : "false");
}

void pgp_args(struct pg_params *p, size_t n, const struct pg_arg *args)
{
  for (size_t i = 0; i < n; i++) {
    switch (args[i].kind) {
    case PG_ARG_TEXT:
      pgp_text(p, args[i].text);
      break;
    case PG_ARG_TEXT_OPT:
      pgp_text_opt(p, args[i].text);
      break;
    case PG_ARG_I64:
      pgp_i64(p, args[i].i64);
      break;
    case PG_ARG_BOOL:
      pgp_bool(p, args[i].i64 != 0);
      break;
    }
  }
}

char *pg_col_text(const PGresult *r, int row, int col)
{
  if (PQgetisnull(r, row, col))
    return NULL;
  return nrd_xstrdup(PQgetvalue(r, row, col));
}

int64_t pg_col_i64(const PGresult *r, int row, int col)
{
  if (PQgetisnull(r, row, col))
    return 0;
  return (int64_t)strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool pg_col_bool(const PGresult *r, int row, int col)
{
  return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

static const char *row_text(const struct store_row *row, int col)
{
  const struct pg_row *p = (const struct pg_row *)row;
  return PQgetisnull(p->r, p->i, col) ? NULL : PQgetvalue(p->r, p->i, col);
}

static int64_t row_i64(const struct store_row *row, int col)
{
  const struct pg_row *p = (const struct pg_row *)row;
  return pg_col_i64(p->r, p->i, col);
}

static bool row_flag(const struct store_row *row, int col)
{
  const struct pg_row *p = (const struct pg_row *)row;
  return pg_col_bool(p->r, p->i, col);
}

void pg_row_init(struct pg_row *row, const PGresult *r, int i)
{
  *row = (struct pg_row){ { row_text, row_i64, row_flag }, r, i };
}

void pg_shape_row(const PGresult *r, int i, const struct store_shape *sh, void *out)
{
  struct pg_row row;
  pg_row_init(&row, r, i);
  store_shape_read(sh, &row.row, out);
}

/* ---- queries ---- */

/* A lost connection, a serialization failure, a deadlock, a lock not
 * available or a server shutting down: try later. */
static bool sqlstate_is_busy(const char *s)
{
  if (!s)
    return false;
  return strncmp(s, "08", 2) == 0 || strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 ||
         strcmp(s, "55P03") == 0 || strncmp(s, "57P", 3) == 0;
}

/* Keeps the first line of msg as the connection's last error. */
static void set_last_error(struct nrd_pg *pg, const char *msg)
{
  if (!msg || !*msg)
    msg = "unknown error";
  snprintf(pg->last_error, sizeof pg->last_error, "%.*s", (int)strcspn(msg, "\n"), msg);
}

/* The session is still there. Between statements it reads what the server
 * sent meanwhile (without waiting): a server that restarted or ended the
 * session has said so and closed it, so the statement goes to a new session
 * instead of failing on the dead one. */
static bool session_alive(struct nrd_pg *pg)
{
  if (PQstatus(pg->conn) != CONNECTION_OK)
    return false;
  if (pg->in_tx)
    return true; /* a lost session fails the transaction's next statement */
  /* Twice: the first read may take the server's last message (FATAL:
   * terminating connection), the second then meets the closed socket. */
  for (int i = 0; i < 2; i++)
    if (PQconsumeInput(pg->conn) != 1 || PQstatus(pg->conn) != CONNECTION_OK)
      return false;
  return true;
}

/* A reconnect that failed waits before the next: 100 ms, doubling to 2 s.
 * Calls meanwhile fail at once with the last error, so a server that is
 * away (or a host that does not answer, each try up to connect_timeout)
 * costs a caller such as /ready nothing. */
#define PG_RETRY_MIN_MS 100
#define PG_RETRY_MAX_MS 2000

static bool ensure_conn(struct nrd_pg *pg)
{
  if (session_alive(pg))
    return true;
  if (pg->in_tx) {
    set_last_error(pg, "the connection to postgresql was lost");
    return false; /* the transaction is lost: the runner starts again */
  }
  pg_leaders_forget(pg);
  if (pg->retry_wait_ms && nrd_mono_ms() < pg->retry_at_ms)
    return false; /* the last error stands */
  pg->reconnect_tries++;
  PQreset(pg->conn);
  if (PQstatus(pg->conn) != CONNECTION_OK) {
    set_last_error(pg, PQerrorMessage(pg->conn));
    pg->retry_wait_ms = pg->retry_wait_ms ? pg->retry_wait_ms * 2 : PG_RETRY_MIN_MS;
    if (pg->retry_wait_ms > PG_RETRY_MAX_MS)
      pg->retry_wait_ms = PG_RETRY_MAX_MS;
    pg->retry_at_ms = nrd_mono_ms() + pg->retry_wait_ms;
    LOG_WARN_AT(NRD_FAULT_DISK, "store: postgresql unreachable", "error", pg->last_error,
                "#retryInMs", NRD_I64(pg->retry_wait_ms));
    return false;
  }
  pg->retry_wait_ms = 0;
  LOG_INFO("store: postgresql connection restored");
  return true;
}

unsigned nrd_pg_reconnect_tries(const struct nrd_pg *pg)
{
  return pg->reconnect_tries;
}

/* A failed result r (may be NULL): kept as the last error and logged.
 * NRD_BUSY (a lost connection, a serialization failure...) or NRD_ERR. */
static int result_error(struct nrd_pg *pg, const PGresult *r, const char *what)
{
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  set_last_error(pg, primary ? primary : PQerrorMessage(pg->conn));
  bool busy = sqlstate_is_busy(state) || PQstatus(pg->conn) != CONNECTION_OK;
  if (busy)
    LOG_DEBUG("store: postgresql busy or unreachable", "op", what, "sqlstate", state);
  else /* the primary message only: the DETAIL can quote a row's values */
    LOG_ERROR_AT(NRD_FAULT_DISK, "store: postgresql error", "op", what, "sqlstate", state, "error",
                 primary ? primary : "no result");
  if (PQstatus(pg->conn) != CONNECTION_OK)
    pg_leaders_forget(pg);
  return busy ? NRD_BUSY : NRD_ERR;
}

PGresult *pg_exec(struct nrd_pg *pg, const char *sql, const struct pg_params *p, int *rc,
                  const char *what)
{
  return pg_exec_values(pg, sql, p ? p->n : 0, p ? p->v : NULL, rc, what);
}

PGresult *pg_exec_values(struct nrd_pg *pg, const char *sql, int n, const char *const *values,
                         int *rc, const char *what)
{
  if (!ensure_conn(pg)) {
    *rc = NRD_BUSY;
    return NULL;
  }
  PGresult *r = PQexecParams(pg->conn, sql, n, NULL, values, NULL, NULL, 0);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    *rc = NRD_OK;
    return r;
  }
  *rc = result_error(pg, r, what);
  PQclear(r);
  return NULL;
}

/* ---- pipelined writes ---- */

/* Statements sent before their results are read: one round trip each. Their
 * results are small (a command tag), so a chunk never fills the socket. */
#define PG_PIPELINE_CHUNK 200

/* One result of a pipelined write: NRD_OK when it changed a row. */
static int pipeline_result(struct nrd_pg *pg, PGresult *r, const char *what)
{
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    const char *tuples = PQcmdTuples(r);
    return *tuples && strcmp(tuples, "0") != 0 ? NRD_OK : NRD_ERR;
  }
  if (st == PGRES_PIPELINE_ABORTED) /* after the failure already counted */
    return NRD_ERR;
  return result_error(pg, r, what);
}

static int pipeline_chunk(struct nrd_pg *pg, const char *sql, size_t from, size_t to,
                          pg_fill_fn fill, void *ud, const char *what)
{
  size_t sent = 0;
  int rc = NRD_OK;
  for (size_t i = from; i < to; i++) {
    struct pg_params p = { 0 };
    if (!fill(i, &p, ud))
      continue;
    if (PQsendQueryParams(pg->conn, sql, p.n, NULL, p.v, NULL, NULL, 0) != 1) {
      set_last_error(pg, PQerrorMessage(pg->conn));
      rc = NRD_BUSY;
      break;
    }
    sent++;
  }
  if (PQpipelineSync(pg->conn) != 1 && rc == NRD_OK) {
    set_last_error(pg, PQerrorMessage(pg->conn));
    rc = NRD_BUSY;
  }
  for (size_t k = 0; k < sent; k++) {
    PGresult *r;
    while ((r = PQgetResult(pg->conn)) != NULL) {
      int one = pipeline_result(pg, r, what);
      if (rc == NRD_OK)
        rc = one;
      PQclear(r);
    }
  }
  PGresult *r = PQgetResult(pg->conn); /* the sync's */
  if (PQresultStatus(r) != PGRES_PIPELINE_SYNC && rc == NRD_OK)
    rc = PQstatus(pg->conn) == CONNECTION_OK ? NRD_ERR : NRD_BUSY;
  PQclear(r);
  return rc;
}

int pg_write_pipelined(struct nrd_pg *pg, const char *sql, size_t n, pg_fill_fn fill, void *ud,
                       const char *what)
{
  if (n == 0)
    return NRD_OK;
  if (!ensure_conn(pg))
    return NRD_BUSY;
  if (PQenterPipelineMode(pg->conn) != 1) {
    set_last_error(pg, PQerrorMessage(pg->conn));
    return NRD_BUSY;
  }
  int rc = NRD_OK;
  for (size_t from = 0; from < n && rc == NRD_OK; from += PG_PIPELINE_CHUNK)
    rc = pipeline_chunk(pg, sql, from, n - from < PG_PIPELINE_CHUNK ? n : from + PG_PIPELINE_CHUNK,
                        fill, ud, what);
  if (PQexitPipelineMode(pg->conn) != 1 && rc == NRD_OK)
    rc = NRD_BUSY;
  if (PQstatus(pg->conn) != CONNECTION_OK) {
    pg_leaders_forget(pg);
    if (rc == NRD_OK || rc == NRD_ERR)
      rc = NRD_BUSY;
  }
  return rc;
}

int pg_write(struct nrd_pg *pg, const char *sql, const struct pg_params *p, const char *what,
             int64_t *changes)
{
  int rc;
  PGresult *r = pg_exec(pg, sql, p, &rc, what);
  if (!r)
    return rc;
  int64_t n = (int64_t)strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  if (changes)
    *changes = n;
  return n > 0 ? NRD_OK : NRD_NONE;
}

int pg_one_row(struct nrd_pg *pg, const char *sql, const struct pg_params *p, const char *what,
               pg_row_fn read, void *out)
{
  int rc;
  PGresult *r = pg_exec(pg, sql, p, &rc, what);
  if (!r)
    return rc;
  if (PQntuples(r) < 1)
    rc = NRD_NONE;
  else if (read && !read(r, 0, out))
    rc = NRD_ERR;
  PQclear(r);
  return rc;
}

struct shaped {
  const struct store_shape *sh;
  void *out;
};

static bool read_shaped(const PGresult *r, int i, void *ctx)
{
  const struct shaped *x = ctx;
  pg_shape_row(r, i, x->sh, x->out);
  return true;
}

int pg_one_shaped(struct nrd_pg *pg, const char *sql, const struct pg_params *p, const char *what,
                  const struct store_shape *sh, void *out, size_t size)
{
  memset(out, 0, size);
  struct shaped x = { sh, out };
  return pg_one_row(pg, sql, p, what, read_shaped, &x);
}

int pg_get_shaped(struct nrd_pg *pg, const char *sql, const char *key, const char *what,
                  const struct store_shape *sh, void *out, size_t size)
{
  struct pg_params p = { 0 };
  pgp_text(&p, key);
  return pg_one_shaped(pg, sql, &p, what, sh, out, size);
}

int pg_read_rows(struct nrd_pg *pg, const char *sql, const struct pg_params *p, const char *what,
                 pg_row_fn read, struct pg_rows *rows)
{
  int rc;
  PGresult *r = pg_exec(pg, sql, p, &rc, what);
  if (!r)
    return rc;
  size_t count = (size_t)PQntuples(r);
  rows->arr = count ? nrd_xcalloc(count, rows->elem) : NULL;
  for (rows->n = 0; rows->n < count && rc == NRD_OK; rows->n++) {
    if (!read(r, (int)rows->n, (char *)rows->arr + rows->n * rows->elem))
      rc = NRD_ERR;
  }
  if (rc != NRD_OK)
    rows->n--; /* the refused row is not counted */
  PQclear(r);
  return rc;
}

static int tx_control(struct nrd_pg *pg, const char *sql)
{
  int rc;
  PGresult *r = pg_exec(pg, sql, NULL, &rc, sql);
  PQclear(r);
  return rc;
}

int pg_tx(struct nrd_pg *pg, pg_tx_fn fn, void *arg)
{
  int rc = NRD_BUSY;
  pg->last_error[0] = '\0'; /* the message reported is this transaction's */
  for (int attempt = 0; attempt < PG_TX_ATTEMPTS && rc == NRD_BUSY; attempt++) {
    if (attempt > 0)
      nrd_sleep_ms(10 * attempt + (int64_t)(nrd_random_unit() * 20));
    rc = tx_control(pg, "BEGIN");
    if (rc != NRD_OK)
      continue;
    pg->in_tx = true;
    rc = fn(pg, arg);
    /* A failed statement aborts the transaction; its COMMIT would answer
     * "ROLLBACK" without an error. */
    if ((rc == NRD_OK || rc == NRD_NONE) && PQtransactionStatus(pg->conn) == PQTRANS_INERROR) {
      LOG_ERROR_AT(NRD_FAULT_OURS,
                   "store: postgresql transaction aborted by a statement we did not check");
      rc = NRD_ERR;
    }
    if (rc == NRD_OK || rc == NRD_NONE) {
      int crc = tx_control(pg, "COMMIT");
      if (crc != NRD_OK) {
        /* The connection went during COMMIT: it may have committed, so the
         * transaction is not run again here; the caller hears NRD_BUSY. */
        pg->in_tx = false;
        return crc;
      }
    } else if (PQstatus(pg->conn) == CONNECTION_OK) {
      tx_control(pg, "ROLLBACK");
    }
    pg->in_tx = false;
  }
  return rc;
}

/* ---- URL ---- */

bool nrd_pg_url_is_pg(const char *url)
{
  return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0);
}

/* Copies at most n bytes of s into out (room for the NUL kept). */
static void put(char *out, size_t outlen, size_t *len, const char *s, size_t n)
{
  for (size_t i = 0; i < n && *len + 1 < outlen; i++)
    out[(*len)++] = s[i];
  out[*len] = '\0';
}

/* Where a password=... value starts at p (a parameter name at the start of
 * a conninfo, or after '?', '&' or a space), else NULL. */
static const char *password_value(const char *url, const char *p)
{
  if (p != url && p[-1] != '?' && p[-1] != '&' && p[-1] != ' ')
    return NULL;
  if (strncasecmp(p, "password", 8) != 0)
    return NULL;
  const char *q = p + 8;
  while (*q == ' ')
    q++;
  if (*q != '=')
    return NULL;
  for (q++; *q == ' ';)
    q++;
  return q;
}

/* The length of a parameter's value at v: up to '&' or a space, or a
 * quoted conninfo value ('...', with \' and \\ inside) whole. */
static size_t skip_value(const char *v)
{
  if (*v != '\'')
    return strcspn(v, "& ");
  size_t i = 1;
  while (v[i] && v[i] != '\'')
    i += v[i] == '\\' && v[i + 1] ? 2 : 1;
  return v[i] ? i + 1 : i;
}

void nrd_pg_url_redact(const char *url, char *out, size_t outlen)
{
  size_t len = 0;
  if (!outlen)
    return;
  out[0] = '\0';
  if (!url)
    return;
  const char *p = url;
  const char *scheme = strstr(url, "://");
  if (scheme) { /* a URI: user:password@ in its authority */
    const char *auth = scheme + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *c = auth; c < auth + alen; c++)
      if (*c == '@')
        at = c;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    put(out, outlen, &len, url, (size_t)(auth - url));
    p = auth;
    if (colon) {
      put(out, outlen, &len, auth, (size_t)(colon - auth) + 1);
      put(out, outlen, &len, "***", 3);
      p = at;
    }
  }
  while (*p) {
    const char *v = password_value(url, p);
    if (!v) {
      put(out, outlen, &len, p++, 1);
      continue;
    }
    put(out, outlen, &len, p, (size_t)(v - p));
    put(out, outlen, &len, "***", 3);
    p = v + skip_value(v);
  }
}

/* ---- identity ---- */

static char g_identity[PG_IDENTITY_MAX];
static pthread_once_t g_identity_once = PTHREAD_ONCE_INIT;

static void make_identity(void)
{
  char host[32] = "host";
  unsigned char rnd[4];
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  nrd_random_bytes(rnd, sizeof rnd);
  snprintf(g_identity, sizeof g_identity, "nrd-%s-%ld-%02x%02x%02x%02x", host, (long)getpid(),
           rnd[0], rnd[1], rnd[2], rnd[3]);
}

const char *nrd_pg_identity(void)
{
  pthread_once(&g_identity_once, make_identity);
  return g_identity;
}

/* ---- open and close ---- */

/* The server's notices ("relation already exists, skipping") are not ours
 * to print on stderr. */
static void quiet_notices(void *arg, const char *message)
{
  (void)arg;
  (void)message;
}

int nrd_pg_open_as(const char *url, const char *identity, struct nrd_pg **out, unsigned *applied,
                   char *err, size_t errlen)
{
  char redacted[512];
  *out = NULL;
  if (applied)
    *applied = 0;
  nrd_pg_url_redact(url, redacted, sizeof redacted);
  if (!identity || strlen(identity) >= PG_IDENTITY_MAX) {
    snprintf(err, errlen, "postgresql: identity missing or longer than %d bytes",
             PG_IDENTITY_MAX - 1);
    return NRD_ERR;
  }
  struct nrd_pg *pg = nrd_xcalloc(1, sizeof *pg);
  snprintf(pg->identity, sizeof pg->identity, "%s", identity);
  pg->outbox_lease_ms = PG_OUTBOX_LEASE_MS;
  /* Later keywords win: the URL's connect_timeout over ours, our identity
   * over the URL's application_name. */
  const char *const keys[] = { "connect_timeout", "dbname", "application_name", NULL };
  const char *const vals[] = { "10", url, pg->identity, NULL };
  pg->conn = PQconnectdbParams(keys, vals, 1);
  if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
    const char *msg = pg->conn ? PQerrorMessage(pg->conn) : "out of memory";
    snprintf(err, errlen, "cannot connect to %s: %.*s", redacted, (int)strcspn(msg, "\n"), msg);
    nrd_pg_close(pg);
    return NRD_ERR;
  }
  PQsetNoticeProcessor(pg->conn, quiet_notices, NULL);
  int rc = pg_migrate(pg, applied, err, errlen);
  if (rc != NRD_OK) {
    nrd_pg_close(pg);
    return rc;
  }
  *out = pg;
  return NRD_OK;
}

int nrd_pg_open(const char *url, struct nrd_pg **out, unsigned *applied, char *err, size_t errlen)
{
  return nrd_pg_open_as(url, nrd_pg_identity(), out, applied, err, errlen);
}

void nrd_pg_close(struct nrd_pg *pg)
{
  if (!pg)
    return;
  pg_leaders_forget(pg);
  if (pg->conn)
    PQfinish(pg->conn);
  free(pg);
}

void nrd_pg_set_outbox_lease(struct nrd_pg *pg, int64_t lease_ms)
{
  pg->outbox_lease_ms = lease_ms;
}

/* A query returning one bigint into *v. */
static int one_i64(struct nrd_pg *pg, const char *sql, int64_t *v, const char *what)
{
  int rc;
  PGresult *r = pg_exec(pg, sql, NULL, &rc, what);
  if (!r)
    return rc;
  if (PQntuples(r) != 1) {
    PQclear(r);
    return NRD_ERR;
  }
  *v = pg_col_i64(r, 0, 0);
  PQclear(r);
  return NRD_OK;
}

int nrd_pg_schema_version(struct nrd_pg *pg, int *version)
{
  int64_t v = 0;
  int rc =
      one_i64(pg, "SELECT coalesce(max(version), 0) FROM schema_migrations", &v, "schema version");
  *version = (int)v;
  return rc;
}

int nrd_pg_ping(struct nrd_pg *pg)
{
  int version;
  return nrd_pg_schema_version(pg, &version);
}

const char *nrd_pg_last_error(const struct nrd_pg *pg)
{
  return pg->last_error[0] ? pg->last_error : "unknown error";
}

int nrd_pg_probe_write(struct nrd_pg *pg, int64_t now_ms)
{
  struct pg_params p = { 0 };
  pgp_i64(&p, now_ms);
  pg->last_error[0] = '\0';
  return pg_write(pg,
                  "INSERT INTO ready_probe (id, at_ms) VALUES (1, $1)"
                  " ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
                  &p, "ready probe", NULL);
}

int nrd_pg_quick_check(struct nrd_pg *pg, char *msg, size_t msglen)
{
  int rc;
  PGresult *r =
      pg_exec(pg, "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only')",
              NULL, &rc, "quick check");
  if (!r) {
    snprintf(msg, msglen, "%s", nrd_pg_last_error(pg));
    return NRD_ERR;
  }
  rc = NRD_ERR;
  if (pg_col_bool(r, 0, 0))
    snprintf(msg, msglen, "the server is a standby in recovery: it takes no writes");
  else if (strcmp(PQgetvalue(r, 0, 1), "on") == 0)
    snprintf(msg, msglen, "the server's default_transaction_read_only is on");
  else
    rc = NRD_OK;
  PQclear(r);
  return rc;
}

void nrd_pg_release_memory(struct nrd_pg *pg)
{
  (void)pg; /* the server's memory is the server's: nothing held here */
}

int nrd_pg_now_ms(struct nrd_pg *pg, int64_t *now_ms)
{
  return one_i64(pg, "SELECT nrd_now_ms()", now_ms, "now");
}

/* ---- leadership ---- */

void pg_leaders_forget(struct nrd_pg *pg)
{
  for (int i = 0; i < PG_LEADERS_MAX; i++) {
    free(pg->leaders[i]);
    pg->leaders[i] = NULL;
  }
}

static int leader_slot(const struct nrd_pg *pg, const char *name)
{
  for (int i = 0; i < PG_LEADERS_MAX; i++)
    if (pg->leaders[i] && strcmp(pg->leaders[i], name) == 0)
      return i;
  return -1;
}

/* Runs sql, a leadership advisory-lock call on (PG_LOCK_LEADER, name);
 * *answer gets its boolean answer. */
static int leader_lock(struct nrd_pg *pg, const char *sql, const char *name, const char *what,
                       bool *answer)
{
  struct pg_params p = { 0 };
  pgp_i64(&p, PG_LOCK_LEADER);
  pgp_text(&p, name);
  int rc;
  PGresult *r = pg_exec(pg, sql, &p, &rc, what);
  if (!r)
    return rc;
  *answer = PQntuples(r) == 1 && pg_col_bool(r, 0, 0);
  PQclear(r);
  return rc;
}

int nrd_pg_leader_try(struct nrd_pg *pg, const char *name)
{
  /* Held already: the session lock lasts as long as the session. A lost
   * session forgets its names (pg_exec), so the ping proves it. Session
   * locks stack, so it is not taken twice. */
  if (leader_slot(pg, name) >= 0) {
    int rc = nrd_pg_ping(pg);
    return rc == NRD_OK && leader_slot(pg, name) >= 0 ? NRD_OK : NRD_BUSY;
  }
  int free_slot = -1;
  for (int i = 0; i < PG_LEADERS_MAX && free_slot < 0; i++)
    if (!pg->leaders[i])
      free_slot = i;
  if (free_slot < 0)
    return NRD_ERR;
  bool got = false;
  int rc = leader_lock(pg, "SELECT pg_try_advisory_lock($1::int4, hashtext($2))", name,
                       "leader try", &got);
  if (rc != NRD_OK)
    return rc;
  if (!got)
    return NRD_NONE;
  pg->leaders[free_slot] = nrd_xstrdup(name);
  return NRD_OK;
}

int nrd_pg_leader_release(struct nrd_pg *pg, const char *name)
{
  int slot = leader_slot(pg, name);
  if (slot < 0)
    return NRD_OK;
  free(pg->leaders[slot]);
  pg->leaders[slot] = NULL;
  bool unlocked = false;
  return leader_lock(pg, "SELECT pg_advisory_unlock($1::int4, hashtext($2))", name,
                     "leader release", &unlocked);
}
