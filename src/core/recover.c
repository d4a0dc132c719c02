/* Step 3, recover: the open rows handed to the pool (nrd_recover, below),
 * and the row executor: one ledger row, driven through its states on a
 * worker thread. It hands each row's outcome back through ctx->outcome and
 * never calls up into the coordinator.
 *
 * The rule of the ledger: the next state is written before the side effect
 * (DELETING before the delete leaves, CREATING before the create), so a crash
 * at any point resumes from a state that says what may have happened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "steps.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/recovery.h"
#include "nrd/recreate.h"
#include "nrd/util.h"

struct row_job {
  struct run_ctx *ctx;
  struct nrd_ledger_row row; /* as read when the run listed it */
  struct nrd_instance snap;
  bool have_snap;
  char reason[512];
  cJSON *request;         /* built create request, when we got that far */
  struct placement place; /* where the capacity check placed it (found: checked) */
  bool released;          /* a write gave the lease back: no release needed */
  bool delete_refused;    /* Novita refused the delete: delete_sent is cleared again */
  bool store_failed;      /* a ledger write failed: the row is deferred */
  bool outcome_added;     /* the row has its outcome in the report */
  bool lease_lost;        /* a write found the row leased to another process */
};

/* An event for the outbox, body shaped as DESIGN.md's webhooks. */
static void event_init(struct nrd_event *ev, const char *type, cJSON *data)
{
  char id[64];
  char at[32];
  cJSON *body = nrd_json_object();
  memset(ev, 0, sizeof(*ev));
  nrd_make_id("evt", id);
  ev->created_ms = nrd_now_ms();
  nrd_iso8601(ev->created_ms, at);
  nrd_json_add_str(body, "id", id);
  nrd_json_add_str(body, "type", type);
  nrd_json_add_str(body, "createdAt", at);
  cJSON_AddItemToObject(body, "data", data);
  ev->id = nrd_xstrdup(id);
  ev->type = nrd_xstrdup(type);
  ev->body_json = nrd_json_print(body);
  ev->state = nrd_xstrdup("pending");
  cJSON_Delete(body);
}

static cJSON *event_data(const struct nrd_ledger_row *row)
{
  cJSON *d = nrd_json_object();
  nrd_json_add_str(d, "instanceId", row->instance_id);
  nrd_json_add_str(d, "instanceName", row->instance_name);
  nrd_json_add_str(d, "jobId", row->job_id);
  return d;
}

#define LEASE_LOST_REASON                                                                      \
  "the row's lease passed to another process, which resumes it (what this run sent is looked " \
  "up by name first)"

/* The row's outcome; when its ledger could not be written, `deferred`
 * naming why instead: the store's failure (whatever was sent is looked up
 * and resumed by a later run, as after a crash) or a lease another process
 * took over (that process resumes the row). Takes item. */
static void row_outcome(struct row_job *j, cJSON *item)
{
  j->outcome_added = true;
  if (j->store_failed || j->lease_lost) {
    char reason[400] = LEASE_LOST_REASON;
    if (j->store_failed)
      nrd_run_store_reason(j->ctx, reason, sizeof(reason));
    cJSON *o = nrd_outcome_new(&j->row, "deferred");
    nrd_json_add_str(o, "reason", reason);
    cJSON_Delete(item);
    item = o;
  }
  j->ctx->outcome(j->ctx, item);
}

/* Writes a state change as the lease owner. false when the lease was lost or
 * the database refused (then this worker stops touching the row). */
static bool ledger_write(struct row_job *j, struct nrd_worker *w, const struct nrd_ledger_update *u)
{
  int rc = nrd_store_ledger_update(w->store, j->row.job_id, w->runner->owner, u, nrd_now_ms());
  if (rc == NRD_OK && u->event && w->runner->event_hook)
    w->runner->event_hook(w->runner->event_hook_ud);
  if (rc == NRD_OK) {
    j->row.state = u->state;
    j->released = u->release;
    if (u->set_delete_sent)
      j->row.delete_sent = true;
    if (u->set_create_sent)
      j->row.create_sent = true;
    return true;
  }
  if (rc == NRD_NONE) { /* the lease was lost, the store is fine */
    LOG_WARN("row lease lost: another process resumes the row", "jobId", j->row.job_id, "state",
             nrd_row_state_name(u->state));
    j->lease_lost = true;
    return false;
  }
  LOG_ERROR("ledger write failed", "jobId", j->row.job_id, "state", nrd_row_state_name(u->state),
            "#rc", NRD_I64(rc));
  j->store_failed = true;
  nrd_run_store_failed(j->ctx, w->store);
  return false;
}

/* Final failure of the row: FAILED in the ledger, a recovery_failed event in
 * the same transaction, a failed outcome. */
static void fail_row(struct row_job *j, struct nrd_worker *w, const char *reason)
{
  struct nrd_event ev;
  cJSON *data = event_data(&j->row);
  nrd_json_add_str(data, "reason", reason);
  event_init(&ev, "instance.recovery_failed", data);
  struct nrd_ledger_update u = {
    .state = NRD_ROW_FAILED, .last_error = reason, .release = true, .event = &ev
  };
  LOG_WARN("recovery failed", "instanceId", j->row.instance_id, "jobId", j->row.job_id, "reason",
           reason);
  ledger_write(j, w, &u);
  nrd_event_cleanup(&ev);
  cJSON *o = nrd_outcome_new(&j->row, "failed");
  nrd_json_add_str(o, "reason", reason);
  row_outcome(j, o);
}

static void defer_row(struct row_job *j, const char *reason)
{
  cJSON *o = nrd_outcome_new(&j->row, "deferred");
  nrd_json_add_str(o, "reason", reason);
  j->outcome_added = true;
  j->ctx->outcome(j->ctx, o);
}

/* A failure that a later run retries: the row stays open where it is. When
 * shutdown aborted the call, the row is parked: deferred, not an error. */
