/* Brakes that outlive a run: the account brake and Novita's Retry-After. */
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

int nrd_sqlite_brake_get(struct nrd_sqlite *st, const char *name, struct nrd_brake *out)
{
  return store_get_shaped(st, STMT_BRAKE_GET, ":name", name, "brake get", &store_brake_shape, out,
                          sizeof *out);
}

int nrd_sqlite_brake_set(struct nrd_sqlite *st, const char *name, const struct nrd_brake *b,
                         int64_t now_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_BRAKE_SET);
  bool bound = s && store_bind_text(s, ":name", name) && store_bind_text(s, ":reason", b->reason) &&
               store_bind_text(s, ":message", b->message) &&
               store_bind_text(s, ":job", b->job_id) && store_bind_i64(s, ":until", b->until_ms) &&
               store_bind_i64(s, ":now", now_ms);
  int rc = store_write_bound(st, s, bound, "brake set", NULL);
  return rc == NRD_NONE ? NRD_ERR : rc;
}

int nrd_sqlite_brake_clear(struct nrd_sqlite *st, const char *name)
{
  sqlite3_stmt *s = store_stmt(st, STMT_BRAKE_CLEAR);
  bool bound = s && store_bind_text(s, ":name", name);
  int rc = store_write_bound(st, s, bound, "brake clear", NULL);
  return rc == NRD_NONE ? NRD_OK : rc;
}
