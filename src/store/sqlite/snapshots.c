/* Instance snapshots: the settled-status upsert and the read back. */

#include "store_internal.h"
#include "store_lists.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/util.h"

/* ---- upsert ---- */

/* The parameters of STMT_SNAPSHOT_UPSERT, looked up once per page. */
enum {
  P_ID,
  P_NAME,
  P_STATUS,
  P_CLUSTER_ID,
  P_CLUSTER_NAME,
  P_PRODUCT_ID,
  P_PRODUCT_NAME,
  P_IMAGE_URL,
  P_IMAGE_AUTH_ID,
  P_COMMAND,
  P_GPU_NUM,
  P_ROOTFS_SIZE,
  P_KIND,
  P_BILLING_MODE,
  P_ENTRYPOINT,
  P_NETWORK_ID,
  P_MIN_CUDA,
  P_PORTS,
  P_ENVS,
  P_MOUNTS,
  P_TOOLS,
  P_RAW,
  P_CREATED_AT,
  P_NOW,
  P_RUN,
  P_SETTLED,
  P_COUNT
};
static const char *const upsert_params[P_COUNT] = {
  ":id",
  ":name",
  ":status",
  ":cluster_id",
  ":cluster_name",
  ":product_id",
  ":product_name",
  ":image_url",
  ":image_auth_id",
  ":command",
  ":gpu_num",
  ":rootfs_size",
  ":kind",
  ":billing_mode",
  ":entrypoint",
  ":network_id",
  ":min_cuda_version",
  ":ports",
  ":envs",
  ":mounts",
  ":tools",
  ":raw",
  ":created_at",
  ":now",
  ":run",
  ":settled",
};

struct upsert_ctx {
  struct store_upsert u;
  int param[P_COUNT];
};

/* Binds text without a copy: every string outlives the step, and the
 * bindings are cleared right after it. "" binds NULL when empty_is_null. */
static bool bind_text(sqlite3_stmt *s, int i, const char *v, bool empty_is_null)
{
  if (!v || (empty_is_null && !*v))
    return sqlite3_bind_null(s, i) == SQLITE_OK;
  return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) == SQLITE_OK;
}

static int upsert_one(struct nrd_sqlite *st, sqlite3_stmt *s, struct upsert_ctx *ctx,
                      const struct nrd_instance *in)
{
  const int *p = ctx->param;
  const char *opt[] = {
    [P_NAME] = in->name,
    [P_STATUS] = in->status,
    [P_CLUSTER_ID] = in->cluster_id,
    [P_CLUSTER_NAME] = in->cluster_name,
    [P_PRODUCT_ID] = in->product_id,
    [P_PRODUCT_NAME] = in->product_name,
    [P_IMAGE_URL] = in->image_url,
    [P_IMAGE_AUTH_ID] = in->image_auth_id,
    [P_COMMAND] = in->command,
    [P_GPU_NUM] = in->gpu_num,
    [P_ROOTFS_SIZE] = in->rootfs_size,
    [P_KIND] = in->kind,
    [P_BILLING_MODE] = in->billing_mode,
    [P_ENTRYPOINT] = in->entrypoint,
    [P_NETWORK_ID] = in->network_id,
    [P_MIN_CUDA] = in->min_cuda_version,
  };
  bool ok = bind_text(s, p[P_ID], in->id, false);
  for (int i = P_NAME; i <= P_MIN_CUDA && ok; i++)
    ok = bind_text(s, p[i], opt[i], true);
  struct store_upsert *u = &ctx->u;
  ok = ok && bind_text(s, p[P_PORTS], store_upsert_list(u, in, STORE_LIST_PORTS), false) &&
       bind_text(s, p[P_ENVS], store_upsert_list(u, in, STORE_LIST_ENVS), false) &&
       bind_text(s, p[P_MOUNTS], store_upsert_list(u, in, STORE_LIST_MOUNTS), false) &&
       bind_text(s, p[P_TOOLS], store_upsert_list(u, in, STORE_LIST_TOOLS), false) &&
       bind_text(s, p[P_RAW], in->raw_json, true) &&
       sqlite3_bind_int64(s, p[P_NOW], u->now_ms) == SQLITE_OK &&
       bind_text(s, p[P_RUN], u->run_id, false) &&
       sqlite3_bind_int64(s, p[P_SETTLED], nrd_status_is_settled(in->status)) == SQLITE_OK;
  if (ok && in->created_at > 0)
    ok = sqlite3_bind_int64(s, p[P_CREATED_AT], in->created_at) == SQLITE_OK;
  int rc = NRD_ERR;
  if (ok)
    rc = store_step_write(st, s, "snapshot upsert", NULL);
  else
    LOG_ERROR_AT(NRD_FAULT_OURS, "store: cannot bind snapshot upsert");
  store_done(s);
  return rc;
}