static void fail_for_now(struct row_job *j, struct nrd_worker *w, const char *reason)
{
  bool parked = atomic_load(&j->ctx->runner->stop_work);
  struct nrd_ledger_update u = { .state = j->row.state, .last_error = reason, .release = true };
  if (parked)
    LOG_INFO("recovery parked by shutdown", "instanceId", j->row.instance_id, "jobId",
             j->row.job_id, "state", nrd_row_state_name(j->row.state), "reason", reason);
  else
    LOG_WARN("recovery step failed; next run retries", "instanceId", j->row.instance_id, "jobId",
             j->row.job_id, "state", nrd_row_state_name(j->row.state), "reason", reason);
  ledger_write(j, w, &u);
  if (parked) {
    defer_row(j, "service is shutting down; the next run resumes this row");
    return;
  }
  cJSON *o = nrd_outcome_new(&j->row, "failed");
  nrd_json_add_str(o, "reason", reason);
  row_outcome(j, o);
}

static void abandon_row(struct row_job *j, struct nrd_worker *w, const char *reason)
{
  struct nrd_ledger_update u = { .state = NRD_ROW_ABANDONED,
                                 .last_error = reason,
                                 .release = true };
  LOG_INFO("recovery abandoned", "instanceId", j->row.instance_id, "jobId", j->row.job_id, "reason",
           reason);
  ledger_write(j, w, &u);
  cJSON *o = nrd_outcome_new(&j->row, "abandoned");
  nrd_json_add_str(o, "reason", reason);
  row_outcome(j, o);
}

static void novita_trouble(struct row_job *j, struct nrd_worker *w, enum nrd_nv_rc rc,
                           const char *what, const struct nrd_nv_error *err);

/* A prepaid (monthly) instance Novita refuses to delete: final, `skipped`,
 * reported once (the row is done, no later run touches it). */
static void skip_row(struct row_job *j, struct nrd_worker *w, const struct nrd_nv_error *err)
{
  char reason[512];
  snprintf(reason, sizeof(reason),
           "prepaid instance: Novita refuses to delete it (%s: %s); skipped, never deleted",
           err->code[0] ? err->code : "PREPAID_INSTANCE_NOT_SUPPORT_RELEASE", err->message);
  struct nrd_ledger_update u = { .state = NRD_ROW_ABANDONED,
                                 .last_error = reason,
                                 .release = true };
  LOG_WARN("recovery skipped: prepaid instance", "instanceId", j->row.instance_id, "jobId",
           j->row.job_id, "reason", err->code);
  ledger_write(j, w, &u);
  cJSON *o = nrd_outcome_new(&j->row, "skipped");
  nrd_json_add_str(o, "reason", reason);
  nrd_json_add_str(o, "novitaReason",
                   err->code[0] ? err->code : "PREPAID_INSTANCE_NOT_SUPPORT_RELEASE");
  row_outcome(j, o);
}

/* A row a brake holds: it stays where it is (nothing sent), deferred with the
 * brake named; event (may be NULL) is a recovery.blocked for the outbox. */
static void defer_brake(struct row_job *j, struct nrd_worker *w, const char *brake,
                        const char *reason, const char *novita_reason, struct nrd_event *ev)
{
  struct nrd_ledger_update u = {
    .state = j->row.state, .clear_delete_sent = j->delete_refused, .release = true, .event = ev
  };
  ledger_write(j, w, &u);
  pthread_mutex_lock(&j->ctx->lock);
  if (!strcmp(brake, "account"))
    j->ctx->held_account++;
  else
    j->ctx->held_capacity++;
  pthread_mutex_unlock(&j->ctx->lock);
  LOG_WARN("recovery held by a brake", "instanceId", j->row.instance_id, "jobId", j->row.job_id,
           "brake", brake, "reason", reason);
  cJSON *o = nrd_outcome_new(&j->row, "deferred");
  nrd_json_add_str(o, "reason", reason);
  nrd_json_add_str(o, "brake", brake);
  if (novita_reason && *novita_reason)
    nrd_json_add_str(o, "novitaReason", novita_reason);
  row_outcome(j, o);
}

/* A recovery.blocked event naming the brake and why. */
static void blocked_event(struct row_job *j, struct nrd_event *ev, const char *brake,
                          const char *reason, const char *message)
{
  cJSON *data = event_data(&j->row);
  nrd_json_add_str(data, "brake", brake);
  nrd_json_add_str(data, "reason", reason);
  nrd_json_add_str(data, "message", message);
  event_init(ev, "recovery.blocked", data);
}

/* The account brake holds the run: the row is deferred, nothing sent. */
static bool account_held(struct row_job *j, struct nrd_worker *w)
{
  char reason[512], code[64];
  struct run_ctx *ctx = j->ctx;
  pthread_mutex_lock(&ctx->lock);
  bool blocked = ctx->account_blocked;
  snprintf(code, sizeof(code), "%s", ctx->account_reason);
  snprintf(reason, sizeof(reason),
           "account brake: Novita refused a create with %s (%s); no delete is sent until a "
           "create succeeds",
           ctx->account_reason, ctx->account_message);
  pthread_mutex_unlock(&ctx->lock);
  if (blocked)
    defer_brake(j, w, "account", reason, code, NULL);
  return blocked;
}

/* A create (or delete) refused for an account-wide reason: the brake holds
 * every row not yet sent, in this run and the next (stored); the row keeps
 * its state (nothing was created) and is the next run's probe. */
static void account_refused(struct row_job *j, struct nrd_worker *w, enum nrd_row_state back,
                            const struct nrd_nv_error *err)
{
  struct run_ctx *ctx = j->ctx;
  struct nrd_event ev;
  char reason[512];
  pthread_mutex_lock(&ctx->lock);
  bool first_event = !ctx->account_event_sent;
  ctx->account_event_sent = true;
  ctx->account_blocked = true;
  snprintf(ctx->account_reason, sizeof(ctx->account_reason), "%s", err->code);
  snprintf(ctx->account_message, sizeof(ctx->account_message), "%s", err->message);
  pthread_mutex_unlock(&ctx->lock);
  struct nrd_brake b = { .reason = (char *)err->code,
                         .message = (char *)err->message,
                         .job_id = j->row.job_id };
  if (nrd_store_brake_set(w->store, "account", &b, nrd_now_ms()) != NRD_OK)
    LOG_ERROR("storing the account brake failed", "jobId", j->row.job_id);
  LOG_ERROR("account brake set: Novita refuses creates account-wide", "reason", err->code,
            "message", err->message, "instanceId", j->row.instance_id, "jobId", j->row.job_id);
  snprintf(reason, sizeof(reason),
           "account brake: Novita refused the create with %s (%s); no delete is sent until a "
           "create succeeds; the next run probes with this row",
           err->code, err->message);
  if (first_event)
    blocked_event(j, &ev, "account", err->code, err->message);
  j->row.state = back;
  defer_brake(j, w, "account", reason, err->code, first_event ? &ev : NULL);
  if (first_event)
    nrd_event_cleanup(&ev);
}

