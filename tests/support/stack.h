#ifndef NRD_TEST_STACK_H
#define NRD_TEST_STACK_H

/* The whole service in-process for integration tests: a Novita simulator, a
 * real Novita client, a runner on a temporary SQLite file and the HTTP server,
 * both on 127.0.0.1 port 0. */

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "nrd/config.h"
#include "nrd/http.h"
#include "nrd/novita.h"
#include "nrd/run.h"
#include "nrd/scheduler.h"
#include "nrd/service.h"
#include "nrd/sim.h"

struct tu_stack {
  char *dir; /* temp dir holding the database */
  struct nrd_sim *sim;
  struct nrd_config cfg;   /* defaults, then the test's changes */
  struct nrd_service *svc; /* the parts below, started as production does */
  struct nrd_novita *nv;
  struct nrd_runner *runner;
  struct nrd_scheduler *sched;
  struct nrd_http *http;
  char base[64]; /* "http://127.0.0.1:PORT" of the service */
  FILE *log;     /* the service's log lines while captured, else NULL */
};

/* Step 1: the simulator with sim_opt (NULL: defaults, key "test-key") and cfg
 * defaults pointing at it (rate limit off, short timeouts). The test may then
 * load a scenario and change s->cfg before step 2. */
void tu_stack_init(struct tu_stack *s, const struct nrd_sim_options *sim_opt);
/* Step 2: the service (nrd_service): client, runner, scheduler (when its
 * interval or the watch's is > 0; the watch is off unless the test sets
 * watch_interval_seconds) and HTTP server; no webhook sender (a test that
 * wants one starts it). */
void tu_stack_start(struct tu_stack *s);
/* Stops the service parts only (the database and simulator stay). */
void tu_stack_stop_service(struct tu_stack *s);
/* Stops everything and removes the temp dir. */
void tu_stack_cleanup(struct tu_stack *s);

/* The service's log lines (every thread's) go to a temporary file from now
 * until tu_stack_log_take, which puts them back on stdout, echoes them there
 * and returns them (heap text, caller frees). */
void tu_stack_log_capture(struct tu_stack *s);
char *tu_stack_log_take(struct tu_stack *s);
/* A captured JSON log line whose msg contains msg_part and whose field key
 * equals value (NULL: any); NULL if none. Points into text. */
const char *tu_log_find(const char *text, const char *msg_part, const char *key, const char *value);

/* Loads a scenario object into the simulator (does not take it). */
void tu_stack_load(struct tu_stack *s, const cJSON *scenario);
/* POST check-failed with body (NULL: none) and parse the JSON answer
 * (caller deletes). status gets the HTTP status. */
cJSON *tu_stack_check_failed(struct tu_stack *s, const char *body, long *status);
/* GET/POST path on the service, parsed JSON answer (NULL if not JSON). */
cJSON *tu_stack_request(struct tu_stack *s, const char *method, const char *path, const char *body,
                        long *status);

#endif
