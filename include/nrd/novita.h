#ifndef NRD_NOVITA_H
#define NRD_NOVITA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nrd/model.h"

/* Typed Novita operations over one libcurl transport.
 *
 * struct nrd_novita is the shared client: base URLs, keys, timeouts, the one
 * token bucket, the circuit breaker. Thread-safe; create once after
 * curl_global_init. struct nrd_novita_conn is one easy handle (keep-alive),
 * owned by one thread for its life.
 *
 * Every call goes through the transport, which: waits for a token; refuses
 * when the circuit is open; sets connect and total timeouts, auth, no
 * redirects, a response-size cap (enforced in the write callback); retries
 * network errors, 408, 429, 5xx and Novita's transient 400 codes with
 * exponential backoff and full jitter (honouring Retry-After), up to
 * max_retry_attempts retries; never retries a create (an unknown create
 * outcome is NRD_NV_AMBIGUOUS: look the name up first). */

enum nrd_nv_rc {
  NRD_NV_OK = 0,
  NRD_NV_NOT_FOUND,    /* 404, or 400 RESOURCE_NOT_FOUND */
  NRD_NV_TRANSIENT,    /* retryable failure that outlived its retries */
  NRD_NV_FINAL,        /* permanent refusal (other 4xx): Novita's message in err */
  NRD_NV_AMBIGUOUS,    /* a create whose outcome is unknown (timeout, reset after send) */
  NRD_NV_BAD_RESPONSE, /* 2xx with a body we cannot use (HTML, truncated, wrong types) */
  NRD_NV_CIRCUIT_OPEN, /* not sent: the breaker is open */
  NRD_NV_DEADLINE,     /* not sent: the caller's deadline passed */
  NRD_NV_ACCOUNT,      /* refused for an account-wide reason (balance, quota):
                           every create fails until a person acts */
  NRD_NV_PREPAID       /* delete refused: a prepaid (monthly) instance */
};
const char *nrd_nv_rc_name(enum nrd_nv_rc rc);

struct nrd_nv_error {
  int http_status;   /* 0 when no HTTP answer */
  char code[64];     /* Novita's reason (else a string code) from the body, "" if none */
  char message[256]; /* a clear one-line reason, never holding secrets */
};

/* Novita's error reasons, classified (src/novita/reasons.c holds the one
 * table; README prints it). An answer is classified by its `reason`, then by
 * `code` when that is a string, then by the HTTP status: 404 gone; no answer,
 * 408, 429 and 5xx transient; any other 4xx row-final. */
enum nrd_nv_class {
  NRD_NV_CLASS_TRANSIENT = 0, /* passes: the same request may succeed later */
  NRD_NV_CLASS_ACCOUNT,       /* account-wide: every create fails until a person acts */
  NRD_NV_CLASS_ROW,           /* final for that row (the request is wrong) */
  NRD_NV_CLASS_GONE,          /* the resource does not exist */
  NRD_NV_CLASS_PREPAID        /* a prepaid instance cannot be deleted */
};
struct nrd_nv_reason {
  const char *reason;
  enum nrd_nv_class cls;
  bool capacity; /* the cluster lacks capacity for the product */
};
/* The table, in README's order. */
const struct nrd_nv_reason *nrd_nv_reasons(size_t *n);
/* The entry of reason (case-insensitive), NULL when not in the table. */
const struct nrd_nv_reason *nrd_nv_reason_find(const char *reason);
const char *nrd_nv_class_name(enum nrd_nv_class c); /* "transient", "account-wide", ... */
enum nrd_nv_class nrd_nv_classify(const char *reason, int http_status);
bool nrd_nv_is_capacity(const char *reason);

struct nrd_novita_options {
  const char *base_url; /* public API, no trailing slash needed */
  const char *api_key;
  const char *internal_base_url; /* jobs host; used only when both internal fields set */
  const char *internal_api_key;
  unsigned page_size;          /* asked per page */
  unsigned request_timeout_ms; /* total per attempt */
  unsigned connect_timeout_ms; /* 0: min(5000, request_timeout_ms) */
  unsigned max_retry_attempts;
  double rate_limit_rps;              /* 0: unlimited; the start when adaptive */
  bool rate_adaptive;                 /* raise while calls succeed, cut on a 429 */
  double rate_limit_max_rps;          /* the adaptive rate's top (0: 50) */
  unsigned circuit_failure_threshold; /* 0: no breaker */
  unsigned circuit_cooldown_ms;
  size_t max_response_bytes; /* 0: 16 MiB */
  unsigned backoff_base_ms;  /* 0: 500 */
  unsigned backoff_cap_ms;   /* 0: 30000 */
};