/* The request goes where the placement says: cluster, billing and the id
 * of the product offered there. */
static void apply_placement(struct row_job *j, const struct placement *pl)
{
  j->place = *pl;
  if (!pl->fallback || !j->request)
    return;
  cJSON_ReplaceItemInObjectCaseSensitive(j->request, "clusterId", cJSON_CreateString(pl->cluster));
  cJSON_ReplaceItemInObjectCaseSensitive(j->request, "billingMode",
                                         cJSON_CreateString(pl->billing));
  if (pl->product_id[0])
    cJSON_ReplaceItemInObjectCaseSensitive(j->request, "productId",
                                           cJSON_CreateString(pl->product_id));
  LOG_INFO("replacement placed by a fallback", "instanceId", j->row.instance_id, "jobId",
           j->row.job_id, "clusterId", pl->cluster, "region", pl->region, "billingMode",
           pl->billing, "why", pl->why);
}

/* A snapshot mounting network storage stays in its cluster: the volume
 * lives there. */
static bool pinned_to_cluster(const struct row_job *j)
{
  return j->request && cJSON_GetArraySize(cJSON_GetObjectItem(j->request, "networkStorages")) > 0;
}

/* The capacity brake, before a delete: true when the row may go on, placed
 * in its own cluster or where a fallback allows. */
static bool capacity_ok(struct row_job *j, struct nrd_worker *w)
{
  struct run_ctx *ctx = j->ctx;
  const struct nrd_config *cfg = ctx->runner->cfg;
  struct nrd_event ev;
  struct placement pl;
  struct nrd_nv_error err = { 0 };
  char reason[640], code[16] = "";
  if (!j->snap.product_name || !*j->snap.product_name)
    return true; /* nothing to look up: the create says */
  enum nrd_nv_rc rc = nrd_place(ctx, w, &j->snap, pinned_to_cluster(j), &pl, &err);
  if (rc != NRD_NV_OK) {
    novita_trouble(j, w, rc, "capacity look-up", &err);
    return false;
  }
  if (pl.found) {
    apply_placement(j, &pl);
    return true;
  }
  const char *cluster = j->snap.cluster_id && *j->snap.cluster_id ? j->snap.cluster_id : "";
  pthread_mutex_lock(&ctx->lock);
  struct capacity_entry *e = NULL;
  for (e = ctx->capacity; e; e = e->next)
    if (!strcmp(e->product, j->snap.product_name) && !strcmp(e->cluster, cluster))
      break;
  bool first_event = e && !e->event_sent;
  if (e)
    e->event_sent = true;
  pthread_mutex_unlock(&ctx->lock);
  int len = snprintf(reason, sizeof(reason), "no capacity for %s in %s", j->snap.product_name,
                     *cluster ? cluster : "any cluster");
  bool fallback = cfg->recovery_placement != NRD_PLACE_SAME_CLUSTER ||
                  cfg->recovery_billing_fallback != NRD_BILLING_FALLBACK_NONE;
  if (fallback && len > 0 && (size_t)len < sizeof(reason))
    snprintf(reason + len, sizeof(reason) - (size_t)len,
             "; nor anywhere RECOVERY_PLACEMENT=%s and RECOVERY_BILLING_FALLBACK=%s allow%s",
             nrd_config_choice_name(cfg, "RECOVERY_PLACEMENT"),
             nrd_config_choice_name(cfg, "RECOVERY_BILLING_FALLBACK"),
             pinned_to_cluster(j) ? " (network storage keeps it in its cluster)" : "");
  if (first_event)
    blocked_event(j, &ev, "capacity", "no capacity", reason);
  defer_brake(j, w, "capacity", reason, code, first_event ? &ev : NULL);
  if (first_event)
    nrd_event_cleanup(&ev);
  return false;
}

/* A create refused for capacity: the rest of that (product, cluster) waits. */
static void capacity_refused(struct row_job *j)
{
  struct run_ctx *ctx = j->ctx;
  const char *cluster = j->place.found       ? j->place.cluster
                        : j->snap.cluster_id ? j->snap.cluster_id
                                             : "";
  const char *billing = j->place.found                                  ? j->place.billing
                        : j->snap.billing_mode && *j->snap.billing_mode ? j->snap.billing_mode
                                                                        : "spot";
  if (!j->have_snap || !j->snap.product_name)
    return;
  /* Only the place refused is full: the same cluster under another billing
   * (a billing fallback) may still have room. */
  pthread_mutex_lock(&ctx->lock);
  for (struct capacity_entry *e = ctx->capacity; e; e = e->next)
    if (!strcmp(e->product, j->snap.product_name) && !strcmp(e->cluster, cluster) &&
        !strcmp(e->billing, billing))
      e->offered = false;
  pthread_mutex_unlock(&ctx->lock);
}

/* After a create refused for capacity (its place now marked full for this
 * run): the resend goes to the next place a fallback allows, if any; else
 * where it was. */
static void replace_after_refusal(struct row_job *j, struct nrd_worker *w)
{
  struct placement pl;
  struct nrd_nv_error err = { 0 };
  const struct nrd_config *cfg = j->ctx->runner->cfg;
  if (!j->have_snap || !j->snap.product_name || !*j->snap.product_name || !j->request ||
      (cfg->recovery_placement == NRD_PLACE_SAME_CLUSTER &&
       cfg->recovery_billing_fallback == NRD_BILLING_FALLBACK_NONE))
    return;
  if (nrd_place(j->ctx, w, &j->snap, pinned_to_cluster(j), &pl, &err) == NRD_NV_OK && pl.found &&
      pl.fallback)
    apply_placement(j, &pl);
}

