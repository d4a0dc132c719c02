/* The connection: opening (folder 0700, file 0600, pragmas, migrations), the
 * statement cache, the transaction runner and small binding helpers. */

#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nrd/log.h"
#include "nrd/util.h"

/* Whole-transaction attempts when SQLite stays busy past busy_timeout. */
#define STORE_TX_ATTEMPTS 4
#define STORE_BUSY_TIMEOUT_MS 5000

static const char
    *const
        stmt_sql[STMT_COUNT] = {
          [STMT_BEGIN] = "BEGIN IMMEDIATE",
          [STMT_COMMIT] = "COMMIT",
          [STMT_ROLLBACK] = "ROLLBACK",
          [STMT_SCHEMA_VERSION] = "SELECT coalesce(max(version), 0) FROM schema_migrations",
          [STMT_MIGRATION_APPLIED] = "SELECT 1 FROM schema_migrations WHERE version = :version",
          [STMT_MIGRATION_RECORD] = "INSERT INTO schema_migrations (version, name, applied_at_ms) "
                                    "VALUES (:version, :name, :now)",

/* Config columns follow the settled rule: refreshed only when :settled,
   * and never from an absent (NULL) value. */
#define SETTLED(col) \
#col " = CASE WHEN :settled THEN coalesce(excluded." #col ", " #col ") ELSE " #col " END"
          [STMT_SNAPSHOT_UPSERT] =
              "INSERT INTO snapshots (instance_id, name, status, cluster_id, cluster_name, "
              "product_id,"
              " product_name, image_url, image_auth_id, command, gpu_num, rootfs_size, kind, "
              "billing_mode,"
              " ports_json, envs_json, mounts_json, raw_json, novita_created_at, first_seen_ms,"
              " last_seen_ms, seen_run, config_updated_ms, entrypoint, network_id, "
              "min_cuda_version,"
              " tools_json)"
              " VALUES (:id, :name, :status, :cluster_id, :cluster_name, :product_id, "
              ":product_name,"
              " :image_url, :image_auth_id, :command, :gpu_num, :rootfs_size, :kind, :billing_mode,"
              " :ports, :envs, :mounts, :raw, :created_at, :now, :now, :run, :now, :entrypoint,"
              " :network_id, :min_cuda_version, :tools)"
              " ON CONFLICT (instance_id) DO UPDATE SET"
              " status = coalesce(excluded.status, status),"
              " last_seen_ms = excluded.last_seen_ms,"
              " seen_run = excluded.seen_run, " SETTLED(name) ", " SETTLED(cluster_id) ", " SETTLED(cluster_name) ", " SETTLED(product_id) ", " SETTLED(product_name) ", " SETTLED(
                  image_url) ", " SETTLED(image_auth_id) ", " SETTLED(command) ", " SETTLED(gpu_num) ", " SETTLED(rootfs_size) ", " SETTLED(kind) ", " SETTLED(billing_mode) ", " SETTLED(ports_json) ", " SETTLED(envs_json) ", " SETTLED(mounts_json) ", " SETTLED(raw_json) ", " SETTLED(novita_created_at) ", " SETTLED(entrypoint) ", " SETTLED(network_id) ", " SETTLED(min_cuda_version) ", " SETTLED(tools_json) ","
                                                                                                                                                                                                                                                                                                                                                                                                                         " config_updated_ms = CASE WHEN :settled THEN excluded.config_updated_ms"
                                                                                                                                                                                                                                                                                                                                                                                                                         " ELSE config_updated_ms END",
#undef SETTLED
          [STMT_SNAPSHOT_GET] =
              "SELECT instance_id, name, status, cluster_id, cluster_name, product_id, "
              "product_name,"
              " image_url, image_auth_id, command, gpu_num, rootfs_size, kind, billing_mode, "
              "ports_json,"
              " envs_json, mounts_json, raw_json, novita_created_at, entrypoint, network_id,"
              " min_cuda_version, tools_json FROM snapshots WHERE instance_id = :id",
          [STMT_SNAPSHOT_SEEN] =
              "SELECT 1 FROM snapshots WHERE instance_id = :id AND last_seen_ms >= :since",

          [STMT_LEDGER_INSERT] =
              "INSERT INTO ledger (job_id, job_type, instance_id, instance_name, state, new_name, "
              "name_ms,"
              " created_ms, updated_ms) VALUES (:job, :type, :instance, :instance_name, 'pending',"
              " :new_name, :name_ms, :now, :now) ON CONFLICT (job_id) DO NOTHING",
          [STMT_LEDGER_OPEN] =
              "SELECT " STORE_LEDGER_COLS " FROM ledger INDEXED BY ledger_open_order"
              " WHERE state IN (" STORE_OPEN_STATES
              ") AND (created_ms, job_id) > (:after_ms, :after_job)"
              " ORDER BY created_ms, job_id LIMIT :limit",
          [STMT_LEDGER_LIST] =
              "SELECT " STORE_LEDGER_COLS " FROM ledger WHERE :state IS NULL OR state = :state"
              " ORDER BY created_ms DESC, job_id DESC LIMIT :limit",
          [STMT_LEDGER_GET] = "SELECT " STORE_LEDGER_COLS " FROM ledger WHERE job_id = :job",
          [STMT_LEDGER_COUNT] = "SELECT state, count(*) FROM ledger GROUP BY state",
          [STMT_LEDGER_CLAIM] =
              "UPDATE ledger SET owner = :owner, lease_until_ms = :lease_until, run_id = :run,"
              " attempts = attempts + 1, updated_ms = :now"
              " WHERE job_id = :job AND state IN (" STORE_OPEN_STATES ")"
              " AND (owner IS NULL OR owner = :owner OR lease_until_ms < :now)",
          [STMT_LEDGER_RENEW] = "UPDATE ledger SET lease_until_ms = :lease_until WHERE job_id = "
                                ":job AND owner = :owner",
          [STMT_LEDGER_RELEASE] = "UPDATE ledger SET owner = NULL, lease_until_ms = 0 WHERE job_id "
                                  "= :job AND owner = :owner",
          [STMT_LEDGER_UPDATE] =
              "UPDATE ledger SET state = :state,"
              " new_instance_id = coalesce(:new_instance_id, new_instance_id),"
              " last_error = CASE WHEN :error IS NULL THEN last_error"
              " WHEN :error = '' THEN NULL ELSE :error END,"
              " delete_sent = CASE WHEN :clear_delete_sent THEN 0"
              " ELSE delete_sent OR :delete_sent END,"
              " create_sent = create_sent OR :create_sent,"
              " adopted = adopted OR :adopted,"
              " accepted_ms = CASE WHEN :state = 'created' THEN coalesce(accepted_ms, :now)"
              " ELSE accepted_ms END,"
              " owner = CASE WHEN :release THEN NULL ELSE owner END,"
              " lease_until_ms = CASE WHEN :release THEN 0 ELSE lease_until_ms END,"
              " updated_ms = :now"
              " WHERE job_id = :job AND owner = :owner",
          [STMT_LEDGER_RETRY] = "UPDATE ledger SET state = 'pending',"
                                " owner = NULL, lease_until_ms = 0, updated_ms = :now"
                                " WHERE job_id = :job AND state = 'failed'",
          [STMT_LEDGER_ABANDON] =
              "UPDATE ledger SET state = 'abandoned', last_error = :reason, owner = NULL,"
              " lease_until_ms = 0, updated_ms = :now"
              " WHERE job_id = :job AND state IN (" STORE_OPEN_STATES ", 'failed')",

          [STMT_LEDGER_FOLLOWING] =
              "SELECT " STORE_LEDGER_COLS " FROM ledger INDEXED BY ledger_state_created"
              " WHERE state = 'created' AND accepted_ms IS NOT NULL AND new_instance_id IS NOT NULL"
              " AND (:before = 0 OR accepted_ms < :before)"
              " AND (:after_job IS NULL OR accepted_ms > :after_ms"
              " OR (accepted_ms = :after_ms AND job_id > :after_job))"
              " ORDER BY accepted_ms, job_id LIMIT :limit",
          [STMT_LEDGER_STARTED] =
              "UPDATE ledger SET state = CASE WHEN :running THEN 'running' ELSE 'start_failed' END,"
              " running_ms = CASE WHEN :running THEN :now ELSE running_ms END,"
              " status_error_state = :se_state, status_error_message = :se_message,"
              " last_error = coalesce(:reason, last_error), updated_ms = :now"
              " WHERE job_id = :job AND state = 'created' AND (owner IS NULL OR lease_until_ms < "
              ":now)",
          [STMT_LEDGER_RETRY_START] =
              "UPDATE ledger SET state = 'deleted', new_name = :new_name, name_ms = :name_ms,"
              " new_instance_id = NULL, create_sent = 0, adopted = 0, accepted_ms = NULL,"
              " running_ms = NULL, status_error_state = NULL, status_error_message = NULL,"
              " owner = NULL, lease_until_ms = 0, updated_ms = :now"
              " WHERE job_id = :job AND state = 'start_failed'",

          [STMT_RUN_INSERT] = "INSERT INTO runs (run_id, trigger, dry_run, state, started_ms)"
                              " VALUES (:run, :trigger, :dry_run, 'running', :started)",
          [STMT_RUN_FINISH] =
              "UPDATE runs SET state = :state, report_json = :report, finished_ms = :finished"
              " WHERE run_id = :run",
          [STMT_RUN_GET] =
              "SELECT run_id, trigger, state, dry_run, started_ms, finished_ms, report_json"
              " FROM runs WHERE run_id = :run",
          [STMT_BRAKE_GET] =
              "SELECT reason, message, job_id, until_ms, set_ms FROM brakes WHERE name = :name",
          [STMT_BRAKE_SET] =
              "INSERT INTO brakes (name, reason, message, job_id, until_ms, set_ms)"
              " VALUES (:name, :reason, :message, :job, :until, :now)"
              " ON CONFLICT(name) DO UPDATE SET reason = excluded.reason, message = "
              "excluded.message,"
              " job_id = excluded.job_id, until_ms = excluded.until_ms, set_ms = excluded.set_ms",
          [STMT_BRAKE_CLEAR] = "DELETE FROM brakes WHERE name = :name",
          [STMT_RUN_FAIL_STALE] =
              "UPDATE runs SET state = 'failed', finished_ms = :now WHERE state = 'running'",

          [STMT_EVENT_INSERT] = "INSERT INTO events (id, type, body_json, created_ms, state, "
                                "attempts, next_attempt_ms,"
                                " last_error) VALUES (:id, :type, :body, :created, "
                                "coalesce(:state, 'pending'), :attempts,"
                                " :next_attempt, :error) ON CONFLICT (id) DO NOTHING",
          [STMT_EVENT_NEXT] = "SELECT " STORE_EVENT_COLS
                              " FROM events WHERE state = 'pending' ORDER BY seq LIMIT 1",
          [STMT_EVENT_MARK] = "UPDATE events SET state = :state, attempts = :attempts, "
                              "next_attempt_ms = :next_attempt,"
                              " last_error = :error WHERE id = :id",
          [STMT_EVENT_LIST] = "SELECT " STORE_EVENT_COLS " FROM events"
                              " WHERE seq > coalesce((SELECT seq FROM events WHERE id = :since), 0)"
                              " ORDER BY seq LIMIT :limit",

          [STMT_PRUNE_RUNS] = "DELETE FROM runs WHERE state <> 'running' AND finished_ms < :cutoff",
          [STMT_PRUNE_LEDGER] = "DELETE FROM ledger WHERE state IN ('created', 'running', "
                                "'abandoned') AND updated_ms < :cutoff",
          [STMT_PRUNE_EVENTS] =
              "DELETE FROM events WHERE state IN ('delivered', 'dead') AND created_ms < :cutoff",
          /* The operator console's read-only queries (console.c). */
          [STMT_CONSOLE_RUNS] =
              "SELECT run_id, trigger, state, dry_run, started_ms, coalesce(finished_ms, 0),"
              " CASE WHEN json_valid(report_json) THEN json_extract(report_json, '$.totalChecked',"
              " '$.failedJobsFound', '$.instancesRecreated', '$.errors', '$.deferred') END"
              " FROM runs ORDER BY started_ms DESC, run_id DESC LIMIT :limit",
          [STMT_CONSOLE_EVENT_COUNT] = "SELECT state, count(*) FROM events GROUP BY state",
          [STMT_CONSOLE_HOURLY] =
              "SELECT updated_ms / 3600000 * 3600000 AS hour,"
              " CASE state WHEN 'running' THEN 'created' ELSE state END AS st, adopted, count(*),"
              " sum(updated_ms - created_ms), max(updated_ms - created_ms)"
              " FROM ledger WHERE updated_ms >= :since AND state NOT IN (" STORE_OPEN_STATES ")"
              " GROUP BY hour, st, adopted ORDER BY hour, st, adopted",
          [STMT_READY_PROBE] = "INSERT INTO ready_probe (id, at_ms) VALUES (1, :now)"
                               " ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
        };

