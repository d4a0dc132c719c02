/* Worker pool: every job runs, every free runs once, full queue refuses,
 * destroy drops queued jobs through free_job, init/fini once per thread. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "nrd/pool.h"
#include "nrd/util.h"

struct counters {
  atomic_int inits, finis, processed, freed;
  atomic_int ctx_mismatch;
  pthread_mutex_t gate_mu;
  pthread_cond_t gate_cv;
  bool gate_open;
  atomic_int entered;
};

struct job {
  struct counters *c;
  atomic_int frees; /* per job: must end at exactly 1 */
  atomic_int runs;
  bool block; /* wait at the gate before returning */
};

struct worker_ctx {
  struct counters *c;
  int magic;
};

static void *t_init(void *ctx)
{
  struct counters *c = ctx;
  atomic_fetch_add(&c->inits, 1);
  struct worker_ctx *w = nrd_xmalloc(sizeof *w);
  w->c = c;
  w->magic = 4242;
  return w;
}

static void t_fini(void *wctx)
{
  struct worker_ctx *w = wctx;
  atomic_fetch_add(&w->c->finis, 1);
  free(w);
}

static void t_process(void *job, void *wctx)
{
  struct job *j = job;
  const struct worker_ctx *w = wctx;
  if (!w || w->magic != 4242 || w->c != j->c)
    atomic_fetch_add(&j->c->ctx_mismatch, 1);
  atomic_fetch_add(&j->runs, 1);
  atomic_fetch_add(&j->c->processed, 1);
  if (j->block) {
    atomic_fetch_add(&j->c->entered, 1);
    pthread_mutex_lock(&j->c->gate_mu);
    while (!j->c->gate_open)
      pthread_cond_wait(&j->c->gate_cv, &j->c->gate_mu);
    pthread_mutex_unlock(&j->c->gate_mu);
  }
}

static void t_free(void *job)
{
  struct job *j = job;
  atomic_fetch_add(&j->frees, 1);
  atomic_fetch_add(&j->c->freed, 1);
}

static void counters_init(struct counters *c)
{
  *c = (struct counters){ 0 };
  pthread_mutex_init(&c->gate_mu, NULL);
  pthread_cond_init(&c->gate_cv, NULL);
}

static void open_gate(struct counters *c)
{
  pthread_mutex_lock(&c->gate_mu);
  c->gate_open = true;
  pthread_cond_broadcast(&c->gate_cv);
  pthread_mutex_unlock(&c->gate_mu);
}

static void wait_entered(struct counters *c, int n)
{
  int64_t until = nrd_mono_ms() + 10000;
  while (atomic_load(&c->entered) < n && nrd_mono_ms() < until)
    nrd_sleep_ms(1);
  assert_int_equal(atomic_load(&c->entered), n);
}

static void test_runs_all_jobs(void **state)
{
  enum { N = 500, K = 4 };
  struct counters c;
  counters_init(&c);
  struct job *jobs = nrd_xcalloc(N, sizeof *jobs);
  struct nrd_pool *p = nrd_pool_create(K, N, t_init, t_fini, &c);
  assert_non_null(p);
  assert_int_equal(nrd_pool_threads(p), K);

  for (int i = 0; i < N; i++) {
    jobs[i].c = &c;
    assert_int_equal(nrd_pool_submit(p, t_process, t_free, &jobs[i]), 0);
  }
  assert_true(nrd_pool_wait_idle(p, nrd_mono_ms() + 20000));
  assert_int_equal(atomic_load(&c.processed), N);
  assert_int_equal(atomic_load(&c.freed), N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&jobs[i].runs), 1);
    assert_int_equal(atomic_load(&jobs[i].frees), 1);
  }
  nrd_pool_destroy(p);
  assert_int_equal(atomic_load(&c.inits), K);
  assert_int_equal(atomic_load(&c.finis), K);
  assert_int_equal(atomic_load(&c.ctx_mismatch), 0);
  free(jobs);
}

static void *destroy_thread(void *p)
{
  nrd_pool_destroy(p);
  return NULL;
}