/* Deferred when the run must stop starting work; true if so. */
static bool must_stop(struct row_job *j)
{
  struct nrd_runner *r = j->ctx->runner;
  char store_reason[400];
  if (nrd_run_store_reason(j->ctx, store_reason, sizeof(store_reason))) {
    defer_row(j, store_reason);
    return true;
  }
  if (atomic_load(&r->stop_work)) {
    defer_row(j, "service is shutting down; the next run resumes this row");
    return true;
  }
  if (nrd_mono_ms() >= j->ctx->deadline_mono_ms) {
    defer_row(j, "run deadline reached; the next run resumes this row");
    return true;
  }
  if (nrd_novita_circuit_state(r->nv) == 1) {
    defer_row(j, "Novita circuit is open; the next run resumes this row");
    pthread_mutex_lock(&j->ctx->lock);
    j->ctx->circuit_tripped = true;
    pthread_mutex_unlock(&j->ctx->lock);
    return true;
  }
  return false;
}

/* A Novita failure that is not the row's fault: defer when the breaker or the
 * deadline stopped it, else a failure the next run retries. */
static void novita_trouble(struct row_job *j, struct nrd_worker *w, enum nrd_nv_rc rc,
                           const char *what, const struct nrd_nv_error *err)
{
  char reason[512];
  if (rc == NRD_NV_CIRCUIT_OPEN || rc == NRD_NV_DEADLINE) {
    struct nrd_ledger_update u = { .state = j->row.state, .release = true };
    ledger_write(j, w, &u);
    if (rc == NRD_NV_CIRCUIT_OPEN) {
      pthread_mutex_lock(&j->ctx->lock);
      j->ctx->circuit_tripped = true;
      pthread_mutex_unlock(&j->ctx->lock);
    }
    defer_row(j, rc == NRD_NV_CIRCUIT_OPEN ? "Novita circuit is open; the next run resumes this row"
                                           : "run deadline reached; the next run resumes this row");
    return;
  }
  snprintf(reason, sizeof(reason), "%s failed: %s; the next run retries", what, err->message);
  fail_for_now(j, w, reason);
}

/* The product id for the create: the snapshot's own, or the cheapest fitting
 * product found by name and region (each pair fetched once per run). Returns
 * NRD_NV_OK with *id (heap) set, NRD_NV_OK with NULL when none fits, or the
 * failure of the look-up. */
static enum nrd_nv_rc resolve_product(struct row_job *j, struct nrd_worker *w, char **id,
                                      struct nrd_nv_error *err)
{
  struct run_ctx *ctx = j->ctx;
  char region[64];
  struct product_entry *e;
  *id = NULL;
  nrd_recreate_region(&j->snap, ctx->runner->cfg->default_region, region);

  pthread_mutex_lock(&ctx->lock);
  for (e = ctx->products; e; e = e->next)
    if (!strcmp(e->name, j->snap.product_name) && !strcmp(e->region, region))
      break;
  if (!e) {
    e = nrd_xcalloc(1, sizeof(*e));
    e->name = nrd_xstrdup(j->snap.product_name);
    e->region = nrd_xstrdup(region);
    e->next = ctx->products;
    ctx->products = e;
  }
  if (run_once_begin(ctx, &e->load)) {
    /* Load (or retry a failed load) outside the lock. */
    struct nrd_product *list = NULL;
    size_t n = 0;
    pthread_mutex_unlock(&ctx->lock);
    enum nrd_nv_rc rc =
        nrd_nv_list_kind_products(w->conn, j->snap.kind, e->name, NULL, NULL, &list, &n, err);
    long pick = rc == NRD_NV_OK ? nrd_recreate_pick_product(list, n, e->name, region) : -1;
    pthread_mutex_lock(&ctx->lock);
    free(e->product_id);
    e->product_id = pick >= 0 ? nrd_xstrdup(list[pick].id) : NULL;
    run_once_done(ctx, &e->load, rc, err);
    nrd_products_free(list, n);
  }
  enum nrd_nv_rc rc = run_once_rc(&e->load, err);
  if (rc == NRD_NV_OK)
    *id = nrd_xstrdup(e->product_id);
  pthread_mutex_unlock(&ctx->lock);
  return rc;
}

/* Checks the snapshot and builds the create request into j->request. false
 * when the row has been settled (failed or deferred) here. */
static bool plan_request(struct row_job *j, struct nrd_worker *w)
{
  char reason[NRD_REASON_MAX];
  bool needs_product = false;
  char *product_id = NULL;
  struct nrd_nv_error err = { 0 };

  if (!j->have_snap) {
    fail_row(j, w, "no snapshot of this instance was ever stored; instance left untouched");
    return false;
  }
  if (!nrd_recreate_check(&j->snap, &needs_product, reason)) {
    fail_row(j, w, reason);
    return false;
  }
  if (needs_product) {
    enum nrd_nv_rc rc = resolve_product(j, w, &product_id, &err);
    if (rc != NRD_NV_OK) {
      novita_trouble(j, w, rc, "product look-up", &err);
      return false;
    }
    if (!product_id) {
      char region[64];
      char why[512];
      nrd_recreate_region(&j->snap, j->ctx->runner->cfg->default_region, region);
      snprintf(why, sizeof(why),
               "no available spot product named '%s' in region %s; instance left untouched",
               j->snap.product_name, region);
      fail_row(j, w, why);
      return false;
    }
  }
  cJSON_Delete(j->request);
  j->request =
      nrd_recreate_build(&j->snap, product_id ? product_id : j->snap.product_id, j->row.new_name);
  free(product_id);
  return true;
}

/* Where the replacement was sent: {clusterId, region, billingMode, fallback,
 * reason (with fallback)}, from the create request as sent. */
static cJSON *placement_json(const struct row_job *j)
{
  char region[64];
  cJSON *p = nrd_json_object();
  const char *cluster = nrd_json_str(j->request, "clusterId");
  if (j->place.found)
    snprintf(region, sizeof(region), "%s", j->place.region);
  else
    nrd_recreate_region(&j->snap, j->ctx->runner->cfg->default_region, region);
  if (cluster)
    nrd_json_add_str(p, "clusterId", cluster);
  nrd_json_add_str(p, "region", region);
  nrd_json_add_str(p, "billingMode", nrd_json_str(j->request, "billingMode"));
  nrd_json_add_bool(p, "fallback", j->place.found && j->place.fallback);
  if (j->place.found && j->place.fallback)
    nrd_json_add_str(p, "reason", j->place.why);
  return p;
}

