/* Operator control off the caller's thread: a retry or an abandon of a
 * ledger row is written by the runner's control thread, on its own store
 * connection, and the caller is told through its callback. The HTTP thread
 * never waits for the store's write lock (a sync holds it for a page). */
#include <stdio.h>
#include <stdlib.h>

#include "core_internal.h"
#include "nrd/log.h"
#include "nrd/recreate.h"
#include "nrd/util.h"

struct control_op {
  enum nrd_control op;
  char *job_id, *reason;
  nrd_control_done_fn done;
  void *ud;
  struct control_op *next;
};

struct control {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct control_op *head, **tail;
  bool stop; /* no new op; the queued ones are still done */
  pthread_t thread;
  struct nrd_store *store;
};

/* A start_failed row: a new replacement, with a new fixed name, is created
 * by the next run; the replacement that did not start is left as it is. */
static int retry_start(struct nrd_store *st, const char *job_id, char *new_name,
                       size_t new_name_len, char *old_id, size_t old_id_len)
{
  struct nrd_ledger_row row = { 0 };
  char name[NRD_NAME_MAX + 1];
  int64_t now = nrd_now_ms();
  int rc = nrd_store_ledger_get(st, job_id, &row);
  if (rc == NRD_OK && row.state != NRD_ROW_START_FAILED)
    rc = NRD_NONE;
  if (rc == NRD_OK) {
    nrd_recreate_name(row.instance_name, row.instance_id, now, name);
    rc = nrd_store_ledger_retry_start(st, job_id, name, now, now);
  }
  if (rc == NRD_OK) {
    snprintf(new_name, new_name_len, "%s", name);
    snprintf(old_id, old_id_len, "%s", row.new_instance_id ? row.new_instance_id : "");
    LOG_INFO("new replacement asked for by operator", "jobId", job_id, "newName", name,
             "startFailedInstanceId", row.new_instance_id);
  }
  nrd_ledger_row_cleanup(&row);
  return rc;
}

static void control_do(struct nrd_store *st, const struct control_op *op)
{
  char name[NRD_NAME_MAX + 1] = "", old_id[128] = "";
  struct nrd_control_result res = { .new_name = name, .old_id = old_id };
  if (op->op == NRD_CONTROL_ABANDON) {
    res.rc = nrd_store_ledger_abandon(
        st, op->job_id, op->reason ? op->reason : "abandoned by operator", nrd_now_ms());
    if (res.rc == NRD_OK)
      LOG_INFO("recovery abandoned by operator", "jobId", op->job_id);
  } else {
    res.rc = nrd_store_ledger_retry(st, op->job_id, nrd_now_ms());
    if (res.rc == NRD_OK)
      LOG_INFO("recovery re-opened by operator", "jobId", op->job_id);
    if (res.rc == NRD_NONE) {
      res.rc = retry_start(st, op->job_id, name, sizeof(name), old_id, sizeof(old_id));
      res.new_replacement = res.rc == NRD_OK;
    }
  }
  if (op->done)
    op->done(op->ud, &res);
}

static void *control_main(void *arg)
{
  struct control *c = arg;
  pthread_mutex_lock(&c->lock);
  for (;;) {
    while (!c->stop && !c->head)
      pthread_cond_wait(&c->cond, &c->lock);
    struct control_op *op = c->head;
    if (!op)
      break; /* stopping, and every op asked for is done */
    c->head = op->next;
    if (!c->head)
      c->tail = &c->head;
    pthread_mutex_unlock(&c->lock);
    control_do(c->store, op);
    free(op->job_id);
    free(op->reason);
    free(op);
    pthread_mutex_lock(&c->lock);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

int nrd_runner_control(struct nrd_runner *r, enum nrd_control what, const char *job_id,
                       const char *reason, nrd_control_done_fn done, void *ud)
{
  struct control *c = r->control;
  struct control_op *op = nrd_xcalloc(1, sizeof(*op));
  *op = (struct control_op){ .op = what,
                             .job_id = nrd_xstrdup(job_id),
                             .reason = reason ? nrd_xstrdup(reason) : NULL,
                             .done = done,
                             .ud = ud };
  pthread_mutex_lock(&c->lock);
  bool stopping = c->stop;
  if (!stopping) {
    *c->tail = op;
    c->tail = &op->next;
    pthread_cond_signal(&c->cond);
  }
  pthread_mutex_unlock(&c->lock);
  if (stopping) {
    free(op->job_id);
    free(op->reason);
    free(op);
    return -1;
  }
  return 0;
}

void nrd_control_start(struct nrd_runner *r, struct nrd_store *st)
{
  struct control *c = nrd_xcalloc(1, sizeof(*c));
  c->store = st;
  c->tail = &c->head;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  r->control = c;
  nrd_thread_start(&c->thread, control_main, c);
}

/* Joins the control thread once every op asked for is done; from then on
 * nrd_runner_control refuses. The struct stays for a late caller until
 * nrd_control_free. */
void nrd_control_stop(struct nrd_runner *r)
{
  struct control *c = r->control;
  if (!c || !c->store)
    return;
  nrd_flag_raise(&c->lock, &c->cond, &c->stop);
  pthread_join(c->thread, NULL);
  nrd_store_close(c->store);
  c->store = NULL;
}

void nrd_control_free(struct nrd_runner *r)
{
  struct control *c = r->control;
  if (!c)
    return;
  nrd_control_stop(r);
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->lock);
  free(c);
  r->control = NULL;
}
