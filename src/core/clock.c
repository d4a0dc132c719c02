/* Timed waits in src/core count monotonic time: a wall clock set back (or
 * forward) neither stretches nor cuts a wait. */
#include <time.h>

#include "core_internal.h"

void nrd_cond_init_mono(pthread_cond_t *cond)
{
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cond, &ca);
  pthread_condattr_destroy(&ca);
}

void nrd_mono_timespec(int64_t after_ms, struct timespec *ts)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  int64_t wake = (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000 + after_ms;
  ts->tv_sec = (time_t)(wake / 1000);
  ts->tv_nsec = (long)(wake % 1000) * 1000000;
}