static void recreated(struct row_job *j, struct nrd_worker *w, const char *new_id, bool adopted)
{
  struct nrd_event ev;
  cJSON *data = event_data(&j->row);
  nrd_json_add_str(data, "newInstanceId", new_id);
  nrd_json_add_str(data, "newName", j->row.new_name);
  nrd_json_add_bool(data, "adopted", adopted);
  if (j->request)
    cJSON_AddItemToObject(data, "request", nrd_recreate_redact(j->request));
  event_init(&ev, "instance.recreated", data);
  struct nrd_ledger_update u = { .state = NRD_ROW_CREATED,
                                 .new_instance_id = new_id,
                                 .last_error = "",
                                 .set_adopted = adopted,
                                 .release = true,
                                 .event = &ev };
  bool ok = ledger_write(j, w, &u);
  nrd_event_cleanup(&ev);
  if (!ok)
    return;
  LOG_INFO(adopted ? "adopted existing replacement" : "recreated", "instanceId", j->row.instance_id,
           "newInstanceId", new_id, "newName", j->row.new_name, "jobId", j->row.job_id,
           "#usedExistingData", "true");
  cJSON *o = nrd_outcome_new(&j->row, adopted ? "adopted" : "recreated");
  nrd_json_add_str(o, "newInstanceId", new_id);
  nrd_json_add_str(o, "newName", j->row.new_name);
  if (j->request)
    cJSON_AddItemToObject(o, "placement", placement_json(j));
  if (j->have_snap)
    nrd_recreate_notes(&j->snap, o);
  row_outcome(j, o);
}

static void step_delete(struct row_job *j, struct nrd_worker *w)
{
  struct nrd_nv_error err = { 0 };
  struct nrd_ledger_update u = { .state = NRD_ROW_DELETING, .set_delete_sent = true };
  if (!ledger_write(j, w, &u))
    return;
  enum nrd_nv_rc rc = nrd_nv_delete_instance(w->conn, j->row.instance_id, &err);
  if (rc == NRD_NV_OK || rc == NRD_NV_NOT_FOUND) {
    /* DELETED is not written on its own: the create step's next write (CREATING
     * before the create leaves, or DELETED itself when it stops short) records
     * the confirmed delete in the same transaction, one write fewer per row
     * while every worker queues on the one writer. A crash before that write
     * leaves DELETING, and the next run sees the instance gone and confirms
     * it; a crash after CREATING only costs one name look-up before the
     * create on resume, since the create may have been sent. */
    j->row.state = NRD_ROW_DELETED;
    LOG_INFO("deleted stuck instance", "instanceId", j->row.instance_id, "jobId", j->row.job_id,
             "#notFound", NRD_BOOL(rc == NRD_NV_NOT_FOUND));
    return;
  }
  if (rc == NRD_NV_PREPAID) {
    skip_row(j, w, &err);
    return;
  }
  if (rc == NRD_NV_ACCOUNT) {
    /* Refused: the instance is still there, and the row goes back to PENDING
     * as if no delete had been sent (so the next run checks it again). */
    j->delete_refused = true;
    j->row.delete_sent = false;
    account_refused(j, w, NRD_ROW_PENDING, &err);
    return;
  }
  if (rc == NRD_NV_FINAL) {
    char reason[512];
    snprintf(reason, sizeof(reason), "delete refused by Novita: %s", err.message);
    fail_row(j, w, reason);
    return;
  }
  novita_trouble(j, w, rc, "delete", &err);
}

/* What one create attempt left to do. */
enum create_next {
  CREATE_DONE = 0, /* settled: created, adopted, failed, deferred or parked */
  CREATE_RESEND,   /* not created (429, a transient reason): send it again */
  CREATE_LOOKUP    /* may exist (5xx, timeout): look the name up, then create */
};

/* One look-up (when asked) and one create. On a retryable outcome the row is
 * left as it is (its lease kept) and *err / *what say why. */
static enum create_next create_once(struct row_job *j, struct nrd_worker *w, bool lookup_first,
                                    struct nrd_nv_error *err, const char **what)
{
  char *new_id = NULL;
  enum nrd_nv_rc rc;

  if (lookup_first) {
    *what = "name look-up";
    rc = nrd_nv_find_by_name(w->conn, j->row.new_name, &new_id, err);
    if (rc == NRD_NV_TRANSIENT || rc == NRD_NV_BAD_RESPONSE)
      return CREATE_LOOKUP;
    if (rc != NRD_NV_OK) {
      novita_trouble(j, w, rc, "name look-up", err);
      return CREATE_DONE;
    }
    if (new_id) {
      recreated(j, w, new_id, true);
      free(new_id);
      return CREATE_DONE;
    }
  }
  if (!j->request && !plan_request(j, w))
    return CREATE_DONE;
  if (must_stop(j) || account_held(j, w)) {
    struct nrd_ledger_update keep = { .state = j->row.state, .release = true };
    if (!j->released)
      ledger_write(j, w, &keep);
    return CREATE_DONE;
  }
  struct nrd_ledger_update u = { .state = NRD_ROW_CREATING, .set_create_sent = true };
  if (!ledger_write(j, w, &u))
    return CREATE_DONE;
  LOG_INFO("creating replacement", "instanceId", j->row.instance_id, "jobId", j->row.job_id,
           "newName", j->row.new_name);
  pthread_mutex_lock(&j->ctx->lock);
  j->ctx->create_tried = true;
  pthread_mutex_unlock(&j->ctx->lock);
  *what = "create";
  rc = nrd_nv_create_instance(w->conn, j->request, &new_id, err);
  switch (rc) {
  case NRD_NV_OK:
    pthread_mutex_lock(&j->ctx->lock);
    j->ctx->create_accepted = true;
    pthread_mutex_unlock(&j->ctx->lock);
    recreated(j, w, new_id, false);
    free(new_id);
    return CREATE_DONE;
  case NRD_NV_ACCOUNT:
    account_refused(j, w, NRD_ROW_DELETED, err);
    return CREATE_DONE;
  case NRD_NV_FINAL:
  case NRD_NV_PREPAID:
  case NRD_NV_NOT_FOUND: {
    char reason[512];
    snprintf(reason, sizeof(reason),
             "create refused by Novita: %s; the old instance is deleted, retry after fixing",
             err->message);
    fail_row(j, w, reason);
    return CREATE_DONE;
  }
  case NRD_NV_TRANSIENT:
    if (nrd_nv_is_capacity(err->code)) {
      capacity_refused(j);
      replace_after_refusal(j, w);
    }
    return CREATE_RESEND; /* answered and refused, or never sent: nothing created */
  case NRD_NV_AMBIGUOUS:
  case NRD_NV_BAD_RESPONSE:
    return CREATE_LOOKUP;
  case NRD_NV_CIRCUIT_OPEN:
  case NRD_NV_DEADLINE:
    break;
  }
  novita_trouble(j, w, rc, "create", err);
  return CREATE_DONE;
}