sqlite3_stmt *store_stmt(struct nrd_sqlite *st, enum store_stmt id)
{
  if (st->stmts[id])
    return st->stmts[id];
  int rc =
      sqlite3_prepare_v3(st->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &st->stmts[id], NULL);
  if (rc != SQLITE_OK) {
    snprintf(st->last_error, sizeof st->last_error, "%s", sqlite3_errmsg(st->db));
    LOG_ERROR_AT(NRD_FAULT_OURS, "store: cannot prepare statement", "#stmt", NRD_I64(id), "error",
                 sqlite3_errmsg(st->db));
    sqlite3_finalize(st->stmts[id]);
    st->stmts[id] = NULL;
  }
  return st->stmts[id];
}

void store_done(sqlite3_stmt *s)
{
  if (!s)
    return;
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

int store_fail(struct nrd_sqlite *st, int rc, const char *what)
{
  int primary = rc & 0xff;
  /* Kept for both: a write that stays busy past its retries is reported
   * (store unavailable: ...) with SQLite's own words too. */
  snprintf(st->last_error, sizeof st->last_error, "%s", sqlite3_errmsg(st->db));
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    LOG_DEBUG("store: database busy", "op", what);
    return NRD_BUSY;
  }
  LOG_ERROR_AT(NRD_FAULT_DISK, "store: sqlite error", "op", what, "error", sqlite3_errmsg(st->db),
               "#code", NRD_I64(rc));
  return NRD_ERR;
}

