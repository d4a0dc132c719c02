/* Instance snapshots on PostgreSQL: the settled-status upsert and the read
 * back, as src/store/sqlite/snapshots.c does for SQLite; the list columns are the
 * same JSON text (store_lists.h). */

#include "pg_internal.h"
#include "store_lists.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/util.h"
/* ---- upsert ---- */

/* Config columns follow the settled rule: refreshed only when $22 (settled),
 * and never from an absent (NULL) value. */
/* The statement laid out as SQL reads. */
/* clang-format off */
#define SETTLED(col) \
  #col " = CASE WHEN $22::boolean THEN coalesce(excluded." #col ", s." #col ") ELSE s." #col " END"
static const char sql_upsert[] =
    "INSERT INTO snapshots AS s (instance_id, name, status, cluster_id, cluster_name,"
    " product_id, product_name, image_url, image_auth_id, command, gpu_num, rootfs_size,"
    " kind, billing_mode, ports_json, envs_json, mounts_json, raw_json, novita_created_at,"
    " first_seen_ms, last_seen_ms, seen_run, config_updated_ms, entrypoint, network_id,"
    " min_cuda_version, tools_json)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,"
    " $19, $20, $20, $21, $20, $23, $24, $25, $26)"
    " ON CONFLICT (instance_id) DO UPDATE SET"
    " status = coalesce(excluded.status, s.status),"
    " last_seen_ms = excluded.last_seen_ms,"
    " seen_run = excluded.seen_run, "
    SETTLED(name) ", " SETTLED(cluster_id) ", " SETTLED(cluster_name) ", "
    SETTLED(product_id) ", " SETTLED(product_name) ", " SETTLED(image_url) ", "
    SETTLED(image_auth_id) ", " SETTLED(command) ", " SETTLED(gpu_num) ", "
    SETTLED(rootfs_size) ", " SETTLED(kind) ", " SETTLED(billing_mode) ", "
    SETTLED(ports_json) ", " SETTLED(envs_json) ", " SETTLED(mounts_json) ", "
    SETTLED(raw_json) ", " SETTLED(novita_created_at) ", " SETTLED(entrypoint) ", "
    SETTLED(network_id) ", " SETTLED(min_cuda_version) ", " SETTLED(tools_json) ","
    " config_updated_ms = CASE WHEN $22::boolean THEN excluded.config_updated_ms"
    " ELSE s.config_updated_ms END";
#undef SETTLED
/* clang-format on */

struct upsert_ctx {
  struct store_upsert u;
  const struct nrd_instance *page; /* the run being written */
};

/* The upsert's parameters for instance i of the page (false: no id, not
 * snapshotted). The list buffers are reused: libpq copies each statement
 * out as it is sent. */
static bool upsert_fill(size_t i, struct pg_params *p, void *ud)
{
  struct upsert_ctx *ctx = ud;
  const struct nrd_instance *in = &ctx->page[i];
  if (!in->id || !*in->id) {
    LOG_WARN_AT(NRD_FAULT_NOVITA, "store: instance without id not snapshotted");
    return false;
  }
  pgp_text(p, in->id);
  const char *opt[] = {
    in->name,         in->status,    in->cluster_id,    in->cluster_name, in->product_id,
    in->product_name, in->image_url, in->image_auth_id, in->command,      in->gpu_num,
    in->rootfs_size,  in->kind,      in->billing_mode,
  };
  for (size_t k = 0; k < sizeof opt / sizeof opt[0]; k++)
    pgp_text_opt(p, opt[k]);
  pgp_text(p, store_upsert_list(&ctx->u, in, STORE_LIST_PORTS));
  pgp_text(p, store_upsert_list(&ctx->u, in, STORE_LIST_ENVS));
  pgp_text(p, store_upsert_list(&ctx->u, in, STORE_LIST_MOUNTS));
  pgp_text_opt(p, in->raw_json);
  if (in->created_at > 0)
    pgp_i64(p, in->created_at);
  else
    pgp_text(p, NULL);
  pgp_i64(p, ctx->u.now_ms);
  pgp_text(p, ctx->u.run_id);
  pgp_bool(p, nrd_status_is_settled(in->status));
  pgp_text_opt(p, in->entrypoint);
  pgp_text_opt(p, in->network_id);
  pgp_text_opt(p, in->min_cuda_version);
  pgp_text(p, store_upsert_list(&ctx->u, in, STORE_LIST_TOOLS));
  return true;
}

/* Each page's upserts go pipelined: a round trip per chunk of instances,
 * not per instance (a sync of 2000 made 2000 round trips). */
static int upsert_fn(struct nrd_pg *pg, void *arg)
{
  struct upsert_ctx *ctx = arg;
  for (;;) {
    const struct nrd_instance *items;
    size_t n;
    int more = store_upsert_pull(&ctx->u, &items, &n);
    if (more <= 0)
      return more == 0 ? NRD_OK : NRD_ERR; /* dropped: rolled back */
    ctx->page = items;
    int rc = pg_write_pipelined(pg, sql_upsert, n, upsert_fill, ctx, "snapshot upsert");
    if (rc != NRD_OK)
      return rc == NRD_BUSY ? NRD_ERR : rc; /* the runs taken cannot be taken again */
  }
}

int nrd_pg_snapshots_upsert_runs(struct nrd_pg *pg, nrd_snapshot_run_fn next, void *ud,
                                 const char *run_id, int64_t now_ms)
{
  struct upsert_ctx ctx = { 0 };
  store_upsert_init(&ctx.u, next, ud, run_id, now_ms);
  return store_upsert_finish(&ctx.u, pg_tx(pg, upsert_fn, &ctx));
}

int nrd_pg_snapshots_upsert(struct nrd_pg *pg, const struct nrd_instance *items, size_t n,
                            const char *run_id, int64_t now_ms)
{
  struct store_one_run r = { .items = items, .n = n };
  if (n == 0)
    return NRD_OK;
  return nrd_pg_snapshots_upsert_runs(pg, store_one_run_next, &r, run_id, now_ms);
}

/* ---- reads ---- */

/* pg_one_row's reader of the snapshot query (the order of store_codec.h): a
 * broken row is logged and left empty. */
static bool read_snapshot_row(const PGresult *r, int i, void *instance)
{
  struct pg_row pr;
  pg_row_init(&pr, r, i);
  return store_snapshot_decode(&pr.row, instance);
}

int nrd_pg_snapshot_get(struct nrd_pg *pg, const char *instance_id, struct nrd_instance *out)
{
  memset(out, 0, sizeof *out);
  struct pg_params p = { 0 };
  pgp_text(&p, instance_id);
  return pg_one_row(pg,
                    "SELECT instance_id, name, status, cluster_id, cluster_name, product_id,"
                    " product_name, image_url, image_auth_id, command, gpu_num, rootfs_size,"
                    " kind, billing_mode, ports_json, envs_json, mounts_json, raw_json,"
                    " novita_created_at, entrypoint, network_id, min_cuda_version, tools_json"
                    " FROM snapshots WHERE instance_id = $1",
                    &p, "snapshot get", read_snapshot_row, out);
}

int nrd_pg_snapshot_seen_since(struct nrd_pg *pg, const char *instance_id, int64_t since_ms)
{
  struct pg_params p = { 0 };
  pgp_text(&p, instance_id);
  pgp_i64(&p, since_ms);
  return pg_one_row(pg, "SELECT 1 FROM snapshots WHERE instance_id = $1 AND last_seen_ms >= $2", &p,
                    "snapshot seen", NULL, NULL);
}
