/* Background threads' common moves (include/nrd/thread.h). */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "nrd/thread.h"

void nrd_cond_init_mono(pthread_cond_t *cond)
{
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cond, &ca);
  pthread_condattr_destroy(&ca);
}

/* The monotonic deadline after_ms from now on. */
static void mono_timespec(int64_t after_ms, struct timespec *ts)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  int64_t wake = (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000 + after_ms;
  ts->tv_sec = (time_t)(wake / 1000);
  ts->tv_nsec = (long)(wake % 1000) * 1000000;
}

bool nrd_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t after_ms)
{
  struct timespec ts;
  mono_timespec(after_ms, &ts);
  return pthread_cond_timedwait(cond, mu, &ts) != ETIMEDOUT;
}

void nrd_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
  if (pthread_create(thread, NULL, fn, arg) != 0)
    abort(); /* threads are a resource we cannot run without */
}

bool nrd_flag_raise(pthread_mutex_t *mu, pthread_cond_t *cond, bool *flag)
{
  pthread_mutex_lock(mu);
  bool was = *flag;
  *flag = true;
  pthread_cond_broadcast(cond);
  pthread_mutex_unlock(mu);
  return !was;
}

void nrd_thread_stop(pthread_t thread, pthread_mutex_t *mu, pthread_cond_t *cond, bool *stop)
{
  nrd_flag_raise(mu, cond, stop);
  pthread_join(thread, NULL);
  pthread_cond_destroy(cond);
  pthread_mutex_destroy(mu);
}