int store_step_write(struct nrd_sqlite *st, sqlite3_stmt *s, const char *what, int *changes)
{
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE)
    return store_fail(st, rc, what);
  if (changes)
    *changes = sqlite3_changes(st->db);
  return NRD_OK;
}

/* Runs BEGIN, COMMIT or ROLLBACK. */
static int tx_control(struct nrd_sqlite *st, enum store_stmt id, const char *what)
{
  sqlite3_stmt *s = store_stmt(st, id);
  if (!s)
    return NRD_ERR;
  int rc = store_step_write(st, s, what, NULL);
  store_done(s);
  return rc;
}

static void tx_rollback(struct nrd_sqlite *st)
{
  /* A failed statement may already have rolled the transaction back. */
  if (!sqlite3_get_autocommit(st->db))
    tx_control(st, STMT_ROLLBACK, "rollback");
}

/* The write transactions of this process queue on this lock rather than in
 * SQLite's busy handler, which polls in sleeps of 1 ms and more: a waiting
 * worker starts the moment the transaction before it commits. Another
 * process on the same file still meets busy_timeout and the retries. */
static pthread_mutex_t g_write_lock = PTHREAD_MUTEX_INITIALIZER;

/* One attempt of a write transaction, with g_write_lock held. */
static int tx_once(struct nrd_sqlite *st, store_tx_fn fn, void *arg)
{
  int rc = tx_control(st, STMT_BEGIN, "begin immediate");
  if (rc != NRD_OK)
    return rc;
  rc = fn(st, arg);
  if (rc == NRD_OK || rc == NRD_NONE) {
    int crc = tx_control(st, STMT_COMMIT, "commit");
    if (crc != NRD_OK) {
      tx_rollback(st);
      rc = crc;
    }
  } else {
    tx_rollback(st);
  }
  return rc;
}

