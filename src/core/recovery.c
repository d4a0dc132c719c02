/* One ledger row, driven through its states on a worker thread.
 *
 * The rule of the ledger: the next state is written before the side effect
 * (DELETING before the delete leaves, CREATING before the create), so a crash
 * at any point resumes from a state that says what may have happened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/recovery.h"
#include "nrd/recreate.h"
#include "nrd/util.h"

struct row_job {
  struct run_ctx *ctx;
  struct nrd_ledger_row row;   /* as read when the run listed it */
  struct nrd_instance snap;
  bool have_snap;
  char reason[512];
  cJSON *request;              /* built create request, when we got that far */
  bool released;               /* a write gave the lease back: no release needed */
};

cJSON *nrd_outcome_new(const struct nrd_ledger_row *row, const char *action)
{
  cJSON *o = cJSON_CreateObject();
  if(!o)
    abort();
  nrd_json_add_str(o, "instanceId", row->instance_id);
  nrd_json_add_str(o, "instanceName", row->instance_name);
  nrd_json_add_str(o, "jobId", row->job_id);
  nrd_json_add_str(o, "action", action);
  return o;
}

/* An event for the outbox, body shaped as DESIGN.md's webhooks. */
static void event_init(struct nrd_event *ev, const char *type, cJSON *data)
{
  char id[64];
  char at[32];
  cJSON *body = cJSON_CreateObject();
  if(!body)
    abort();
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
  cJSON *d = cJSON_CreateObject();
  if(!d)
    abort();
  nrd_json_add_str(d, "instanceId", row->instance_id);
  nrd_json_add_str(d, "instanceName", row->instance_name);
  nrd_json_add_str(d, "jobId", row->job_id);
  return d;
}

/* Writes a state change as the lease owner. false when the lease was lost or
 * the database refused (then this worker stops touching the row). */
static bool ledger_write(struct row_job *j, struct nrd_worker *w,
                         const struct nrd_ledger_update *u)
{
  int rc = nrd_store_ledger_update(w->store, j->row.job_id, w->runner->owner, u, nrd_now_ms());
  if(rc == NRD_OK && u->event && w->runner->event_hook)
    w->runner->event_hook(w->runner->event_hook_ud);
  if(rc == NRD_OK) {
    j->row.state = u->state;
    j->released = u->release;
    if(u->set_delete_sent)
      j->row.delete_sent = true;
    if(u->set_create_sent)
      j->row.create_sent = true;
    return true;
  }
  LOG_ERROR("ledger write failed", "jobId", j->row.job_id, "state", nrd_row_state_name(u->state),
            "#rc", NRD_I64(rc));
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
  struct nrd_ledger_update u = {.state = NRD_ROW_FAILED, .last_error = reason, .release = true,
                                .event = &ev};
  LOG_WARN("recovery failed", "instanceId", j->row.instance_id, "jobId", j->row.job_id,
           "reason", reason);
  ledger_write(j, w, &u);
  nrd_event_cleanup(&ev);
  cJSON *o = nrd_outcome_new(&j->row, "failed");
  nrd_json_add_str(o, "reason", reason);
  nrd_run_add_outcome(j->ctx, o);
}

static void defer_row(struct row_job *j, const char *reason)
{
  cJSON *o = nrd_outcome_new(&j->row, "deferred");
  nrd_json_add_str(o, "reason", reason);
  nrd_run_add_outcome(j->ctx, o);
}

/* A failure that a later run retries: the row stays open where it is. When
 * shutdown aborted the call, the row is parked: deferred, not an error. */
static void fail_for_now(struct row_job *j, struct nrd_worker *w, const char *reason)
{
  bool parked = atomic_load(&j->ctx->runner->stop_work);
  struct nrd_ledger_update u = {.state = j->row.state, .last_error = reason, .release = true};
  if(parked)
    LOG_INFO("recovery parked by shutdown", "instanceId", j->row.instance_id, "jobId",
             j->row.job_id, "state", nrd_row_state_name(j->row.state), "reason", reason);
  else
    LOG_WARN("recovery step failed; next run retries", "instanceId", j->row.instance_id,
             "jobId", j->row.job_id, "state", nrd_row_state_name(j->row.state), "reason", reason);
  ledger_write(j, w, &u);
  if(parked) {
    defer_row(j, "service is shutting down; the next run resumes this row");
    return;
  }
  cJSON *o = nrd_outcome_new(&j->row, "failed");
  nrd_json_add_str(o, "reason", reason);
  nrd_run_add_outcome(j->ctx, o);
}

