#ifndef NRD_POOL_H
#define NRD_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A bounded worker pool (mutex + condvar + FIFO, as redis's bio.c).
 *
 * Ownership: nrd_pool_submit hands the job over. process(job, worker_ctx)
 * runs on a worker thread without the pool lock held; free_job(job) always
 * runs exactly once afterwards, also for jobs still queued when the pool is
 * destroyed without running them. A full queue refuses (returns -1) rather
 * than blocking: the caller decides.
 *
 * Each worker thread calls thread_init(ctx) once at start; its result is the
 * worker_ctx handed to every process call on that thread, and to
 * thread_fini at the end (one curl handle and one store connection per thread).
 * nrd_pool_create returns once every thread has run thread_init; when one
 * returned NULL it stops the others (thread_fini for each that succeeded)
 * and returns NULL. */

typedef void *(*nrd_pool_thread_init_fn)(void *ctx);
typedef void (*nrd_pool_thread_fini_fn)(void *worker_ctx);
typedef void (*nrd_pool_process_fn)(void *job, void *worker_ctx);
typedef void (*nrd_pool_free_fn)(void *job);

struct nrd_pool;

/* The runner's queue bound, fixed: a run keeps at most two listings, the
 * snapshot writer and 3 x MIGRATION_MAX_CONCURRENT rows (768 at the most)
 * queued, and waits for room when it is full. It is not a setting:
 * MAX_RECOVERIES_PER_RUN is the per-run brake and nothing else. */
#define NRD_POOL_QUEUE_BOUND 1024u

struct nrd_pool *nrd_pool_create(unsigned threads, size_t queue_cap, nrd_pool_thread_init_fn init,
                                 nrd_pool_thread_fini_fn fini, void *ctx);
/* 0 queued; -1 queue full or pool stopping (job NOT taken: caller still owns it). */
int nrd_pool_submit(struct nrd_pool *p, nrd_pool_process_fn process, nrd_pool_free_fn free_job,
                    void *job);
/* Waits until the queue is empty and no job runs, or until deadline_mono_ms
 * (0: no deadline). true when idle. */
bool nrd_pool_wait_idle(struct nrd_pool *p, int64_t deadline_mono_ms);
/* Waits until fewer than n jobs are queued (not counting the running ones)
 * or the pool is stopping: a producer that keeps the queue short keeps its
 * memory short too. */
void nrd_pool_wait_queue_below(struct nrd_pool *p, size_t n);
/* Stops taking jobs, drops the queued ones (their free_job runs), waits for the
 * running ones, joins threads. */
void nrd_pool_destroy(struct nrd_pool *p);
unsigned nrd_pool_threads(const struct nrd_pool *p);

#endif