int store_tx(struct nrd_sqlite *st, store_tx_fn fn, void *arg)
{
  int rc = NRD_BUSY;
  st->last_error[0] = '\0'; /* the message reported is this transaction's */
  for (int attempt = 0; attempt < STORE_TX_ATTEMPTS && rc == NRD_BUSY; attempt++) {
    if (attempt > 0)
      nrd_sleep_ms(10 * attempt + (int64_t)(nrd_random_unit() * 20));
    pthread_mutex_lock(&g_write_lock);
    rc = tx_once(st, fn, arg);
    pthread_mutex_unlock(&g_write_lock);
  }
  return rc;
}

struct write_one {
  sqlite3_stmt *s;
  const char *what;
  int changes;
};

static int write_one_fn(struct nrd_sqlite *st, void *arg)
{
  struct write_one *w = arg;
  int rc = store_step_write(st, w->s, w->what, &w->changes);
  sqlite3_reset(w->s); /* bindings stay for a retry */
  return rc;
}

int store_write_one(struct nrd_sqlite *st, sqlite3_stmt *s, const char *what, int *changes)
{
  struct write_one w = { .s = s, .what = what, .changes = 0 };
  int rc = store_tx(st, write_one_fn, &w);
  store_done(s);
  if (changes)
    *changes = w.changes;
  if (rc == NRD_OK && w.changes == 0)
    rc = NRD_NONE;
  return rc;
}

