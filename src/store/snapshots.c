/* Instance snapshots: the settled-status upsert and the read back. */

#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/util.h"

/* ---- lists as JSON text ---- */

/* Appends "key":"value" (with a leading comma unless first); NULL is left out. */
static void put_field(struct nrd_buf *b, bool *first, const char *key, const char *value)
{
  if (!value)
    return;
  if (!*first)
    nrd_buf_puts(b, ",");
  *first = false;
  nrd_buf_json_str(b, key);
  nrd_buf_puts(b, ":");
  nrd_buf_json_str(b, value);
}

/* The list as JSON text (caller frees), or NULL when it was not present. */
static char *ports_json(const struct nrd_instance *in)
{
  if (!in->ports_present)
    return NULL;
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_puts(&b, "[");
  for (size_t i = 0; i < in->n_ports; i++) {
    bool first = true;
    nrd_buf_puts(&b, i ? ",{" : "{");
    put_field(&b, &first, "port", in->ports[i].port);
    put_field(&b, &first, "type", in->ports[i].type);
    nrd_buf_puts(&b, "}");
  }
  nrd_buf_puts(&b, "]");
  return nrd_buf_steal(&b);
}

static char *envs_json(const struct nrd_instance *in)
{
  if (!in->envs_present)
    return NULL;
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_puts(&b, "[");
  for (size_t i = 0; i < in->n_envs; i++) {
    bool first = true;
    nrd_buf_puts(&b, i ? ",{" : "{");
    put_field(&b, &first, "key", in->envs[i].key);
    put_field(&b, &first, "value", in->envs[i].value);
    nrd_buf_puts(&b, "}");
  }
  nrd_buf_puts(&b, "]");
  return nrd_buf_steal(&b);
}

static char *mounts_json(const struct nrd_instance *in)
{
  if (!in->mounts_present)
    return NULL;
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_puts(&b, "[");
  for (size_t i = 0; i < in->n_mounts; i++) {
    bool first = true;
    nrd_buf_puts(&b, i ? ",{" : "{");
    put_field(&b, &first, "type", in->mounts[i].type);
    put_field(&b, &first, "id", in->mounts[i].id);
    put_field(&b, &first, "mountPath", in->mounts[i].mount_path);
    nrd_buf_puts(&b, "}");
  }
  nrd_buf_puts(&b, "]");
  return nrd_buf_steal(&b);
}

/* Parses a stored list column: an array of objects. n gets its size. NULL
 * (with n 0) for a column that is not a JSON array: a broken database. */
static cJSON *parse_list(const char *text, size_t *n)
{
  *n = 0;
  cJSON *arr = nrd_json_parse(text, strlen(text));
  if (!cJSON_IsArray(arr)) {
    cJSON_Delete(arr);
    return NULL;
  }
  *n = (size_t)cJSON_GetArraySize(arr);
  return arr;
}

static bool read_ports(const char *text, struct nrd_instance *out)
{
  size_t n;
  cJSON *arr = parse_list(text, &n);
  if (!arr)
    return false;
  out->ports_present = true;
  out->ports = n ? nrd_xcalloc(n, sizeof *out->ports) : NULL;
  out->n_ports = n;
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    out->ports[i].port = nrd_xstrdup(nrd_json_str(item, "port"));
    out->ports[i].type = nrd_xstrdup(nrd_json_str(item, "type"));
    i++;
  }
  cJSON_Delete(arr);
  return true;
}

static bool read_envs(const char *text, struct nrd_instance *out)
{
  size_t n;
  cJSON *arr = parse_list(text, &n);
  if (!arr)
    return false;
  out->envs_present = true;
  out->envs = n ? nrd_xcalloc(n, sizeof *out->envs) : NULL;
  out->n_envs = n;
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    out->envs[i].key = nrd_xstrdup(nrd_json_str(item, "key"));
    out->envs[i].value = nrd_xstrdup(nrd_json_str(item, "value"));
    i++;
  }
  cJSON_Delete(arr);
  return true;
}