static int upsert_fn(struct nrd_sqlite *st, void *arg)
{
  struct upsert_ctx *ctx = arg;
  sqlite3_stmt *s = store_stmt(st, STMT_SNAPSHOT_UPSERT);
  if (!s)
    return NRD_ERR;
  for (int i = 0; i < P_COUNT; i++) {
    ctx->param[i] = sqlite3_bind_parameter_index(s, upsert_params[i]);
    if (ctx->param[i] == 0) {
      LOG_ERROR_AT(NRD_FAULT_OURS, "store: no such statement parameter", "name", upsert_params[i]);
      return NRD_ERR;
    }
  }
  for (;;) {
    const struct nrd_instance *items;
    size_t n;
    int more = store_upsert_pull(&ctx->u, &items, &n);
    if (more <= 0)
      return more == 0 ? NRD_OK : NRD_ERR; /* dropped: rolled back */
    for (size_t i = 0; i < n; i++) {
      const struct nrd_instance *in = &items[i];
      if (!in->id || !*in->id) {
        LOG_WARN_AT(NRD_FAULT_NOVITA, "store: instance without id not snapshotted");
        continue;
      }
      int rc = upsert_one(st, s, ctx, in);
      if (rc != NRD_OK)
        return rc == NRD_BUSY ? NRD_ERR : rc; /* the runs taken cannot be taken again */
    }
  }
}

int nrd_sqlite_snapshots_upsert_runs(struct nrd_sqlite *st, nrd_snapshot_run_fn next, void *ud,
                                     const char *run_id, int64_t now_ms)
{
  struct upsert_ctx ctx;
  store_upsert_init(&ctx.u, next, ud, run_id, now_ms);
  return store_upsert_finish(&ctx.u, store_tx(st, upsert_fn, &ctx));
}

int nrd_sqlite_snapshots_upsert(struct nrd_sqlite *st, const struct nrd_instance *items, size_t n,
                                const char *run_id, int64_t now_ms)
{
  struct store_one_run r = { .items = items, .n = n };
  if (n == 0)
    return NRD_OK;
  return nrd_sqlite_snapshots_upsert_runs(st, store_one_run_next, &r, run_id, now_ms);
}

/* ---- reads ---- */

/* store_one_row's reader of the snapshot query (the order of store_codec.h):
 * a broken row is logged and left empty. */
static bool read_snapshot_row(sqlite3_stmt *s, void *instance)
{
  struct sqlite_row r;
  store_row_init(&r, s);
  return store_snapshot_decode(&r.row, instance);
}

int nrd_sqlite_snapshot_get(struct nrd_sqlite *st, const char *instance_id,
                            struct nrd_instance *out)
{
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = store_stmt(st, STMT_SNAPSHOT_GET);
  bool bound = s && store_bind_text(s, ":id", instance_id);
  return store_one_row(st, s, bound, "snapshot get", read_snapshot_row, out);
}

int nrd_sqlite_snapshot_seen_since(struct nrd_sqlite *st, const char *instance_id, int64_t since_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_SNAPSHOT_SEEN);
  bool bound = s && store_bind_text(s, ":id", instance_id) && store_bind_i64(s, ":since", since_ms);
  return store_one_row(st, s, bound, "snapshot seen", NULL, NULL);
}
