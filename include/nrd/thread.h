#ifndef NRD_THREAD_H
#define NRD_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The background threads' common moves: a thread sleeps on a condition under
 * a mutex until a flag (stop, notified) is raised or a monotonic deadline
 * passes. Timed waits count monotonic time: a wall clock set back (or
 * forward) neither stretches nor cuts a wait. (src/util/thread.c) */

/* Initialises cond to count CLOCK_MONOTONIC in its timed waits. */
void nrd_cond_init_mono(pthread_cond_t *cond);
/* Waits on cond (held mu, initialised with nrd_cond_init_mono) for up to
 * after_ms; returns true when woken before the deadline, false on timeout. */
bool nrd_cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *mu, int64_t after_ms);

/* Starts fn(arg) on *thread; a thread is a resource we cannot run without, so
 * a failure aborts. */
void nrd_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);
/* Sets *flag under mu and wakes every thread waiting on cond; true when
 * this call raised it (it was down). */
bool nrd_flag_raise(pthread_mutex_t *mu, pthread_cond_t *cond, bool *flag);
/* Raises *stop (as nrd_flag_raise), joins thread, then destroys cond and mu. */
void nrd_thread_stop(pthread_t thread, pthread_mutex_t *mu, pthread_cond_t *cond, bool *stop);

#endif