static bool read_mounts(const char *text, struct nrd_instance *out)
{
  size_t n;
  cJSON *arr = parse_list(text, &n);
  if (!arr)
    return false;
  out->mounts_present = true;
  out->mounts = n ? nrd_xcalloc(n, sizeof *out->mounts) : NULL;
  out->n_mounts = n;
  size_t i = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, arr) {
    out->mounts[i].type = nrd_xstrdup(nrd_json_str(item, "type"));
    out->mounts[i].id = nrd_xstrdup(nrd_json_str(item, "id"));
    out->mounts[i].mount_path = nrd_xstrdup(nrd_json_str(item, "mountPath"));
    i++;
  }
  cJSON_Delete(arr);
  return true;
}

/* ---- upsert ---- */

struct upsert_ctx {
  const struct nrd_instance *items;
  size_t n;
  const char *run_id;
  int64_t now_ms;
};

static int upsert_one(struct nrd_store *st, sqlite3_stmt *s, const struct nrd_instance *in,
                      const char *run_id, int64_t now_ms)
{
  int rc = NRD_ERR;
  char *ports = ports_json(in);
  char *envs = envs_json(in);
  char *mounts = mounts_json(in);

  bool ok = store_bind_text(s, ":id", in->id) &&
            store_bind_text_opt(s, ":name", in->name) &&
            store_bind_text_opt(s, ":status", in->status) &&
            store_bind_text_opt(s, ":cluster_id", in->cluster_id) &&
            store_bind_text_opt(s, ":cluster_name", in->cluster_name) &&
            store_bind_text_opt(s, ":product_id", in->product_id) &&
            store_bind_text_opt(s, ":product_name", in->product_name) &&
            store_bind_text_opt(s, ":image_url", in->image_url) &&
            store_bind_text_opt(s, ":image_auth_id", in->image_auth_id) &&
            store_bind_text_opt(s, ":command", in->command) &&
            store_bind_text_opt(s, ":gpu_num", in->gpu_num) &&
            store_bind_text_opt(s, ":rootfs_size", in->rootfs_size) &&
            store_bind_text_opt(s, ":kind", in->kind) &&
            store_bind_text_opt(s, ":billing_mode", in->billing_mode) &&
            store_bind_text(s, ":ports", ports) &&
            store_bind_text(s, ":envs", envs) &&
            store_bind_text(s, ":mounts", mounts) &&
            store_bind_text_opt(s, ":raw", in->raw_json) &&
            store_bind_i64(s, ":now", now_ms) &&
            store_bind_text(s, ":run", run_id) &&
            store_bind_i64(s, ":settled", nrd_status_is_settled(in->status));
  if (ok && in->created_at > 0)
    ok = store_bind_i64(s, ":created_at", in->created_at);
  if (!ok) {
    LOG_ERROR("store: cannot bind snapshot upsert");
    goto out;
  }
  rc = store_step_write(st, s, "snapshot upsert", NULL);
out:
  store_done(s);
  free(ports);
  free(envs);
  free(mounts);
  return rc;
}

static int upsert_fn(struct nrd_store *st, void *arg)
{
  const struct upsert_ctx *ctx = arg;
  sqlite3_stmt *s = store_stmt(st, STMT_SNAPSHOT_UPSERT);
  if (!s)
    return NRD_ERR;
  for (size_t i = 0; i < ctx->n; i++) {
    const struct nrd_instance *in = &ctx->items[i];
    if (!in->id || !*in->id) {
      LOG_WARN("store: instance without id not snapshotted");
      continue;
    }
    int rc = upsert_one(st, s, in, ctx->run_id, ctx->now_ms);
    if (rc != NRD_OK)
      return rc;
  }
  return NRD_OK;
}

int nrd_store_snapshots_upsert(struct nrd_store *st, const struct nrd_instance *items,
                               size_t n, const char *run_id, int64_t now_ms)
{
  struct upsert_ctx ctx = { .items = items, .n = n, .run_id = run_id, .now_ms = now_ms };
  if (n == 0)
    return NRD_OK;
  return store_tx(st, upsert_fn, &ctx);
}

