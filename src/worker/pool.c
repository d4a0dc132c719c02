/* Bounded worker pool: one mutex, two condition variables, a FIFO ring.
 *
 * Lock rules: every field below the mutex is read and written with it held;
 * process and free_job callbacks always run with it released. */

#include "nrd/pool.h"
#include "nrd/thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "nrd/util.h"

struct pool_job {
  nrd_pool_process_fn process;
  nrd_pool_free_fn free_job;
  void *job;
};

struct nrd_pool {
  pthread_mutex_t mu;
  pthread_cond_t work; /* a job was queued, or the pool is stopping */
  pthread_cond_t idle; /* a job finished, or one was taken */
  struct pool_job *ring;
  size_t cap, head, count;
  unsigned running; /* jobs being processed right now */
  bool stopping;
  nrd_pool_thread_init_fn init;
  nrd_pool_thread_fini_fn fini;
  void *ctx;
  pthread_t *threads;
  unsigned n_threads;
  unsigned started; /* threads past init (signalled on idle) */
  bool init_failed; /* an init returned NULL: the pool is not created */
};

static void job_release(const struct pool_job *j)
{
  if (j->free_job)
    j->free_job(j->job);
}

static void *worker_main(void *arg)
{
  struct nrd_pool *p = arg;
  void *wctx = p->init ? p->init(p->ctx) : p->ctx;
  bool failed = p->init && !wctx;

  pthread_mutex_lock(&p->mu);
  p->started++;
  p->init_failed |= failed;
  pthread_cond_broadcast(&p->idle);
  for (;;) {
    if (failed) {
      pthread_mutex_unlock(&p->mu);
      return NULL; /* nothing to fini: init gave nothing */
    }
    while (!p->stopping && p->count == 0)
      pthread_cond_wait(&p->work, &p->mu);
    if (p->stopping)
      break;
    struct pool_job j = p->ring[p->head];
    p->head = (p->head + 1) % p->cap;
    p->count--;
    p->running++;
    pthread_cond_broadcast(&p->idle); /* the queue is shorter */
    pthread_mutex_unlock(&p->mu);

    j.process(j.job, wctx);
    job_release(&j);

    pthread_mutex_lock(&p->mu);
    p->running--;
    pthread_cond_broadcast(&p->idle);
  }
  pthread_mutex_unlock(&p->mu);

  if (p->fini)
    p->fini(wctx);
  return NULL;
}

/* Stops the workers, hands every queued job to free_job, joins n threads. */
static void pool_stop(struct nrd_pool *p, unsigned n)
{
  pthread_mutex_lock(&p->mu);
  p->stopping = true;
  size_t dropped = p->count;
  size_t first = p->head;
  p->count = 0;
  pthread_cond_broadcast(&p->work);
  pthread_cond_broadcast(&p->idle);
  pthread_mutex_unlock(&p->mu);

  /* No worker touches the ring once stopping is set, and submit refuses. */
  for (size_t i = 0; i < dropped; i++)
    job_release(&p->ring[(first + i) % p->cap]);
  for (unsigned i = 0; i < n; i++)
    pthread_join(p->threads[i], NULL);
}

static void pool_free(struct nrd_pool *p)
{
  pthread_cond_destroy(&p->idle);
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p->ring);
  free(p);
}

struct nrd_pool *nrd_pool_create(unsigned threads, size_t queue_cap, nrd_pool_thread_init_fn init,
                                 nrd_pool_thread_fini_fn fini, void *ctx)
{
  if (threads == 0 || queue_cap == 0 || queue_cap > SIZE_MAX / sizeof(struct pool_job))
    return NULL;

  struct nrd_pool *p = nrd_xcalloc(1, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  nrd_cond_init_mono(&p->idle); /* wait_idle deadlines are monotonic */
  p->ring = nrd_xcalloc(queue_cap, sizeof *p->ring);
  p->cap = queue_cap;
  p->init = init;
  p->fini = fini;
  p->ctx = ctx;
  p->threads = nrd_xcalloc(threads, sizeof *p->threads);

  for (unsigned i = 0; i < threads; i++) {
    if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
      pool_stop(p, i);
      pool_free(p);
      return NULL;
    }
  }
  p->n_threads = threads;

  /* Every thread has its context before the pool is handed out: a caller
   * that changes what init opens (a file moved away) cannot race it. */
  pthread_mutex_lock(&p->mu);
  while (p->started < threads)
    pthread_cond_wait(&p->idle, &p->mu);
  bool failed = p->init_failed;
  pthread_mutex_unlock(&p->mu);
  if (failed) {
    pool_stop(p, threads);
    pool_free(p);
    return NULL;
  }
  return p;
}

int nrd_pool_submit(struct nrd_pool *p, nrd_pool_process_fn process, nrd_pool_free_fn free_job,
                    void *job)
{
  int rc = -1;
  if (!p || !process)
    return -1;
  pthread_mutex_lock(&p->mu);
  if (!p->stopping && p->count < p->cap) {
    p->ring[(p->head + p->count) % p->cap] =
        (struct pool_job){ .process = process, .free_job = free_job, .job = job };
    p->count++;
    pthread_cond_signal(&p->work);
    rc = 0;
  }
  pthread_mutex_unlock(&p->mu);
  return rc;
}

void nrd_pool_wait_queue_below(struct nrd_pool *p, size_t n)
{
  pthread_mutex_lock(&p->mu);
  while (!p->stopping && p->count >= n)
    pthread_cond_wait(&p->idle, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

bool nrd_pool_wait_idle(struct nrd_pool *p, int64_t deadline_mono_ms)
{
  struct timespec ts = { .tv_sec = (time_t)(deadline_mono_ms / 1000),
                         .tv_nsec = (long)(deadline_mono_ms % 1000) * 1000000L };
  bool idle;

  pthread_mutex_lock(&p->mu);
  for (;;) {
    idle = p->count == 0 && p->running == 0;
    if (idle)
      break;
    if (deadline_mono_ms <= 0) {
      pthread_cond_wait(&p->idle, &p->mu);
    } else if (pthread_cond_timedwait(&p->idle, &p->mu, &ts) == ETIMEDOUT) {
      idle = p->count == 0 && p->running == 0;
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return idle;
}

void nrd_pool_destroy(struct nrd_pool *p)
{
  if (!p)
    return;
  pool_stop(p, p->n_threads);
  pool_free(p);
}

unsigned nrd_pool_threads(const struct nrd_pool *p)
{
  return p ? p->n_threads : 0;
}
