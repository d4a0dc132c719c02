/* Where a replacement goes: the capacity look-ups of one run, and the
 * placement fallback (RECOVERY_PLACEMENT, RECOVERY_BILLING_FALLBACK).
 *
 * Novita's GET /v1/products filtered by productName, clusterId and
 * billingMethod says whether a product is deployable in a cluster
 * (availableDeploy, inventoryState); GET /v1/clusters lists the clusters. A
 * cluster's region is the code its name starts with ("CN-HK-01" in
 * "CN-HK-01 (Hong Kong)"), as the product fallback reads Novita's regions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core_internal.h"
#include "nrd/recreate.h"
#include "nrd/util.h"

bool run_once_begin(struct run_ctx *ctx, struct run_once *o)
{
  while (o->loading)
    pthread_cond_wait(&ctx->product_cond, &ctx->lock);
  if (o->loaded && o->rc == NRD_NV_OK)
    return false;
  o->loading = true;
  return true;
}

void run_once_done(struct run_ctx *ctx, struct run_once *o, enum nrd_nv_rc rc,
                   const struct nrd_nv_error *err)
{
  o->rc = rc;
  snprintf(o->error, sizeof(o->error), "%s", err->message);
  o->loading = false;
  o->loaded = true;
  pthread_cond_broadcast(&ctx->product_cond);
}

enum nrd_nv_rc run_once_rc(const struct run_once *o, struct nrd_nv_error *err)
{
  if (o->rc != NRD_NV_OK)
    snprintf(err->message, sizeof(err->message), "%s", o->error);
  return o->rc;
}

struct capacity_entry *nrd_capacity_entry(struct run_ctx *ctx, struct nrd_worker *w,
                                          const char *kind, const char *product,
                                          const char *product_id, const char *cluster,
                                          const char *billing)
{
  struct capacity_entry *e;
  for (e = ctx->capacity; e; e = e->next)
    if (!strcmp(e->product, product) && !strcmp(e->cluster, cluster) &&
        !strcmp(e->billing, billing))
      break;
  if (!e) {
    e = nrd_xcalloc(1, sizeof(*e));
    e->product = nrd_xstrdup(product);
    e->cluster = nrd_xstrdup(cluster);
    e->billing = nrd_xstrdup(billing);
    e->next = ctx->capacity;
    ctx->capacity = e;
  }
  if (!run_once_begin(ctx, &e->load))
    return e;
  struct nrd_product *list = NULL;
  size_t n = 0;
  struct nrd_nv_error err = { 0 };
  pthread_mutex_unlock(&ctx->lock);
  enum nrd_nv_rc rc = nrd_nv_list_kind_products(w->conn, kind, product, *cluster ? cluster : NULL,
                                                billing, &list, &n, &err);
  const char *offered_id = NULL;
  for (size_t i = 0; rc == NRD_NV_OK && i < n && !offered_id; i++) {
    bool same = (list[i].name && !strcasecmp(list[i].name, product)) ||
                (product_id && list[i].id && !strcmp(list[i].id, product_id));
    if (same && list[i].available && !list[i].no_inventory)
      offered_id = list[i].id ? list[i].id : "";
  }
  pthread_mutex_lock(&ctx->lock);
  e->offered = offered_id != NULL;
  free(e->product_id);
  e->product_id = offered_id && *offered_id ? nrd_xstrdup(offered_id) : NULL;
  run_once_done(ctx, &e->load, rc, &err);
  nrd_products_free(list, n);
  return e;
}

/* The run's cluster list, loaded once. Called with ctx->lock held. */
static enum nrd_nv_rc run_clusters(struct run_ctx *ctx, struct nrd_worker *w,
                                   struct nrd_nv_error *err)
{
  if (run_once_begin(ctx, &ctx->clusters_load)) {
    struct nrd_cluster *list = NULL;
    size_t n = 0;
    pthread_mutex_unlock(&ctx->lock);
    enum nrd_nv_rc rc = nrd_nv_list_clusters(w->conn, &list, &n, err);
    pthread_mutex_lock(&ctx->lock);
    nrd_clusters_free(ctx->clusters, ctx->n_clusters);
    ctx->clusters = list;
    ctx->n_clusters = n;
    run_once_done(ctx, &ctx->clusters_load, rc, err);
  }
  return run_once_rc(&ctx->clusters_load, err);
}

/* The region code of a cluster name: the text before its first space. */
static void region_of(const char *name, char out[64])
{
  size_t len = name ? strcspn(name, " ") : 0;
  if (len > 63)
    len = 63;
  memcpy(out, name ? name : "", len);
  out[len] = '\0';
}

