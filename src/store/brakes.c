/* Brakes that outlive a run: the account brake and Novita's Retry-After. */
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

void nrd_brake_cleanup(struct nrd_brake *b)
{
  if (!b)
    return;
  free(b->reason);
  free(b->message);
  free(b->job_id);
  memset(b, 0, sizeof *b);
}

int nrd_store_brake_get(struct nrd_store *st, const char *name, struct nrd_brake *out)
{
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = store_stmt(st, STMT_BRAKE_GET);
  if (!s)
    return NRD_ERR;
  int rc = NRD_ERR;
  if (!store_bind_text(s, ":name", name))
    goto out;
  int src = sqlite3_step(s);
  if (src == SQLITE_ROW) {
    out->reason = store_col_text(s, 0);
    out->message = store_col_text(s, 1);
    out->job_id = store_col_text(s, 2);
    out->until_ms = sqlite3_column_int64(s, 3);
    out->set_ms = sqlite3_column_int64(s, 4);
    rc = NRD_OK;
  } else if (src == SQLITE_DONE) {
    rc = NRD_NONE;
  } else {
    rc = store_fail(st, src, "brake get");
  }
out:
  store_done(s);
  return rc;
}

int nrd_store_brake_set(struct nrd_store *st, const char *name, const struct nrd_brake *b,
                        int64_t now_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_BRAKE_SET);
  if (!s)
    return NRD_ERR;
  if (!store_bind_text(s, ":name", name) || !store_bind_text(s, ":reason", b->reason) ||
      !store_bind_text(s, ":message", b->message) || !store_bind_text(s, ":job", b->job_id) ||
      !store_bind_i64(s, ":until", b->until_ms) || !store_bind_i64(s, ":now", now_ms)) {
    store_done(s);
    return NRD_ERR;
  }
  int rc = store_write_one(st, s, "brake set", NULL);
  return rc == NRD_NONE ? NRD_ERR : rc;
}

int nrd_store_brake_clear(struct nrd_store *st, const char *name)
{
  sqlite3_stmt *s = store_stmt(st, STMT_BRAKE_CLEAR);
  if (!s)
    return NRD_ERR;
  if (!store_bind_text(s, ":name", name)) {
    store_done(s);
    return NRD_ERR;
  }
  int rc = store_write_one(st, s, "brake clear", NULL);
  return rc == NRD_NONE ? NRD_OK : rc;
}
