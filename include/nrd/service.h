#ifndef NRD_SERVICE_H
#define NRD_SERVICE_H

/* The service: one wiring of the parts, used by `serve`, `demo`,
 * `check-failed` and the tests' stack alike.
 *
 * Start order (each part needs the ones before it):
 *   1. Novita client   a handle; it connects on its first call
 *   2. store + runner  the runner opens the store (migrations applied), its
 *                      worker pool (one store and Novita connection per
 *                      thread) and its coordinator and lease threads
 *   3. webhook sender  when WEBHOOK_URL is set; hooked to the runner's events
 *                      here, before anything can start a run
 *   4. scheduler       its timer and the watch loop
 *   5. HTTP            last: nothing is served before every part is up
 * Stop: first everything stops taking work (HTTP quiesces, the runner stops
 * starting rows and parks them, Novita calls in flight are aborted); then
 * the scheduler and the runner halt (their threads joined, so a request
 * waiting on a run gets its answer), HTTP stops (a keep-alive connection
 * can bring requests until then: they reach halted parts, which refuse new
 * work), and the parts are freed: scheduler, runner (with its pool and
 * store), webhook sender, Novita client.
 *
 * cfg must outlive the service; the service never changes it. */

#include <stdbool.h>
#include <stddef.h>

#include "nrd/config.h"

struct nrd_service;
struct nrd_novita;
struct nrd_runner;
struct nrd_scheduler;
struct nrd_http;

struct nrd_service_options {
  /* check-failed: steps 1 and 2 only (no sender, scheduler or HTTP). */
  bool runner_only;
  /* The caller starts its own webhook sender (tests that watch one). */
  bool webhook_by_caller;
  /* A scheduler only when MIGRATION_INTERVAL_MINUTES or the watch is on
   * (tests: the scheduler endpoints then answer "disabled"). */
  bool scheduler_if_timed;
  /* The Novita client's retry backoff (0: the client's defaults). */
  unsigned backoff_base_ms, backoff_cap_ms;
};

/* Starts the parts in the order above (opt NULL: all of them, defaults).
 * NULL with err filled when a part could not start; the ones already
 * started are stopped again. */
struct nrd_service *nrd_service_start(const struct nrd_config *cfg,
                                      const struct nrd_service_options *opt, char *err,
                                      size_t errlen);
/* Stops the parts as above and frees the service (NULL: nothing). */
void nrd_service_stop(struct nrd_service *svc);

/* The caller stopped the HTTP server itself (nrd_http_stop: a test of a
 * stop while a request waits); the service then leaves it alone. */
void nrd_service_http_stopped(struct nrd_service *svc);

/* The parts, for callers that drive them (NULL when not started). */
struct nrd_novita *nrd_service_novita(const struct nrd_service *svc);
struct nrd_runner *nrd_service_runner(const struct nrd_service *svc);
struct nrd_scheduler *nrd_service_scheduler(const struct nrd_service *svc);
struct nrd_http *nrd_service_http(const struct nrd_service *svc);

#endif