int store_write_bound(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                      int *changes)
{
  if (!bound) {
    store_done(s);
    return NRD_ERR;
  }
  return store_write_one(st, s, what, changes);
}

int store_step_bound(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                     int *changes)
{
  int n = 0;
  int rc = bound ? store_step_write(st, s, what, &n) : NRD_ERR;
  store_done(s);
  if (changes)
    *changes = n;
  return rc == NRD_OK && n == 0 ? NRD_NONE : rc;
}

int store_step_with_event(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                          const struct nrd_event *event)
{
  int rc = store_step_bound(st, s, bound, what, NULL);
  if (rc != NRD_OK || !event)
    return rc;
  rc = store_event_insert_in_tx(st, event);
  /* An event already in the outbox (same id) is not a failure: at least once. */
  return rc == NRD_NONE ? NRD_OK : rc;
}

int store_each_row(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                   store_row_fn row, void *ctx)
{
  int rc = NRD_ERR;
  for (bool more = bound; more;) {
    int src = sqlite3_step(s);
    more = false;
    if (src == SQLITE_DONE)
      rc = NRD_OK;
    else if (src != SQLITE_ROW)
      rc = store_fail(st, src, what);
    else
      more = !row || row(s, ctx);
  }
  store_done(s);
  return rc;
}

int store_one_row(struct nrd_sqlite *st, sqlite3_stmt *s, bool bound, const char *what,
                  store_row_fn row, void *out)
{
  int rc = NRD_ERR;
  if (bound) {
    int src = sqlite3_step(s);
    if (src == SQLITE_DONE)
      rc = NRD_NONE;
    else if (src != SQLITE_ROW)
      rc = store_fail(st, src, what);
    else if (!row || row(s, out))
      rc = NRD_OK;
  }
  store_done(s);
  return rc;
}