static void abandon_row(struct row_job *j, struct nrd_worker *w, const char *reason)
{
  struct nrd_ledger_update u = {.state = NRD_ROW_ABANDONED, .last_error = reason, .release = true};
  LOG_INFO("recovery abandoned", "instanceId", j->row.instance_id, "jobId", j->row.job_id,
           "reason", reason);
  ledger_write(j, w, &u);
  cJSON *o = nrd_outcome_new(&j->row, "abandoned");
  nrd_json_add_str(o, "reason", reason);
  nrd_run_add_outcome(j->ctx, o);
}

/* Deferred when the run must stop starting work; true if so. */
static bool must_stop(struct row_job *j)
{
  struct nrd_runner *r = j->ctx->runner;
  if(atomic_load(&r->stop_work)) {
    defer_row(j, "service is shutting down; the next run resumes this row");
    return true;
  }
  if(nrd_mono_ms() >= j->ctx->deadline_mono_ms) {
    defer_row(j, "run deadline reached; the next run resumes this row");
    return true;
  }
  if(nrd_novita_circuit_state(r->nv) == 1) {
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
  if(rc == NRD_NV_CIRCUIT_OPEN || rc == NRD_NV_DEADLINE) {
    struct nrd_ledger_update u = {.state = j->row.state, .release = true};
    ledger_write(j, w, &u);
    if(rc == NRD_NV_CIRCUIT_OPEN) {
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
  for(e = ctx->products; e; e = e->next)
    if(!strcmp(e->name, j->snap.product_name) && !strcmp(e->region, region))
      break;
  if(!e) {
    e = nrd_xcalloc(1, sizeof(*e));
    e->name = nrd_xstrdup(j->snap.product_name);
    e->region = nrd_xstrdup(region);
    e->next = ctx->products;
    ctx->products = e;
  }
  while(e->loading)
    pthread_cond_wait(&ctx->product_cond, &ctx->lock);
  if(!e->loaded || e->rc != NRD_NV_OK) {
    /* Load (or retry a failed load) outside the lock. */
    struct nrd_product *list = NULL;
    size_t n = 0;
    e->loading = true;
    pthread_mutex_unlock(&ctx->lock);
    enum nrd_nv_rc rc = nrd_nv_list_products(w->conn, e->name, &list, &n, err);
    long pick = rc == NRD_NV_OK ? nrd_recreate_pick_product(list, n, e->name, region) : -1;
    pthread_mutex_lock(&ctx->lock);
    e->rc = rc;
    free(e->product_id);
    e->product_id = pick >= 0 ? nrd_xstrdup(list[pick].id) : NULL;
    if(rc != NRD_NV_OK)
      snprintf(e->error, sizeof(e->error), "%s", err->message);
    e->loading = false;
    e->loaded = true;
    pthread_cond_broadcast(&ctx->product_cond);
    nrd_products_free(list, n);
  }
  enum nrd_nv_rc rc = e->rc;
  if(rc == NRD_NV_OK)
    *id = nrd_xstrdup(e->product_id);
  else
    snprintf(err->message, sizeof(err->message), "%s", e->error);
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
  struct nrd_nv_error err = {0};

  if(!j->have_snap) {
    fail_row(j, w, "no snapshot of this instance was ever stored; instance left untouched");
    return false;
  }
  if(!nrd_recreate_check(&j->snap, &needs_product, reason)) {
    fail_row(j, w, reason);
    return false;
  }
  if(needs_product) {
    enum nrd_nv_rc rc = resolve_product(j, w, &product_id, &err);
    if(rc != NRD_NV_OK) {
      novita_trouble(j, w, rc, "product look-up", &err);
      return false;
    }
    if(!product_id) {
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
  j->request = nrd_recreate_build(&j->snap, product_id ? product_id : j->snap.product_id,
                                  j->row.new_name);
  free(product_id);
  return true;
}

static void recreated(struct row_job *j, struct nrd_worker *w, const char *new_id, bool adopted)
{
  struct nrd_event ev;
  cJSON *data = event_data(&j->row);
  nrd_json_add_str(data, "newInstanceId", new_id);
  nrd_json_add_str(data, "newName", j->row.new_name);
  nrd_json_add_bool(data, "adopted", adopted);
  if(j->request)
    cJSON_AddItemToObject(data, "request", nrd_recreate_redact(j->request));
  event_init(&ev, "instance.recreated", data);
  struct nrd_ledger_update u = {.state = NRD_ROW_CREATED, .new_instance_id = new_id,
                                .last_error = "", .set_adopted = adopted, .release = true,
                                .event = &ev};
  bool ok = ledger_write(j, w, &u);
  nrd_event_cleanup(&ev);
  if(!ok)
    return;
  LOG_INFO(adopted ? "adopted existing replacement" : "recreated", "instanceId",
           j->row.instance_id, "newInstanceId", new_id, "newName", j->row.new_name,
           "jobId", j->row.job_id, "#usedExistingData", "true");
  cJSON *o = nrd_outcome_new(&j->row, adopted ? "adopted" : "recreated");
  nrd_json_add_str(o, "newInstanceId", new_id);
  nrd_json_add_str(o, "newName", j->row.new_name);
  nrd_run_add_outcome(j->ctx, o);
}

static void step_delete(struct row_job *j, struct nrd_worker *w)
{
  struct nrd_nv_error err = {0};
  struct nrd_ledger_update u = {.state = NRD_ROW_DELETING, .set_delete_sent = true};
  if(!ledger_write(j, w, &u))
    return;
  enum nrd_nv_rc rc = nrd_nv_delete_instance(w->conn, j->row.instance_id, &err);
  if(rc == NRD_NV_OK || rc == NRD_NV_NOT_FOUND) {
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
  if(rc == NRD_NV_FINAL) {
    char reason[512];
    snprintf(reason, sizeof(reason), "delete refused by Novita: %s", err.message);
    fail_row(j, w, reason);
    return;
  }
  novita_trouble(j, w, rc, "delete", &err);
}

static void step_create(struct row_job *j, struct nrd_worker *w, bool lookup_first)
{
  struct nrd_nv_error err = {0};
  char *new_id = NULL;
  enum nrd_nv_rc rc;

  if(lookup_first) {
    rc = nrd_nv_find_by_name(w->conn, j->row.new_name, &new_id, &err);
    if(rc != NRD_NV_OK) {
      novita_trouble(j, w, rc, "name look-up", &err);
      return;
    }
    if(new_id) {
      recreated(j, w, new_id, true);
      free(new_id);
      return;
    }
  }
  if(!j->request && !plan_request(j, w))
    return;
  if(must_stop(j)) {
    struct nrd_ledger_update keep = {.state = j->row.state, .release = true};
    ledger_write(j, w, &keep);
    return;
  }
  struct nrd_ledger_update u = {.state = NRD_ROW_CREATING, .set_create_sent = true};
  if(!ledger_write(j, w, &u))
    return;
  LOG_INFO("creating replacement", "instanceId", j->row.instance_id, "jobId", j->row.job_id,
           "newName", j->row.new_name);
  rc = nrd_nv_create_instance(w->conn, j->request, &new_id, &err);
  if(rc == NRD_NV_OK) {
    recreated(j, w, new_id, false);
    free(new_id);
    return;
  }
  if(rc == NRD_NV_FINAL) {
    char reason[512];
    snprintf(reason, sizeof(reason),
             "create refused by Novita: %s; the old instance is deleted, retry after fixing",
             err.message);
    fail_row(j, w, reason);
    return;
  }
  if(rc == NRD_NV_AMBIGUOUS || rc == NRD_NV_BAD_RESPONSE) {
    char reason[512];
    snprintf(reason, sizeof(reason),
             "create outcome unknown (%s); the next run looks the name up before creating again",
             err.message);
    fail_for_now(j, w, reason);
    return;
  }
  novita_trouble(j, w, rc, "create", &err);
}

static void plan_only(struct row_job *j, struct nrd_worker *w, enum nrd_step step)
{
  /* Dry run: the same checks, nothing written, nothing sent but look-ups. */
  char reason[NRD_REASON_MAX];
  bool needs_product = false;
  cJSON *o;
  if(step == NRD_STEP_ABANDON_GONE || step == NRD_STEP_ABANDON_HEALTHY) {
    o = nrd_outcome_new(&j->row, "abandoned");
    nrd_json_add_str(o, "reason", step == NRD_STEP_ABANDON_GONE
                     ? "instance no longer listed; it was removed by someone else"
                     : "instance is no longer migrating; left alone");
    nrd_run_add_outcome(j->ctx, o);
    return;
  }
  if(!j->have_snap || !nrd_recreate_check(&j->snap, &needs_product, reason)) {
    o = nrd_outcome_new(&j->row, "failed");
    nrd_json_add_str(o, "reason", j->have_snap ? reason : "no snapshot of this instance");
    nrd_run_add_outcome(j->ctx, o);
    return;
  }
  char *product_id = NULL;
  struct nrd_nv_error err = {0};
  if(needs_product) {
    enum nrd_nv_rc rc = resolve_product(j, w, &product_id, &err);
    if(rc != NRD_NV_OK || !product_id) {
      o = nrd_outcome_new(&j->row, "failed");
      nrd_json_add_str(o, "reason", rc != NRD_NV_OK ? err.message
                       : "no available spot product in the instance's region");
      nrd_run_add_outcome(j->ctx, o);
      return;
    }
  }
  cJSON *req = nrd_recreate_build(&j->snap, product_id ? product_id : j->snap.product_id,
                                  j->row.new_name);
  free(product_id);
  o = nrd_outcome_new(&j->row, "planned");
  nrd_json_add_str(o, "newName", j->row.new_name);
  nrd_json_add_str(o, "step", nrd_step_name(step));
  nrd_json_add_bool(o, "delete", step == NRD_STEP_DELETE);
  cJSON_AddItemToObject(o, "request", nrd_recreate_redact(req));
  cJSON_Delete(req);
  nrd_run_add_outcome(j->ctx, o);
}

void nrd_recover_row(struct run_ctx *ctx, struct nrd_worker *w, const struct nrd_ledger_row *in)
{
  struct nrd_runner *r = ctx->runner;
  struct row_job j = {.ctx = ctx};
  struct nrd_ledger_row claimed = {0};
  bool held = false;

  j.row = *in;  /* borrowed fields; replaced by the claimed copy below */
  if(must_stop(&j))
    return;

  if(!ctx->dry_run) {
    int rc = nrd_store_ledger_claim(w->store, in->job_id, r->owner, ctx->run_id, nrd_now_ms(),
                                    (int64_t)r->cfg->recovery_lease_seconds * 1000, &claimed);
    if(rc != NRD_OK) {
      if(rc != NRD_NONE)
        LOG_ERROR("ledger claim failed", "jobId", in->job_id, "#rc", NRD_I64(rc));
      return;  /* held by another worker or process, or finished meanwhile */
    }
    j.row = claimed;
    nrd_runner_hold(r, in->job_id);
    held = true;
  }
  j.have_snap = nrd_store_snapshot_get(w->store, j.row.instance_id, &j.snap) == NRD_OK;
  nrd_novita_conn_set_deadline(w->conn, ctx->deadline_mono_ms);

  /* Listed by this run's sync, or by a later one of another process. */
  bool listed = j.have_snap && nrd_store_snapshot_seen_since(w->store, j.row.instance_id,
                                                              ctx->sync_started_ms) == NRD_OK;
  enum nrd_step step = nrd_recovery_next(&j.row, listed, listed ? j.snap.status : NULL);

  if(step == NRD_STEP_DELETE || step == NRD_STEP_CREATE)
    LOG_INFO("handling failed migration", "instanceId", j.row.instance_id, "jobId", j.row.job_id,
             "step", nrd_step_name(step), "#hasImageUrl", NRD_BOOL(j.have_snap && j.snap.image_url),
             "#hasProductId", NRD_BOOL(j.have_snap && j.snap.product_id));

  if(ctx->dry_run) {
    if(step != NRD_STEP_NONE)
      plan_only(&j, w, step);
    goto out;
  }

  /* One pass through the machine; each step writes its next state first. */
  while(step != NRD_STEP_NONE) {
    enum nrd_row_state before = j.row.state;
    switch(step) {
    case NRD_STEP_ABANDON_GONE:
      abandon_row(&j, w, "instance no longer listed before we sent a delete; "
                  "it was removed by someone else");
      goto out;
    case NRD_STEP_ABANDON_HEALTHY: {
      char why[160];
      snprintf(why, sizeof(why), "instance is '%s' again, no longer migrating; left alone",
               j.snap.status ? j.snap.status : "unknown");
      abandon_row(&j, w, why);
      goto out;
    }
    case NRD_STEP_DELETE:
      /* Check before delete: the replacement must be buildable first. */
      if(!plan_request(&j, w))
        goto out;
      if(must_stop(&j)) {
        struct nrd_ledger_update keep = {.state = j.row.state, .release = true};
        ledger_write(&j, w, &keep);
        goto out;
      }
      step_delete(&j, w);
      break;
    case NRD_STEP_CONFIRM_DELETED: {
      struct nrd_ledger_update d = {.state = NRD_ROW_DELETED};
      if(!ledger_write(&j, w, &d))
        goto out;
      break;
    }
    case NRD_STEP_CREATE:
    case NRD_STEP_LOOKUP_CREATE:
      step_create(&j, w, step == NRD_STEP_LOOKUP_CREATE);
      goto out;
    case NRD_STEP_NONE:
      break;
    }
    if(j.row.state == before || j.row.state != NRD_ROW_DELETED)
      goto out;  /* the step settled the row (failed, deferred, ...) */
    step = nrd_recovery_next(&j.row, false, NULL);
  }

out:
  if(held) {
    if(!j.released)
      nrd_store_ledger_release(w->store, in->job_id, r->owner);
    nrd_runner_unhold(r, in->job_id);
  }
  cJSON_Delete(j.request);
  if(j.have_snap)
    nrd_instance_cleanup(&j.snap);
  if(!ctx->dry_run)
    nrd_ledger_row_cleanup(&claimed);
}