struct nrd_novita;
struct nrd_novita_conn;

struct nrd_novita *nrd_novita_create(const struct nrd_novita_options *opt);
void nrd_novita_destroy(struct nrd_novita *nv);
struct nrd_novita_conn *nrd_novita_conn_create(struct nrd_novita *nv);
void nrd_novita_conn_destroy(struct nrd_novita_conn *c);

/* Optional absolute deadline (nrd_mono_ms clock) for calls on this
 * connection: no new attempt starts after it (NRD_NV_DEADLINE). 0 clears. */
void nrd_novita_conn_set_deadline(struct nrd_novita_conn *c, int64_t deadline_mono_ms);

/* Shutdown: aborts transfers in flight (their outcome is unknown: a create
 * reports NRD_NV_AMBIGUOUS) and refuses new ones. NULL is a no-op. */
void nrd_novita_abort(struct nrd_novita *nv);

/* Circuit state: 0 closed, 1 open, 2 half-open. */
int nrd_novita_circuit_state(struct nrd_novita *nv);

/* Host-wide not-before (wall clock ms, 0: none): set by a 429 or 503 with
 * Retry-After; every call of every connection waits for it. set only moves it
 * later; it carries Retry-After over to the next run (the runner stores it). */
int64_t nrd_novita_not_before(struct nrd_novita *nv);
void nrd_novita_set_not_before(struct nrd_novita *nv, int64_t wall_ms);

/* Sleeps the backoff before retry number attempt (0 first) of a step the
 * caller repeats itself (a create); cut short by nrd_novita_abort. */
void nrd_novita_backoff(struct nrd_novita *nv, unsigned attempt);

/* The token bucket's current rate, requests a second (0: unlimited). */
double nrd_novita_rate(struct nrd_novita *nv);
/* How many calls the bucket lets go at once after a quiet spell: one second
 * of the current rate when adaptive (at least 1), at most 5 when fixed. */
double nrd_novita_burst(struct nrd_novita *nv);

/* Calls made since creation (every attempt sent). */
uint64_t nrd_novita_calls(struct nrd_novita *nv);

/* Lists every instance, page after page, by DESIGN.md's stop rule (stop at
 * `total` distinct ids, an empty page, or a page with no new id; a short page
 * does not stop). Duplicates across pages are dropped. name (may be NULL)
 * is passed as the fuzzy `name` filter.
 *
 * A page's new instances reach sink->items in runs, in order, as the page
 * is read (a page is never held decoded whole). items owns nothing, but may
 * take an instance by moving it out and zeroing its slot; what is left is
 * cleaned up after it returns. A non-zero return stops the listing with
 * NRD_NV_OK. sink->page_end (may be NULL) follows every page that was read:
 * usable is false when the page turned out unusable after some of its runs
 * were delivered (the listing then ends with NRD_NV_BAD_RESPONSE) or was
 * stopped; a consumer that keeps pages whole drops that page's runs. */
typedef int (*nrd_nv_run_fn)(void *ud, struct nrd_instance *items, size_t n);
struct nrd_nv_instance_sink {
  nrd_nv_run_fn items;
  void (*page_end)(void *ud, bool usable);
  void *ud;
};
enum nrd_nv_rc nrd_nv_list_instances(struct nrd_novita_conn *c, const char *name,
                                     const struct nrd_nv_instance_sink *sink, size_t *total_seen,
                                     struct nrd_nv_error *err);

/* Every job of type within [start_s, end_s], all pages (same stop rule, by Id).
 * *jobs is an array the caller frees with nrd_jobs_free. */
enum nrd_nv_rc nrd_nv_list_jobs(struct nrd_novita_conn *c, const char *type, int64_t start_s,
                                int64_t end_s, struct nrd_job **jobs, size_t *n,
                                struct nrd_nv_error *err);
/* The same with Novita's state filter (state NULL: every state). */
enum nrd_nv_rc nrd_nv_list_jobs_in_state(struct nrd_novita_conn *c, const char *type,
                                         const char *state, int64_t start_s, int64_t end_s,
                                         struct nrd_job **jobs, size_t *n,
                                         struct nrd_nv_error *err);
void nrd_jobs_free(struct nrd_job *jobs, size_t n);

/* GET /v1/gpu/instance?instanceId=: one instance into out (the caller's:
 * nrd_instance_cleanup). NRD_NV_NOT_FOUND when Novita says not found. */
enum nrd_nv_rc nrd_nv_get_instance(struct nrd_novita_conn *c, const char *instance_id,
                                   struct nrd_instance *out, struct nrd_nv_error *err);