void *store_rows_next(struct store_rows *r)
{
  if (r->max && r->len >= r->max)
    return NULL;
  if (r->len == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 16;
    r->arr = nrd_xrealloc(r->arr, r->cap * r->elem);
  }
  void *slot = (char *)r->arr + r->len++ * r->elem;
  memset(slot, 0, r->elem);
  return slot;
}

static int param_index(sqlite3_stmt *s, const char *name)
{
  int i = sqlite3_bind_parameter_index(s, name);
  if (i == 0)
    LOG_ERROR_AT(NRD_FAULT_OURS, "store: no such statement parameter", "name", name);
  return i;
}

/* Binds v (NULL: SQL NULL) with SQLite's copy rule how. */
static bool bind_text_how(sqlite3_stmt *s, const char *name, const char *v,
                          sqlite3_destructor_type how)
{
  int i = param_index(s, name);
  if (i == 0)
    return false;
  if (!v)
    return sqlite3_bind_null(s, i) == SQLITE_OK;
  return sqlite3_bind_text(s, i, v, -1, how) == SQLITE_OK;
}

bool store_bind_text(sqlite3_stmt *s, const char *name, const char *v)
{
  return bind_text_how(s, name, v, SQLITE_TRANSIENT);
}

bool store_bind_text_static(sqlite3_stmt *s, const char *name, const char *v)
{
  return bind_text_how(s, name, v, SQLITE_STATIC);
}

bool store_bind_text_opt(sqlite3_stmt *s, const char *name, const char *v)
{
  return store_bind_text(s, name, (v && *v) ? v : NULL);
}

bool store_bind_i64(sqlite3_stmt *s, const char *name, int64_t v)
{
  int i = param_index(s, name);
  return i != 0 && sqlite3_bind_int64(s, i, v) == SQLITE_OK;
}

char *store_col_text(sqlite3_stmt *s, int col)
{
  const unsigned char *t = sqlite3_column_text(s, col);
  return t ? nrd_xstrdup((const char *)t) : NULL;
}

static const char *row_text(const struct store_row *row, int col)
{
  return (const char *)sqlite3_column_text(((const struct sqlite_row *)row)->s, col);
}

static int64_t row_i64(const struct store_row *row, int col)
{
  return sqlite3_column_int64(((const struct sqlite_row *)row)->s, col);
}

static bool row_flag(const struct store_row *row, int col)
{
  return row_i64(row, col) != 0;
}

void store_row_init(struct sqlite_row *r, sqlite3_stmt *s)
{
  *r = (struct sqlite_row){ { row_text, row_i64, row_flag }, s };
}

bool store_shape_row(sqlite3_stmt *s, const struct store_shape *sh, void *out)
{
  struct sqlite_row r;
  store_row_init(&r, s);
  store_shape_read(sh, &r.row, out);
  return true;
}

struct shaped {
  const struct store_shape *sh;
  void *out;
};

static bool read_shaped(sqlite3_stmt *s, void *ctx)
{
  const struct shaped *x = ctx;
  return store_shape_row(s, x->sh, x->out);
}

int store_get_shaped(struct nrd_sqlite *st, enum store_stmt id, const char *param, const char *key,
                     const char *what, const struct store_shape *sh, void *out, size_t size)
{
  memset(out, 0, size);
  struct shaped x = { sh, out };
  sqlite3_stmt *s = store_stmt(st, id);
  bool bound = s && store_bind_text(s, param, key);
  return store_one_row(st, s, bound, what, read_shaped, &x);
}

