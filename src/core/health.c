/* The database's health as /ready sees it, and as a run checks before it
 * starts: a SQLite file is the one opened, the database passed its start-up
 * check (SQLite's PRAGMA quick_check; PostgreSQL takes writes), it answers
 * a read and takes a write. */
#include <stdio.h>
#include <sys/stat.h>

#include "core_internal.h"
#include "nrd/log.h"
#include "nrd/util.h"

/* The file's identity for nrd_runner_db_file_ok (a store that is a file),
 * and the start-up check: a database that fails it keeps /ready at 503. */
void nrd_runner_startup_checks(struct nrd_runner *r)
{
  struct stat sb;
  char msg[300];
  const char *file = nrd_store_file(r->query_store);
  if (file && stat(file, &sb) == 0) {
    r->db_dev = sb.st_dev;
    r->db_ino = sb.st_ino;
  }
  if (nrd_store_quick_check(r->query_store, msg, sizeof(msg)) != NRD_OK) {
    r->integrity_failed = true;
    LOG_ERROR("database integrity check failed (PRAGMA quick_check): /ready answers 503; "
              "restore the database from a backup",
              "path", file, "detail", msg);
  }
}

bool nrd_runner_db_file_ok(struct nrd_runner *r, char *why, size_t whylen)
{
  struct stat sb;
  const char *file = nrd_store_file(r->query_store);
  if (!file)
    return true; /* not a file: nothing to be replaced under us */
  if (stat(file, &sb) != 0)
    snprintf(why, whylen, "the database file %s was deleted or moved under the running service",
             file);
  else if (sb.st_dev != r->db_dev || sb.st_ino != r->db_ino)
    snprintf(why, whylen,
             "the database file %s was replaced under the running service "
             "(another inode)",
             file);
  else
    return true;
  if (!atomic_exchange(&r->db_file_logged, true))
    LOG_ERROR("database file changed: /ready answers 503 and runs stop until the file opened "
              "is back (or a restart)",
              "detail", why);
  return false;
}

/* Ready: the start-up integrity check passed, the file is the one opened,
 * it answers a read, and a write went through (probed at most once a
 * second). Called with query_lock held. */
static bool store_ready_locked(struct nrd_runner *r)
{
  char why[300];
  if (r->integrity_failed || !nrd_runner_db_file_ok(r, why, sizeof(why)))
    return false;
  if (nrd_store_ping(r->query_store) != NRD_OK)
    return false;
  int64_t now = nrd_mono_ms();
  if (r->probe_mono_ms == 0 || now - r->probe_mono_ms >= 1000) {
    /* The HTTP thread never waits on a write: while another transaction is
     * under way the last answer stands, and the next /ready probes again. */
    int rc = nrd_store_probe_write(r->query_store, nrd_now_ms());
    if (rc == NRD_BUSY)
      return r->probe_ok || r->probe_mono_ms == 0;
    bool was = r->probe_ok || r->probe_mono_ms == 0;
    r->probe_mono_ms = now;
    r->probe_ok = rc == NRD_OK;
    if (!r->probe_ok && was)
      LOG_ERROR("the database cannot be written: /ready answers 503", "error",
                nrd_store_last_error(r->query_store));
    else if (r->probe_ok && !was)
      LOG_INFO("the database can be written again");
  }
  return r->probe_ok;
}

bool nrd_runner_store_ok(struct nrd_runner *r)
{
  pthread_mutex_lock(&r->query_lock);
  bool ok = store_ready_locked(r);
  pthread_mutex_unlock(&r->query_lock);
  return ok;
}