/* Look-up (when a create may exist) and create, retried in this run after a
 * 429, a transient reason, a 5xx or a timeout, with backoff, up to
 * MAX_RETRY_ATTEMPTS: the row is left between delete and create only when
 * those are spent or the run stops, and its outcome says so. */
static void step_create(struct row_job *j, struct nrd_worker *w, bool lookup_first)
{
  struct run_ctx *ctx = j->ctx;
  unsigned max = ctx->runner->cfg->max_retry_attempts;
  struct nrd_nv_error err = { 0 };
  const char *what = "create";
  for (unsigned attempt = 0;; attempt++) {
    enum create_next next = create_once(j, w, lookup_first, &err, &what);
    if (next == CREATE_DONE)
      return;
    bool stopping = atomic_load(&ctx->runner->stop_work) || nrd_mono_ms() >= ctx->deadline_mono_ms;
    if (attempt >= max || stopping) {
      char reason[512];
      snprintf(reason, sizeof(reason),
               "%s failed: %s; %s after %u attempts: the old instance is deleted and has no "
               "replacement until the next run resumes this row",
               what, err.message, stopping ? "the run is stopping" : "retries spent", attempt + 1);
      if (!stopping) {
        /* fail_for_now's outcome, marked: retries spent. */
        struct nrd_ledger_update u = { .state = j->row.state,
                                       .last_error = reason,
                                       .release = true };
        LOG_WARN("recovery left between delete and create: retries spent", "instanceId",
                 j->row.instance_id, "jobId", j->row.job_id, "reason", reason);
        ledger_write(j, w, &u);
        cJSON *o = nrd_outcome_new(&j->row, "failed");
        nrd_json_add_str(o, "reason", reason);
        nrd_json_add_bool(o, "retriesSpent", true);
        if (err.code[0])
          nrd_json_add_str(o, "novitaReason", err.code);
        row_outcome(j, o);
        return;
      }
      fail_for_now(j, w, reason);
      return;
    }
    LOG_INFO("create retried in this run", "instanceId", j->row.instance_id, "jobId", j->row.job_id,
             "#attempt", NRD_I64(attempt + 2), "code", err.code, "#lookUpFirst",
             NRD_BOOL(next == CREATE_LOOKUP));
    nrd_novita_backoff(ctx->runner->nv, attempt);
    lookup_first = next == CREATE_LOOKUP;
  }
}

static void plan_only(struct row_job *j, struct nrd_worker *w, enum nrd_step step)
{
  /* Dry run: the same checks, nothing written, nothing sent but look-ups. */
  char reason[NRD_REASON_MAX];
  bool needs_product = false;
  cJSON *o;
  if (step == NRD_STEP_ABANDON_GONE || step == NRD_STEP_ABANDON_HEALTHY) {
    o = nrd_outcome_new(&j->row, "abandoned");
    nrd_json_add_str(o, "reason",
                     step == NRD_STEP_ABANDON_GONE
                         ? "instance no longer listed; it was removed by someone else"
                         : "instance is no longer migrating; left alone");
    row_outcome(j, o);
    return;
  }
  if (!j->have_snap || !nrd_recreate_check(&j->snap, &needs_product, reason)) {
    o = nrd_outcome_new(&j->row, "failed");
    nrd_json_add_str(o, "reason", j->have_snap ? reason : "no snapshot of this instance");
    row_outcome(j, o);
    return;
  }
  char *product_id = NULL;
  struct nrd_nv_error err = { 0 };
  if (needs_product) {
    enum nrd_nv_rc rc = resolve_product(j, w, &product_id, &err);
    if (rc != NRD_NV_OK || !product_id) {
      o = nrd_outcome_new(&j->row, "failed");
      nrd_json_add_str(o, "reason",
                       rc != NRD_NV_OK ? err.message
                                       : "no available spot product in the instance's region");
      row_outcome(j, o);
      return;
    }
  }
  cJSON *req =
      nrd_recreate_build(&j->snap, product_id ? product_id : j->snap.product_id, j->row.new_name);
  free(product_id);
  o = nrd_outcome_new(&j->row, "planned");
  nrd_json_add_str(o, "newName", j->row.new_name);
  nrd_json_add_str(o, "step", nrd_step_name(step));
  nrd_json_add_bool(o, "delete", step == NRD_STEP_DELETE);
  cJSON_AddItemToObject(o, "request", nrd_recreate_redact(req));
  nrd_recreate_notes(&j->snap, o);
  cJSON_Delete(req);
  row_outcome(j, o);
}

/* Claims the row (its lease) for this process, held: the claim commits with
 * the row's first write (nrd_store_ledger_claim_held), and until then this
 * worker makes only reads on its connection. false when the run leaves it:
 * held by another worker or process, finished meanwhile, or the store failed
 * (then deferred). */
static bool claim_row(struct row_job *j, struct nrd_worker *w, const struct nrd_ledger_row *in,
                      struct nrd_ledger_row *claimed)
{
  struct run_ctx *ctx = j->ctx;
  struct nrd_runner *r = ctx->runner;
  int rc = nrd_store_ledger_claim_held(w->store, in->job_id, r->owner, ctx->run_id, nrd_now_ms(),
                                       (int64_t)r->cfg->recovery_lease_seconds * 1000, claimed);
  if (rc != NRD_OK) {
    if (rc != NRD_NONE) {
      char reason[400];
      LOG_ERROR("ledger claim failed", "jobId", in->job_id, "#rc", NRD_I64(rc));
      nrd_run_store_failed(ctx, w->store);
      nrd_run_store_reason(ctx, reason, sizeof(reason));
      defer_row(j, reason);
    }
    return false;
  }
  j->row = *claimed;
  nrd_lease_hold(r, in->job_id);
  return true;
}