/* Tries cluster (named, in region) with each billing allowed; fills out
 * when one offers the product. Called with ctx->lock held. */
static enum nrd_nv_rc try_cluster(struct run_ctx *ctx, struct nrd_worker *w,
                                  const struct nrd_instance *snap, const char *cluster,
                                  const char *region, struct placement *out,
                                  struct nrd_nv_error *err)
{
  const struct nrd_config *cfg = ctx->runner->cfg;
  const char *own_billing = snap->billing_mode && *snap->billing_mode ? snap->billing_mode : "spot";
  const char *billings[2] = { own_billing, NULL };
  if (cfg->recovery_billing_fallback == NRD_BILLING_FALLBACK_ON_DEMAND &&
      strcmp(own_billing, "onDemand") != 0)
    billings[1] = "onDemand";
  for (int b = 0; b < 2 && billings[b]; b++) {
    struct capacity_entry *e = nrd_capacity_entry(ctx, w, snap->kind, snap->product_name,
                                                  snap->product_id, cluster, billings[b]);
    if (run_once_rc(&e->load, err) != NRD_NV_OK)
      return e->load.rc;
    if (!e->offered)
      continue;
    out->found = true;
    snprintf(out->cluster, sizeof(out->cluster), "%s", cluster);
    snprintf(out->region, sizeof(out->region), "%s", region);
    snprintf(out->billing, sizeof(out->billing), "%s", billings[b]);
    snprintf(out->product_id, sizeof(out->product_id), "%s",
             e->product_id      ? e->product_id
             : snap->product_id ? snap->product_id
                                : "");
    const char *own = snap->cluster_id ? snap->cluster_id : "";
    out->fallback = strcmp(cluster, own) != 0 || b > 0;
    return NRD_NV_OK;
  }
  return NRD_NV_OK;
}

/* The other clusters, same region first (pass 0) then the rest (pass 1, for
 * any). Called with ctx->lock held. */
static enum nrd_nv_rc try_elsewhere(struct run_ctx *ctx, struct nrd_worker *w,
                                    const struct nrd_instance *snap, const char *own_region,
                                    struct placement *out, struct nrd_nv_error *err)
{
  enum nrd_nv_rc rc = run_clusters(ctx, w, err);
  if (rc != NRD_NV_OK)
    return rc;
  int passes = ctx->runner->cfg->recovery_placement == NRD_PLACE_ANY ? 2 : 1;
  const char *own = snap->cluster_id ? snap->cluster_id : "";
  for (int pass = 0; pass < passes; pass++) {
    /* the list stays while the run lasts: it is only replaced after a failed load */
    for (size_t i = 0; i < ctx->n_clusters && !out->found; i++) {
      char region[64], id[128];
      region_of(ctx->clusters[i].name, region);
      snprintf(id, sizeof(id), "%s", ctx->clusters[i].id);
      bool same_region = !strcmp(region, own_region);
      if (!strcmp(id, own) || same_region != (pass == 0))
        continue;
      rc = try_cluster(ctx, w, snap, id, region, out, err);
      if (rc != NRD_NV_OK)
        return rc;
    }
  }
  return NRD_NV_OK;
}

enum nrd_nv_rc nrd_place(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_instance *snap,
                         bool pinned, struct placement *out, struct nrd_nv_error *err)
{
  const struct nrd_config *cfg = ctx->runner->cfg;
  char own_region[64];
  memset(out, 0, sizeof(*out));
  nrd_recreate_region(snap, cfg->default_region, own_region);
  const char *own = snap->cluster_id ? snap->cluster_id : "";
  pthread_mutex_lock(&ctx->lock);
  enum nrd_nv_rc rc = try_cluster(ctx, w, snap, own, own_region, out, err);
  if (rc == NRD_NV_OK && !out->found && !pinned && *own &&
      cfg->recovery_placement != NRD_PLACE_SAME_CLUSTER)
    rc = try_elsewhere(ctx, w, snap, own_region, out, err);
  pthread_mutex_unlock(&ctx->lock);
  if (rc == NRD_NV_OK && out->found && out->fallback)
    snprintf(out->why, sizeof(out->why),
             "no capacity for %s in %s (%s); placed in %s (region %s) %s, as "
             "RECOVERY_PLACEMENT=%s and RECOVERY_BILLING_FALLBACK=%s allow",
             snap->product_name, *own ? own : "any cluster",
             snap->billing_mode && *snap->billing_mode ? snap->billing_mode : "spot", out->cluster,
             out->region, out->billing, nrd_config_choice_name(cfg, "RECOVERY_PLACEMENT"),
             nrd_config_choice_name(cfg, "RECOVERY_BILLING_FALLBACK"));
  return rc;
}