/* ---- reads ---- */

enum {
  COL_ID, COL_NAME, COL_STATUS, COL_CLUSTER_ID, COL_CLUSTER_NAME, COL_PRODUCT_ID,
  COL_PRODUCT_NAME, COL_IMAGE_URL, COL_IMAGE_AUTH_ID, COL_COMMAND, COL_GPU_NUM,
  COL_ROOTFS_SIZE, COL_KIND, COL_BILLING_MODE, COL_PORTS, COL_ENVS, COL_MOUNTS, COL_RAW,
  COL_CREATED_AT
};

static bool read_snapshot(sqlite3_stmt *s, struct nrd_instance *out)
{
  out->id = store_col_text(s, COL_ID);
  out->name = store_col_text(s, COL_NAME);
  out->status = store_col_text(s, COL_STATUS);
  out->cluster_id = store_col_text(s, COL_CLUSTER_ID);
  out->cluster_name = store_col_text(s, COL_CLUSTER_NAME);
  out->product_id = store_col_text(s, COL_PRODUCT_ID);
  out->product_name = store_col_text(s, COL_PRODUCT_NAME);
  out->image_url = store_col_text(s, COL_IMAGE_URL);
  out->image_auth_id = store_col_text(s, COL_IMAGE_AUTH_ID);
  out->command = store_col_text(s, COL_COMMAND);
  out->gpu_num = store_col_text(s, COL_GPU_NUM);
  out->rootfs_size = store_col_text(s, COL_ROOTFS_SIZE);
  out->kind = store_col_text(s, COL_KIND);
  out->billing_mode = store_col_text(s, COL_BILLING_MODE);
  out->raw_json = store_col_text(s, COL_RAW);
  out->created_at = sqlite3_column_int64(s, COL_CREATED_AT);

  const char *ports = (const char *)sqlite3_column_text(s, COL_PORTS);
  const char *envs = (const char *)sqlite3_column_text(s, COL_ENVS);
  const char *mounts = (const char *)sqlite3_column_text(s, COL_MOUNTS);
  return (!ports || read_ports(ports, out)) && (!envs || read_envs(envs, out)) &&
         (!mounts || read_mounts(mounts, out));
}

int nrd_store_snapshot_get(struct nrd_store *st, const char *instance_id,
                           struct nrd_instance *out)
{
  memset(out, 0, sizeof *out);
  sqlite3_stmt *s = store_stmt(st, STMT_SNAPSHOT_GET);
  if (!s)
    return NRD_ERR;
  int rc = NRD_ERR;
  if (!store_bind_text(s, ":id", instance_id))
    goto out;
  int src = sqlite3_step(s);
  if (src == SQLITE_DONE) {
    rc = NRD_NONE;
  } else if (src != SQLITE_ROW) {
    rc = store_fail(st, src, "snapshot get");
  } else if (!read_snapshot(s, out)) {
    LOG_ERROR("store: snapshot has a broken list column", "instanceId", instance_id);
    nrd_instance_cleanup(out);
  } else {
    rc = NRD_OK;
  }
out:
  store_done(s);
  return rc;
}

int nrd_store_snapshot_seen_since(struct nrd_store *st, const char *instance_id,
                                  int64_t since_ms)
{
  sqlite3_stmt *s = store_stmt(st, STMT_SNAPSHOT_SEEN);
  if (!s)
    return NRD_ERR;
  int rc = NRD_ERR;
  if (!store_bind_text(s, ":id", instance_id) || !store_bind_i64(s, ":since", since_ms))
    goto out;
  int src = sqlite3_step(s);
  if (src == SQLITE_ROW)
    rc = NRD_OK;
  else if (src == SQLITE_DONE)
    rc = NRD_NONE;
  else
    rc = store_fail(st, src, "snapshot seen");
out:
  store_done(s);
  return rc;
}