/* One pass through the machine; each step writes its next state first. */
static void drive(struct row_job *j, struct nrd_worker *w, enum nrd_step step)
{
  while (step != NRD_STEP_NONE) {
    enum nrd_row_state before = j->row.state;
    switch (step) {
    case NRD_STEP_ABANDON_GONE:
      abandon_row(j, w,
                  "instance no longer listed before we sent a delete; "
                  "it was removed by someone else");
      return;
    case NRD_STEP_ABANDON_HEALTHY: {
      char why[160];
      snprintf(why, sizeof(why), "instance is '%s' again, no longer migrating; left alone",
               j->snap.status ? j->snap.status : "unknown");
      abandon_row(j, w, why);
      return;
    }
    case NRD_STEP_DELETE:
      /* Check before delete: the replacement must be buildable first, the
       * account not refusing creates, the product offered in its cluster. */
      if (!plan_request(j, w) || account_held(j, w) || !capacity_ok(j, w))
        return;
      if (must_stop(j)) {
        struct nrd_ledger_update keep = { .state = j->row.state, .release = true };
        ledger_write(j, w, &keep);
        return;
      }
      step_delete(j, w);
      break;
    case NRD_STEP_CONFIRM_DELETED: {
      struct nrd_ledger_update d = { .state = NRD_ROW_DELETED };
      if (!ledger_write(j, w, &d))
        return;
      break;
    }
    case NRD_STEP_CREATE:
    case NRD_STEP_LOOKUP_CREATE:
      step_create(j, w, step == NRD_STEP_LOOKUP_CREATE);
      return;
    case NRD_STEP_NONE:
      break;
    }
    if (j->row.state == before || j->row.state != NRD_ROW_DELETED)
      return; /* the step settled the row (failed, deferred, ...) */
    step = nrd_recovery_next(&j->row, false, NULL);
  }
}

void nrd_recover_row(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_ledger_row *in)
{
  struct nrd_runner *r = ctx->runner;
  struct row_job j = { .ctx = ctx };
  struct nrd_ledger_row claimed = { 0 };
  bool held = false;

  j.row = *in; /* borrowed fields; replaced by the claimed copy below */
  if (must_stop(&j))
    return;
  if (!ctx->dry_run) {
    if (!claim_row(&j, w, in, &claimed))
      return;
    held = true;
  }
  j.have_snap = nrd_store_snapshot_get(w->store, j.row.instance_id, &j.snap) == NRD_OK;
  nrd_novita_conn_set_deadline(w->conn, ctx->deadline_mono_ms);

  /* Listed by this run's sync, or by a later one of another process. */
  bool listed = j.have_snap && nrd_store_snapshot_seen_since(w->store, j.row.instance_id,
                                                             ctx->sync_started_ms) == NRD_OK;
  enum nrd_step step = nrd_recovery_next(&j.row, listed, listed ? j.snap.status : NULL);

  if (step == NRD_STEP_DELETE || step == NRD_STEP_CREATE)
    LOG_INFO("handling failed migration", "instanceId", j.row.instance_id, "jobId", j.row.job_id,
             "step", nrd_step_name(step), "#hasImageUrl", NRD_BOOL(j.have_snap && j.snap.image_url),
             "#hasProductId", NRD_BOOL(j.have_snap && j.snap.product_id));
  if (ctx->dry_run) {
    if (step != NRD_STEP_NONE)
      plan_only(&j, w, step);
  } else {
    drive(&j, w, step);
  }

  if ((j.store_failed || j.lease_lost) && !j.outcome_added)
    row_outcome(&j, nrd_outcome_new(&j.row, "deferred"));
  if (held) {
    if (!j.released)
      nrd_store_ledger_release(w->store, in->job_id, r->owner);
    nrd_lease_unhold(r, in->job_id);
  }
  cJSON_Delete(j.request);
  if (j.have_snap)
    nrd_instance_cleanup(&j.snap);
  if (!ctx->dry_run)
    nrd_ledger_row_cleanup(&claimed);
}

/* ---- the recover step: the open rows fed to the pool ---- */

/* The brakes a previous run left: Novita's Retry-After (the client waits for
 * it) and the account brake (*probe_job: its refused row, heap, may be NULL;
 * returns whether it is set). */
static bool brakes_load(struct run_ctx *ctx, struct nrd_worker *w, char **probe_job)
{
  struct nrd_brake b;
  *probe_job = NULL;
  if (nrd_store_brake_get(w->store, "retry_after", &b) == NRD_OK) {
    nrd_novita_set_not_before(ctx->runner->nv, b.until_ms);
    nrd_brake_cleanup(&b);
  }
  if (nrd_store_brake_get(w->store, "account", &b) != NRD_OK)
    return false;
  snprintf(ctx->account_reason, sizeof(ctx->account_reason), "%s", b.reason ? b.reason : "");
  snprintf(ctx->account_message, sizeof(ctx->account_message), "%s", b.message ? b.message : "");
  LOG_WARN("account brake held from an earlier run: one probe first", "reason", b.reason, "message",
           b.message, "jobId", b.job_id);
  *probe_job = b.job_id;
  b.job_id = NULL;
  nrd_brake_cleanup(&b);
  return true;
}

/* At the step's end: Retry-After carried over, the account brake released
 * when a create went through, the brake gauges. */
static void brakes_store(struct run_ctx *ctx, struct nrd_worker *w, bool held)
{
  int64_t nb = nrd_novita_not_before(ctx->runner->nv);
  if (nb > nrd_now_ms()) {
    struct nrd_brake b = { .until_ms = nb };
    nrd_store_brake_set(w->store, "retry_after", &b, nrd_now_ms());
  }
  if (held && ctx->create_accepted && !ctx->account_blocked) {
    nrd_store_brake_clear(w->store, "account");
    LOG_INFO("account brake released: a create succeeded", "reason", ctx->account_reason);
  }
  nrd_metrics_brake_held("account", ctx->held_account);
  nrd_metrics_brake_held("capacity", ctx->held_capacity);
}