static void test_full_queue_refuses_and_destroy_frees_queued(void **state)
{
  enum { K = 2, CAP = 3 };
  struct counters c;
  counters_init(&c);
  struct job blockers[K], queued[CAP], extra;
  struct nrd_pool *p = nrd_pool_create(K, CAP, t_init, t_fini, &c);
  assert_non_null(p);

  for (int i = 0; i < K; i++) {
    blockers[i] = (struct job){ .c = &c, .block = true };
    assert_int_equal(nrd_pool_submit(p, t_process, t_free, &blockers[i]), 0);
  }
  wait_entered(&c, K); /* both workers are now busy: the queue holds the rest */
  for (int i = 0; i < CAP; i++) {
    queued[i] = (struct job){ .c = &c };
    assert_int_equal(nrd_pool_submit(p, t_process, t_free, &queued[i]), 0);
  }
  extra = (struct job){ .c = &c };
  assert_int_equal(nrd_pool_submit(p, t_process, t_free, &extra), -1);
  assert_int_equal(atomic_load(&extra.frees), 0); /* refused: still ours */

  /* Not idle while jobs are blocked: the deadline answers false. */
  int64_t t0 = nrd_mono_ms();
  assert_false(nrd_pool_wait_idle(p, t0 + 100));
  assert_true(nrd_mono_ms() - t0 >= 90);

  /* Destroy from another thread while the workers are blocked, then release. */
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, destroy_thread, p), 0);
  int64_t until = nrd_mono_ms() + 10000;
  while (atomic_load(&c.freed) < CAP && nrd_mono_ms() < until)
    nrd_sleep_ms(1);
  open_gate(&c);
  pthread_join(th, NULL);

  for (int i = 0; i < CAP; i++) {
    assert_int_equal(atomic_load(&queued[i].runs), 0);
    assert_int_equal(atomic_load(&queued[i].frees), 1);
  }
  for (int i = 0; i < K; i++) {
    assert_int_equal(atomic_load(&blockers[i].runs), 1);
    assert_int_equal(atomic_load(&blockers[i].frees), 1);
  }
  assert_int_equal(atomic_load(&c.inits), K);
  assert_int_equal(atomic_load(&c.finis), K);
}

static void test_wait_idle_no_deadline_and_bad_args(void **state)
{
  struct counters c;
  counters_init(&c);
  assert_null(nrd_pool_create(0, 4, NULL, NULL, NULL));
  assert_null(nrd_pool_create(2, 0, NULL, NULL, NULL));

  /* NULL init: the worker context is the pool's ctx. */
  struct nrd_pool *p = nrd_pool_create(3, 16, NULL, NULL, &c);
  assert_non_null(p);
  assert_true(nrd_pool_wait_idle(p, 0)); /* already idle */
  nrd_pool_destroy(p);
  assert_int_equal(atomic_load(&c.inits), 0);
}

/* wait_queue_below returns once the workers have taken enough jobs: one
 * worker held at the gate, three jobs behind it; below 1 waits for all
 * three to be taken, which needs the gate open. */
static void test_wait_queue_below(void **state)
{
  struct counters c;
  counters_init(&c);
  struct job jobs[4] = { { .c = &c, .block = true }, { .c = &c }, { .c = &c }, { .c = &c } };
  struct nrd_pool *p = nrd_pool_create(1, 8, t_init, t_fini, &c);
  assert_non_null(p);
  for (int i = 0; i < 4; i++)
    assert_int_equal(nrd_pool_submit(p, t_process, t_free, &jobs[i]), 0);
  wait_entered(&c, 1);
  nrd_pool_wait_queue_below(p, 4); /* 3 queued: returns at once */
  assert_int_equal(atomic_load(&c.processed), 1);
  open_gate(&c);
  nrd_pool_wait_queue_below(p, 1);
  assert_true(atomic_load(&c.processed) >= 3); /* the last one is taken, maybe not done */
  assert_true(nrd_pool_wait_idle(p, nrd_mono_ms() + 10000));
  assert_int_equal(atomic_load(&c.processed), 4);
  nrd_pool_destroy(p);
}

/* create returns once every thread has run init; one init failing fails
 * the pool: NULL, and fini for each thread whose init succeeded. */
static atomic_int init_calls;
static void *t_init_third_fails(void *ctx)
{
  if (atomic_fetch_add(&init_calls, 1) == 2)
    return NULL;
  return t_init(ctx);
}

static void test_create_waits_for_init_and_fails_with_it(void **state)
{
  (void)state;
  struct counters c;
  counters_init(&c);
  struct nrd_pool *p = nrd_pool_create(4, 8, t_init, t_fini, &c);
  assert_non_null(p);
  assert_int_equal(atomic_load(&c.inits), 4); /* all four before create returned */
  nrd_pool_destroy(p);
  assert_int_equal(atomic_load(&c.finis), 4);

  counters_init(&c);
  atomic_store(&init_calls, 0);
  assert_null(nrd_pool_create(4, 8, t_init_third_fails, t_fini, &c));
  assert_int_equal(atomic_load(&init_calls), 4);
  assert_int_equal(atomic_load(&c.inits), 3);
  assert_int_equal(atomic_load(&c.finis), 3);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_runs_all_jobs),
    cmocka_unit_test(test_full_queue_refuses_and_destroy_frees_queued),
    cmocka_unit_test(test_wait_idle_no_deadline_and_bad_args),
    cmocka_unit_test(test_wait_queue_below),
    cmocka_unit_test(test_create_waits_for_init_and_fails_with_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