/* POST /v1/gpu/instance/delete. NRD_NV_NOT_FOUND when Novita says not found. */
enum nrd_nv_rc nrd_nv_delete_instance(struct nrd_novita_conn *c, const char *instance_id,
                                      struct nrd_nv_error *err);

/* POST /v1/gpu/instance/create with request (not retried). *new_id heap-owned. */
enum nrd_nv_rc nrd_nv_create_instance(struct nrd_novita_conn *c, const cJSON *request,
                                      char **new_id, struct nrd_nv_error *err);

/* Exact-name look-up: lists with the fuzzy name filter and keeps only exact
 * matches. NRD_NV_OK with *found_id set (heap) when one exists, NULL when none. */
enum nrd_nv_rc nrd_nv_find_by_name(struct nrd_novita_conn *c, const char *name, char **found_id,
                                   struct nrd_nv_error *err);

/* What GET /v1/gpu/instance?instanceId= says of an instance's start:
 * status, and statusError {state, message} ("" when absent). */
struct nrd_nv_instance_state {
  char status[32];
  char error_state[64];
  char error_message[512];
};
/* NRD_NV_NOT_FOUND when Novita says the instance does not exist. */
enum nrd_nv_rc nrd_nv_get_instance_state(struct nrd_novita_conn *c, const char *instance_id,
                                         struct nrd_nv_instance_state *out,
                                         struct nrd_nv_error *err);

/* GET /v1/products?productName=…&billingMethod=spot. Caller frees with nrd_products_free. */
enum nrd_nv_rc nrd_nv_list_products(struct nrd_novita_conn *c, const char *product_name,
                                    struct nrd_product **products, size_t *n,
                                    struct nrd_nv_error *err);
/* The same filtered by clusterId (when not NULL) and billingMethod (NULL: spot):
 * the capacity check before a delete. */
enum nrd_nv_rc nrd_nv_list_products_in(struct nrd_novita_conn *c, const char *product_name,
                                       const char *cluster_id, const char *billing,
                                       struct nrd_product **products, size_t *n,
                                       struct nrd_nv_error *err);
/* The same for an instance of kind (NULL or "gpu": GET /v1/products; "cpu":
 * GET /v1/cpu/products, Novita's list of CPU products). */
enum nrd_nv_rc nrd_nv_list_kind_products(struct nrd_novita_conn *c, const char *kind,
                                         const char *product_name, const char *cluster_id,
                                         const char *billing, struct nrd_product **products,
                                         size_t *n, struct nrd_nv_error *err);
void nrd_products_free(struct nrd_product *p, size_t n);

/* A cluster as GET /v1/clusters lists it. */
struct nrd_cluster {
  char *id, *name;
  bool network_storage; /* supportNetworkStorage */
};
/* GET /v1/clusters (the placement fallback's candidates). Caller frees with
 * nrd_clusters_free. */
enum nrd_nv_rc nrd_nv_list_clusters(struct nrd_novita_conn *c, struct nrd_cluster **clusters,
                                    size_t *n, struct nrd_nv_error *err);
void nrd_clusters_free(struct nrd_cluster *c, size_t n);

/* Decoders, exposed for tests and fuzzing: JSON text -> structs. They accept
 * any input without crashing; 0 on success, -1 when the body is unusable. */
int nrd_nv_decode_instances(const char *body, size_t len, struct nrd_instance **items, size_t *n,
                            int64_t *total);
/* The same, handing the instances to run (in order, at most run_max at a
 * time) as they are read instead of keeping the page: run owns nothing but
 * may take an item by moving it out and zeroing its slot; a non-zero return
 * stops the reading. 0 when the page was read whole, 1 when run stopped it,
 * -1 when the body is unusable (the runs before the fault were delivered). */
int nrd_nv_decode_instance_runs(const char *body, size_t len, size_t run_max, nrd_nv_run_fn run,
                                void *ud, int64_t *total);
int nrd_nv_decode_jobs(const char *body, size_t len, struct nrd_job **jobs, size_t *n,
                       int64_t *total);
int nrd_nv_decode_products(const char *body, size_t len, struct nrd_product **p, size_t *n);
int nrd_nv_decode_clusters(const char *body, size_t len, struct nrd_cluster **c, size_t *n);
/* Decodes one instance object into out (the caller's: nrd_instance_cleanup). */
void nrd_nv_decode_instance(const cJSON *obj, struct nrd_instance *out);
/* Pulls code and message out of an error body of any shape. */
void nrd_nv_decode_error(const char *body, size_t len, int http_status, struct nrd_nv_error *err);

#endif