/* The canary: until a create is accepted in this run, rows go one at a time
 * on the coordinator, so an account-wide refusal stops the run after one
 * delete. With the account brake held from an earlier run, the first create
 * sent is its probe: if it is not accepted, the brake holds every other row. */
static void canary_row(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_ledger_row *row,
                       bool held)
{
  nrd_recover_row(ctx, w, row);
  pthread_mutex_lock(&ctx->lock);
  if (held && ctx->create_tried && !ctx->create_accepted)
    ctx->account_blocked = true;
  pthread_mutex_unlock(&ctx->lock);
}

static bool canary_open(struct run_ctx *ctx)
{
  pthread_mutex_lock(&ctx->lock);
  bool open = ctx->create_accepted;
  pthread_mutex_unlock(&ctx->lock);
  return open || ctx->dry_run;
}

/* The account brake's probe when a row waits between delete and create: its
 * create is sent again first. true when the row was worked on (it then has
 * its outcome, whatever became of it). */
static bool probe_first(struct run_ctx *ctx, struct nrd_worker *w, const char *job_id)
{
  struct nrd_ledger_row row;
  bool ran = false;
  if (!job_id || nrd_store_ledger_get(w->store, job_id, &row) != NRD_OK)
    return false;
  if (row.state == NRD_ROW_DELETED || row.state == NRD_ROW_CREATING) {
    LOG_INFO("account brake probe: the refused create again", "jobId", job_id);
    canary_row(ctx, w, &row, true);
    ran = true;
  }
  nrd_ledger_row_cleanup(&row);
  return ran;
}

/* A watch run works the rows the watch found, no other. */
static bool watched(const struct run_ctx *ctx, const char *job_id)
{
  for (size_t i = 0; i < ctx->n_watch_jobs; i++)
    if (!strcmp(ctx->watch_jobs[i], job_id))
      return true;
  return false;
}

struct pool_job {
  struct run_ctx *ctx;
  struct nrd_ledger_row row;
};

static void pool_process(void *job, void *worker_ctx)
{
  struct pool_job *pj = job;
  nrd_recover_row(pj->ctx, worker_ctx, &pj->row);
}

static void pool_free(void *job)
{
  struct pool_job *pj = job;
  nrd_ledger_row_cleanup(&pj->row);
  free(pj);
}

/* The feed's state across the batches of one run. */
struct feed {
  struct run_ctx *ctx;
  struct nrd_worker *w;
  bool held;       /* the account brake is held from an earlier run */
  char *probe_job; /* its refused row (heap, may be NULL) */
  bool probe_ran;  /* probe_job was worked on first: the feed skips it */
  size_t handed;   /* rows worked on in this run, for the brake */
};

/* One open row: deferred past the brake, on the coordinator while the
 * canary is closed, else handed to the pool (which takes it: *row zeroed). */
static void feed_row(struct feed *f, struct nrd_ledger_row *row)
{
  struct run_ctx *ctx = f->ctx;
  if (ctx->watch_only && !watched(ctx, row->job_id))
    return; /* not this run's: neither handed nor deferred */
  if (f->probe_ran && !strcmp(row->job_id, f->probe_job))
    return; /* the probe, worked on first (and counted) */
  if (f->handed++ >= ctx->runner->cfg->max_recoveries_per_run) {
    nrd_report_defer(ctx, row, "MAX_RECOVERIES_PER_RUN reached; the next run takes it");
    return;
  }
  if (!canary_open(ctx)) {
    canary_row(ctx, f->w, row, f->held);
    return;
  }
  struct pool_job *pj = nrd_xcalloc(1, sizeof(*pj));
  pj->ctx = ctx;
  pj->row = *row;
  memset(row, 0, sizeof(*row)); /* handed over */
  /* The queue has room: the feed waits for it below 1 × threads before
   * each batch of 2 × threads. Only a stopping pool refuses. */
  if (nrd_pool_submit(ctx->runner->pool, pool_process, pool_free, pj) != 0) {
    nrd_report_defer(ctx, &pj->row, "not worked on: the service is stopping");
    pool_free(pj);
  }
}

/* The rows are read a batch at a time while the pool's queue is short, so a
 * run of thousands never holds them all (BENCHMARKS.md, "Figures behind the
 * code"). */
static int feed_open_rows(struct feed *f)
{
  struct nrd_pool *pool = f->ctx->runner->pool;
  unsigned threads = nrd_pool_threads(pool);
  size_t batch = 2 * (size_t)threads;
  struct nrd_ledger_row after = { 0 }, *rows = NULL;
  size_t n_rows = 0;
  int rc = 0;
  for (;;) {
    nrd_pool_wait_queue_below(pool, threads);
    if (nrd_store_ledger_open(f->w->store, after.job_id ? &after : NULL, batch, &rows, &n_rows) !=
        NRD_OK) {
      nrd_run_store_failed(f->ctx, f->w->store);
      rc = -1;
      break;
    }
    if (n_rows == 0)
      break;
    nrd_ledger_row_cleanup(&after);
    after.job_id = nrd_xstrdup(rows[n_rows - 1].job_id);
    after.created_ms = rows[n_rows - 1].created_ms;
    for (size_t i = 0; i < n_rows; i++)
      feed_row(f, &rows[i]);
    nrd_ledger_rows_free(rows, n_rows); /* every row handed over or deferred */
  }
  nrd_ledger_row_cleanup(&after);
  nrd_pool_wait_idle(pool, 0); /* the rows handed over point into ctx */
  return rc;
}

int nrd_recover(struct run_ctx *ctx, struct nrd_worker *w)
{
  struct feed f = { .ctx = ctx, .w = w };
  f.held = !ctx->dry_run && brakes_load(ctx, w, &f.probe_job);
  if (f.held && probe_first(ctx, w, f.probe_job))
    f.handed++;
  int rc = feed_open_rows(&f);
  if (rc == 0)
    brakes_store(ctx, w, f.held);
  free(f.probe_job);
  return rc;
}
