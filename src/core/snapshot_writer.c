/* The sync's snapshot writer: the runs of instances the coordinator reads
 * are stored on a pool worker (its own store connection), one transaction
 * per page, while the coordinator fetches and reads on. The queue between
 * them is bounded, so a sync holds one page's body and a few runs, whatever
 * the page size.
 *
 * The queue carries runs and page ends. The worker opens a page's
 * transaction at its first run and ends it at the page's end: committed
 * when the page was read whole, rolled back when it turned out unusable. */

#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

/* Runs waiting at most (their size: BENCHMARKS.md, "Figures behind the code"). */
#define WRITER_QUEUE 4u

enum item_kind { ITEM_RUN, ITEM_PAGE_OK, ITEM_PAGE_DROP, ITEM_FINISH };

struct item {
  struct item *next;
  enum item_kind kind;
  size_t n;
  struct nrd_instance inst[];
};

struct snapshot_writer {
  struct run_ctx *ctx;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* an item queued, an item taken, or done */
  struct item *head, *tail;
  size_t runs_queued;
  struct item *current; /* the run the store is reading (worker side) */
  bool failed;          /* storing failed: what comes is dropped */
  bool finish_taken;
  bool done; /* the worker let go (set by free_job, which runs last) */
};

static void item_free(struct item *it)
{
  if (!it)
    return;
  for (size_t i = 0; i < it->n; i++)
    nrd_instance_cleanup(&it->inst[i]);
  free(it);
}

static void items_free(struct item *it)
{
  while (it) {
    struct item *next = it->next;
    item_free(it);
    it = next;
  }
}

/* Worker side: the next item, waiting for one. */
static struct item *take(struct snapshot_writer *sw)
{
  pthread_mutex_lock(&sw->mu);
  while (!sw->head)
    pthread_cond_wait(&sw->cv, &sw->mu);
  struct item *it = sw->head;
  sw->head = it->next;
  if (!sw->head)
    sw->tail = NULL;
  if (it->kind == ITEM_RUN)
    sw->runs_queued--;
  if (it->kind == ITEM_FINISH)
    sw->finish_taken = true;
  pthread_cond_broadcast(&sw->cv);
  pthread_mutex_unlock(&sw->mu);
  return it;
}

/* nrd_snapshot_run_fn: the page's next run, its end, or its drop. */
static int next_run(void *ud, const struct nrd_instance **items, size_t *n)
{
  struct snapshot_writer *sw = ud;
  item_free(sw->current);
  sw->current = NULL;
  struct item *it = take(sw);
  enum item_kind kind = it->kind;
  if (kind == ITEM_RUN) {
    sw->current = it;
    *items = it->inst;
    *n = it->n;
    return 1;
  }
  item_free(it);
  return kind == ITEM_PAGE_OK ? 0 : -1; /* a finish inside a page drops it */
}

static void writer_process(void *job, void *worker_ctx)
{
  struct snapshot_writer *sw = job;
  struct nrd_worker *w = worker_ctx;

  while (!sw->finish_taken) {
    pthread_mutex_lock(&sw->mu);
    while (!sw->head)
      pthread_cond_wait(&sw->cv, &sw->mu);
    enum item_kind kind = sw->head->kind;
    bool failed = sw->failed;
    pthread_mutex_unlock(&sw->mu);
    if (kind != ITEM_RUN || failed) {
      item_free(take(sw)); /* a page end with no run, the finish, or a drop */
      continue;
    }
    int rc = nrd_store_snapshots_upsert_runs(w->store, next_run, sw, sw->ctx->run_id, nrd_now_ms());
    item_free(sw->current);
    sw->current = NULL;
    if (rc != NRD_OK && rc != NRD_NONE) {
      nrd_run_store_failed(sw->ctx, w->store);
      pthread_mutex_lock(&sw->mu);
      sw->failed = true;
      pthread_mutex_unlock(&sw->mu);
    }
  }
  nrd_store_release_memory(w->store); /* the sync's pages are not read again */
}

static void writer_free(void *job)
{
  struct snapshot_writer *sw = job;
  pthread_mutex_lock(&sw->mu);
  if (!sw->finish_taken)
    sw->failed = true; /* dropped by the pool without running */
  sw->done = true;
  pthread_cond_broadcast(&sw->cv);
  pthread_mutex_unlock(&sw->mu);
}

struct snapshot_writer *nrd_snapshot_writer_start(struct run_ctx *ctx)
{
  struct snapshot_writer *sw = nrd_xcalloc(1, sizeof *sw);
  sw->ctx = ctx;
  pthread_mutex_init(&sw->mu, NULL);
  pthread_cond_init(&sw->cv, NULL);
  if (nrd_pool_submit(ctx->runner->pool, writer_process, writer_free, sw) != 0) {
    pthread_cond_destroy(&sw->cv);
    pthread_mutex_destroy(&sw->mu);
    free(sw);
    return NULL;
  }
  return sw;
}

/* Queues it (taken), waiting while WRITER_QUEUE runs wait; false when the
 * writer failed or is gone (it is freed). */
static bool put(struct snapshot_writer *sw, struct item *it)
{
  pthread_mutex_lock(&sw->mu);
  while (it->kind == ITEM_RUN && sw->runs_queued >= WRITER_QUEUE && !sw->done && !sw->failed)
    pthread_cond_wait(&sw->cv, &sw->mu);
  bool ok = !sw->done && !sw->failed;
  if (ok || (!sw->done && it->kind != ITEM_RUN)) {
    it->next = NULL;
    if (sw->tail)
      sw->tail->next = it;
    else
      sw->head = it;
    sw->tail = it;
    if (it->kind == ITEM_RUN)
      sw->runs_queued++;
    pthread_cond_broadcast(&sw->cv);
    it = NULL;
  }
  pthread_mutex_unlock(&sw->mu);
  item_free(it);
  return ok;
}

static struct item *item_new(enum item_kind kind, size_t n)
{
  struct item *it = nrd_xcalloc(1, sizeof *it + n * sizeof it->inst[0]);
  it->kind = kind;
  it->n = n;
  return it;
}

bool nrd_snapshot_writer_push(struct snapshot_writer *sw, struct nrd_instance *items, size_t n)
{
  struct item *it = item_new(ITEM_RUN, n);
  memcpy(it->inst, items, n * sizeof *items);
  memset(items, 0, n * sizeof *items); /* moved */
  return put(sw, it);
}

void nrd_snapshot_writer_page_end(struct snapshot_writer *sw, bool usable)
{
  put(sw, item_new(usable ? ITEM_PAGE_OK : ITEM_PAGE_DROP, 0));
}

bool nrd_snapshot_writer_finish(struct snapshot_writer *sw)
{
  put(sw, item_new(ITEM_FINISH, 0));
  pthread_mutex_lock(&sw->mu);
  while (!sw->done)
    pthread_cond_wait(&sw->cv, &sw->mu);
  bool ok = !sw->failed;
  pthread_mutex_unlock(&sw->mu);
  items_free(sw->head); /* left by a writer the pool dropped */
  pthread_cond_destroy(&sw->cv);
  pthread_mutex_destroy(&sw->mu);
  free(sw);
  return ok;
}
