#ifndef NRD_SIM_INTERNAL_H
#define NRD_SIM_INTERNAL_H

/* What the simulator's files share; not part of the public contract. */

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "nrd/sim.h"

#define SIM_BASE_PATH "/gpu-instance/openapi"

struct sim_fault {
  struct nrd_sim_fault f; /* match, body, retry_after owned */
  unsigned fired;
  uint64_t rng; /* xorshift64 state */
};

struct sim_listed {
  const cJSON *item; /* borrowed from s->instances */
  char *text;        /* owned; NULL until first listed */
};

/* Capacity of one (product name, cluster): creates left. */
struct sim_capacity {
  char *product, *cluster;
  long available;
};

struct nrd_sim {
  struct MHD_Daemon *daemon;
  unsigned port;
  atomic_uint latency_ms;
  atomic_bool stopping;                      /* wakes sleeping handlers at stop */
  char *api_key, *internal_key, *new_status; /* owned; NULL: any / "running" */
  int page_base;
  unsigned page_cap;
  bool no_total;

  pthread_mutex_t mu;                 /* guards everything below */
  cJSON *instances, *jobs, *products; /* arrays */
  cJSON *clusters;                    /* array: GET /v1/clusters, {id, name, ...} each */
  cJSON *cpu_products;                /* array: GET /v1/cpu/products */
  /* s->instances as an array with each item's printed JSON (printed on first
   * use), so that a page of a big fleet is neither walked to nor printed
   * again. NULL when stale: every change to s->instances drops it through
   * sim_instances_changed. */
  struct sim_listed *listed;
  size_t n_listed;
  unsigned long next_id;
  struct nrd_sim_request *log;
  size_t nlog, caplog;
  struct sim_fault *faults;
  size_t nfaults;
  char *account_reason; /* the account switch; NULL: off */
  struct sim_capacity *capacity;
  size_t ncapacity;
  /* start.c: new instances' start times (toCreate, creating, pulling, ms)
   * and the images whose pull fails. */
  int64_t start_ms[3];
  struct sim_starting *starting;
  size_t nstarting;
  struct sim_pull_failure {
    char *image, *message;
  } * pull_failures;
  size_t npull_failures;

  pthread_mutex_t rate_mu; /* guards the rate limit below (ratelimit.c) */
  double rate_rps, rate_tokens;
  int64_t rate_at_ns;
  unsigned long rate_refused;
};

/* The server-side rate limit: true (with Retry-After's text) when this
 * request is over it. */
bool sim_rate_refuse(struct nrd_sim *s, char retry_after[16]);

/* One Novita endpoint: reads the query through c and the request body, sets
 * the HTTP status and a JSON body (owned by the caller). Takes s->mu itself. */
typedef int sim_handler_fn(struct nrd_sim *s, struct MHD_Connection *c, const char *body,
                           size_t body_len, cJSON **out);
typedef sim_handler_fn *sim_handler;

sim_handler_fn sim_list_instances, sim_get_instance, sim_delete_instance, sim_create_instance,
    sim_list_jobs, sim_list_cpu_products, sim_list_products, sim_list_clusters;

/* The instance with this id in s->instances, NULL when none. Call with s->mu
 * held. */
cJSON *sim_find_instance(const struct nrd_sim *s, const char *id);

/* start.c, with s->mu held: the status a new instance starts with (and its
 * start followed when it is not "running"); the starts moved on to now (call
 * before showing instances); free at the end. */
struct sim_starting;
const char *sim_start_begin_locked(struct nrd_sim *s, const char *id, const char *image);
void sim_start_advance_locked(struct nrd_sim *s);
void sim_start_free(struct nrd_sim *s);

/* The capacity entry of (product, cluster), NULL when unlimited. Call with
 * s->mu held. */
struct sim_capacity *sim_capacity_find(struct nrd_sim *s, const char *product, const char *cluster);

/* Drops the listing index after a change to s->instances. Call with s->mu held. */
void sim_instances_changed(struct nrd_sim *s);

/* Novita's error shape {"code": code, "reason": reason, "message": message,
 * "metadata": {}}; caller deletes. */
cJSON *sim_error(int code, const char *reason, const char *message);

/* Sleeps ms in short slices, returning early once the simulator stops. */
void sim_sleep(struct nrd_sim *s, unsigned ms);

/* Parses a create request's "ports" string ("80/http, 3306/tcp": port 1-65535,
 * type tcp or http, at most 15) into portMappings objects {port, endpoint,
 * type} as Novita lists them. 0 with *out (caller deletes), or -1 with a
 * reason in why. */
int nrd_sim_parse_ports(const char *ports, cJSON **out, char *why, size_t whylen);

/* Fault bodies and rewrites (fault.c). */
/* WRONG_TYPES: a copy of body (caller deletes) where the top-level lists stay
 * lists but everything in them, and every other top-level field, is retyped:
 * strings become numbers, numbers and booleans strings, lists objects. */
cJSON *sim_retyped(const cJSON *body);
/* DROP_FIELDS, in place: top-level fields other than lists are removed, and
 * the objects in the lists keep only id/Id. */
void sim_drop_fields(cJSON *body);
/* Streamed responses, never holding a large body in memory; NULL on failure. */
struct MHD_Response *sim_oversized_response(size_t size);
struct MHD_Response *sim_deep_response(size_t depth);
/* text (taken over, heap) sent one byte per delay_ms. */
struct MHD_Response *sim_drip_response(struct nrd_sim *s, char *text, size_t len,
                                       unsigned delay_ms);

#endif