/* Creates dir and its missing parents with mode 0700 (umask-proof). */
static int make_dirs(char *dir, char *err, size_t errlen)
{
  struct stat sb;
  if (stat(dir, &sb) == 0) {
    if (S_ISDIR(sb.st_mode))
      return 0;
    snprintf(err, errlen, "%s exists and is not a directory", dir);
    return -1;
  }
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    int rc = make_dirs(dir, err, errlen);
    *slash = '/';
    if (rc != 0)
      return rc;
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    snprintf(err, errlen, "cannot create directory %s: %s", dir, strerror(errno));
    return -1;
  }
  if (chmod(dir, 0700) != 0) {
    snprintf(err, errlen, "cannot set mode 0700 on %s: %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

/* Makes sure the folder and the file exist; a file created here gets 0600. */
static int prepare_file(const char *path, char *err, size_t errlen)
{
  int rc = -1;
  char *dir = nrd_xstrdup(path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = '\0';
    if (make_dirs(dir, err, errlen) != 0)
      goto out;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      rc = 0;
      goto out;
    }
    snprintf(err, errlen, "cannot create database %s: %s", path, strerror(errno));
    goto out;
  }
  if (fchmod(fd, 0600) != 0) {
    snprintf(err, errlen, "cannot set mode 0600 on %s: %s", path, strerror(errno));
    close(fd);
    goto out;
  }
  close(fd);
  rc = 0;
out:
  free(dir);
  return rc;
}

static int journal_mode_cb(void *arg, int ncols, char **values, char **names)
{
  char *mode = arg;
  if (ncols > 0 && values[0])
    snprintf(mode, 16, "%s", values[0]);
  return 0;
}

/* Runs sql; SQLITE_BUSY is tried again a few times. Two processes opening a
 * new database at once both ask for WAL, and SQLite refuses one of them at
 * once, without its busy handler (the lock cannot be waited for without a
 * deadlock): the second try finds WAL in place. */
static int exec_retry(struct nrd_sqlite *st, const char *sql,
                      int (*cb)(void *, int, char **, char **), void *arg)
{
  int rc = sqlite3_exec(st->db, sql, cb, arg, NULL);
  for (int attempt = 1; (rc & 0xff) == SQLITE_BUSY && attempt < STORE_TX_ATTEMPTS; attempt++) {
    nrd_sleep_ms(10 * attempt + (int64_t)(nrd_random_unit() * 20));
    rc = sqlite3_exec(st->db, sql, cb, arg, NULL);
  }
  return rc;
}

/* A page cache of 128 KB per connection (SQLite's default is 2 MB): one
 * connection per worker, and in WAL mode each one's cache is dropped anyway
 * whenever another commits. Against 512 KB: less peak RSS, a sync in the
 * same time at a little more CPU, its index pages read again from the OS
 * (measured: BENCHMARKS.md, "Figures behind the code"). */
static int set_pragmas(struct nrd_sqlite *st, char *err, size_t errlen)
{
  char mode[16] = "";
  sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
  if (exec_retry(st, "PRAGMA journal_mode=WAL", journal_mode_cb, mode) != SQLITE_OK ||
      exec_retry(st,
                 "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                 " PRAGMA cache_size=-128",
                 NULL, NULL) != SQLITE_OK) {
    snprintf(err, errlen, "cannot configure database: %s", sqlite3_errmsg(st->db));
    return -1;
  }
  if (strcmp(mode, "wal") != 0) {
    snprintf(err, errlen, "database refused WAL journal mode (got %s)", mode);
    return -1;
  }
  return 0;
}

/* Set before SQLite initializes (afterwards the calls are refused and change
 * nothing). Memory statistics take a process-wide mutex on every allocation
 * SQLite makes: off. No up-front page-cache block per connection (about
 * 100 KB each, 17 connections): pages are allocated as they are used. */
static void sqlite_configure(void)
{
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
}

int nrd_sqlite_open(const char *path, struct nrd_sqlite **out, unsigned *applied, char *err,
                    size_t errlen)
{
  static pthread_once_t configured = PTHREAD_ONCE_INIT;
  int rc = NRD_ERR;
  int src;
  struct nrd_sqlite *st = NULL;
  *out = NULL;
  if (applied)
    *applied = 0;
  if (!path || !*path) {
    snprintf(err, errlen, "database path is empty");
    goto out;
  }
  if (prepare_file(path, err, errlen) != 0)
    goto out;
  pthread_once(&configured, sqlite_configure);
  st = nrd_xcalloc(1, sizeof *st);
  src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
  if (src != SQLITE_OK) {
    snprintf(err, errlen, "cannot open database %s: %s", path,
             st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src));
    goto out;
  }
  sqlite3_extended_result_codes(st->db, 1);
  if (set_pragmas(st, err, errlen) != 0)
    goto out;
  rc = store_migrate(st, applied, err, errlen);
out:
  if (rc != NRD_OK) {
    nrd_sqlite_close(st);
    return rc;
  }
  *out = st;
  return NRD_OK;
}

void nrd_sqlite_close(struct nrd_sqlite *st)
{
  if (!st)
    return;
  for (int i = 0; i < STMT_COUNT; i++)
    sqlite3_finalize(st->stmts[i]);
  sqlite3_close_v2(st->db);
  free(st);
}

int nrd_sqlite_schema_version(struct nrd_sqlite *st, int *version)
{
  sqlite3_stmt *s = store_stmt(st, STMT_SCHEMA_VERSION);
  if (!s)
    return NRD_ERR;
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *version = sqlite3_column_int(s, 0);
    rc = NRD_OK;
  } else {
    rc = store_fail(st, rc, "schema version");
  }
  store_done(s);
  return rc;
}

void nrd_sqlite_release_memory(struct nrd_sqlite *st)
{
  sqlite3_db_release_memory(st->db);
}

int nrd_sqlite_ping(struct nrd_sqlite *st)
{
  int version;
  return nrd_sqlite_schema_version(st, &version);
}

const char *nrd_sqlite_last_error(const struct nrd_sqlite *st)
{
  return st->last_error[0] ? st->last_error : "unknown error";
}

int nrd_sqlite_probe_write(struct nrd_sqlite *st, int64_t now_ms)
{
  /* Never waits: another transaction in hand (ours or another process's)
   * says nothing of the disk, so the caller keeps what it knew. */
  if (pthread_mutex_trylock(&g_write_lock) != 0)
    return NRD_BUSY;
  sqlite3_stmt *s = store_stmt(st, STMT_READY_PROBE);
  int rc = NRD_ERR;
  if (s && store_bind_i64(s, ":now", now_ms)) {
    sqlite3_busy_timeout(st->db, 0); /* nor for another process's */
    rc = tx_once(st, write_one_fn, &(struct write_one){ .s = s, .what = "ready probe" });
    sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
  }
  if (s)
    store_done(s);
  pthread_mutex_unlock(&g_write_lock);
  return rc;
}

struct check_result {
  char *msg;
  size_t len;
  bool ok;
};

static int quick_check_cb(void *arg, int ncols, char **values, char **names)
{
  struct check_result *r = arg;
  (void)names;
  if (ncols > 0 && values[0] && strcmp(values[0], "ok") != 0 && r->ok) {
    r->ok = false;
    snprintf(r->msg, r->len, "%s", values[0]);
  }
  return 0;
}

int nrd_sqlite_quick_check(struct nrd_sqlite *st, char *msg, size_t msglen)
{
  struct check_result r = { .msg = msg, .len = msglen, .ok = true };
  char *err = NULL;
  int rc = sqlite3_exec(st->db, "PRAGMA quick_check", quick_check_cb, &r, &err);
  if (rc != SQLITE_OK) {
    snprintf(msg, msglen, "%s", err ? err : sqlite3_errstr(rc));
    sqlite3_free(err);
    return NRD_ERR;
  }
  return r.ok ? NRD_OK : NRD_ERR;
}
