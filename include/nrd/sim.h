#ifndef NRD_SIM_H
#define NRD_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* A Novita simulator: real HTTP on 127.0.0.1 (libmicrohttpd), faithful to the
 * parts of Novita's API we use (../shared/reference/novita-api.yaml), with
 * fault injection and a log of every request. Used by the tests, the
 * benchmark and `novita-recoveryd demo`; never by serve or check-failed.
 *
 * Paths (base URL = nrd_sim_base_url):
 *   GET  {base}/v1/gpu/instances?pageSize&pageNum&name&status
 *   GET  {base}/v1/gpu/instance?instanceId (one instance, as listed; 404 RESOURCE_NOT_FOUND)
 *   POST {base}/v1/gpu/instance/delete {instanceId}
 *   POST {base}/v1/gpu/instance/create {CreateInstanceRequest} -> {id}
 *   GET  {base}/v1/jobs?type&state&jobId&startTime&endTime&pageNum&pageSize
 *   GET  {base}/v1/products?productName&clusterId&billingMethod
 *   GET  {base}/v1/cpu/products?productName&clusterId (the scenario's cpuProducts)
 *   GET  {base}/v1/clusters -> {data: [{id, name, availableGpuType,
 *        supportNetworkStorage, supportInstanceNetwork}]}
 *   GET  /api/v1/jobs (the internal jobs host, internal key)
 * Control (no auth, for out-of-process tests and scripts; not logged):
 *   POST /__sim/scenario (body: scenario JSON, replaces state)
 *   POST /__sim/faults (body: one fault object or an array, added; {} clears)
 *        {"kind": "status" | "retry_after" | "delay" | "apply_then_delay" | "html" |
 *                 "truncated" | "malformed" | "oversized" | "deep" | "empty" |
 *                 "wrong_types" | "drop_fields" | "slow_drip" | "reset" | "error_200",
 *         "match", "reason", "status", "body", "retry_after", "delay_ms", "size",
 *         "probability", "count", "seed"}  (fields of struct nrd_sim_fault)
 *   POST /__sim/account {"reason": "BALANCE_NOT_ENOUGH" | "CREATE_GPU_NUM_LIMIT" | ...}:
 *        every create answers 400 with that reason until {} clears it
 *   POST /__sim/capacity {"productName", "clusterId", "available": n}: n more
 *        creates of that product in that cluster succeed, then INSUFFICIENT_RESOURCE;
 *        products listed with that clusterId show availableDeploy/inventoryState
 *        from it; "available": -1 removes the limit
 *   POST /__sim/start {"toCreateMs", "creatingMs", "pullingMs"}: a new
 *        instance's start times (nrd_sim_set_start_times)
 *   POST /__sim/pull_failure {"imageUrl", "message"}: that image's pull fails
 *        (exited, statusError); {"imageUrl"} alone undoes it
 *   GET  /__sim/state  -> {"instances":[...], "requests": n}
 *   GET  /__sim/requests -> [{method,path,query,body,authorization,atMs}, ...]
 *
 * Listings page with pageNum (from page_base; a number below it gives an
 * empty page) and pageSize (default 10, also for 0; capped by page_cap), and
 * answer {"instances"|"jobs": [...], "total": matches} ("total" left out
 * with no_total). name and productName
 * filter as case-insensitive substrings, status exactly; jobs filter on
 * type, state, jobId and startTime/endTime (Unix seconds, on createdAt).
 * Errors are Novita's shape {code: <int>, reason, message, metadata}.
 * Create answers 400 VALIDATOR_PARAM when nrd_sim_check_create_request
 * refuses the body, 400 with the account switch's reason while it is on, 400
 * INSUFFICIENT_RESOURCE beyond a (product, cluster)'s capacity, else adds
 * "i-sim-<n>" and answers {"id"}; the new instance lists the create's
 * entrypoint, network {id (networkId), ip}, tools, and a cpu create's
 * localStorageMountPoint as a local volume mount. Delete of an unknown id answers 404
 * RESOURCE_NOT_FOUND; of a monthly (prepaid) instance 400
 * PREPAID_INSTANCE_NOT_SUPPORT_RELEASE. Wrong keys get 401 UNAUTHORIZED.
 * Request bodies over 1 MiB get 413.
 *
 * Products filtered by clusterId: a product whose `regions` is not empty is
 * listed only when the scenario lists that cluster and its name is one of
 * them (Novita's `regions` name the clusters offering the product).
 *
 * Scenario JSON: {"instances":[instance objects as Novita lists them],
 *   "jobs":[job objects], "products":[product objects],
 *   "clusters":[{id, name} as GET /v1/clusters lists them],
 *   "cpuProducts":[product objects of GET /v1/cpu/products]}. */

struct nrd_sim_options {
  unsigned port;                /* 0: a free port */
  const char *api_key;          /* required Bearer key of the public API; NULL: any */
  const char *internal_api_key; /* key of /api/v1/jobs; NULL: any */
  int page_base;                /* 0 or 1 (default 1 when page_base_set is false) */
  bool page_base_set;
  unsigned page_cap;      /* server-side largest page; 0: no cap */
  unsigned latency_ms;    /* added to every request */
  unsigned threads;       /* 0: thread per connection */
  const char *new_status; /* status of created instances; NULL: "running" */
  bool no_total;          /* listings without "total" (Novita's documented example) */
};

/* Fault kinds. A fault matches requests whose "METHOD path" contains match
 * (NULL or "" matches all), fires with probability (0 = always) from a seeded
 * RNG, at most count times (0 = unlimited). */
enum nrd_sim_fault_kind {
  NRD_SIM_STATUS = 0,       /* answer status with body (NULL: {"code":..,"message":..}) */
  NRD_SIM_RETRY_AFTER,      /* 429 with Retry-After: retry_after (text: seconds or a date) */
  NRD_SIM_DELAY,            /* sleep delay_ms, then answer normally */
  NRD_SIM_APPLY_THEN_DELAY, /* apply the effect (create/delete), then sleep delay_ms */
  NRD_SIM_HTML,             /* 200/status with an HTML page */
  NRD_SIM_TRUNCATED,        /* the normal body cut in half */
  NRD_SIM_MALFORMED,        /* "{not json" */
  NRD_SIM_OVERSIZED,        /* a JSON body of size bytes */
  NRD_SIM_DEEP,             /* JSON nested size levels deep */
  NRD_SIM_EMPTY,            /* 200 with an empty body */
  NRD_SIM_WRONG_TYPES, /* the normal body with fields retyped (strings<->numbers, lists->objects) */
  NRD_SIM_DROP_FIELDS, /* the normal body with fields removed */
  NRD_SIM_SLOW_DRIP,   /* body sent one byte per delay_ms */
  NRD_SIM_RESET,       /* close the connection without an answer */
  NRD_SIM_ERROR_200    /* HTTP 200 whose body is Novita's error shape (reason; default
                              VALIDATOR_PARAM), or body when set: Novita does this */
};

struct nrd_sim_fault {
  enum nrd_sim_fault_kind kind;
  const char *match;
  const char *reason; /* status / error_200: Novita's reason in the error body */
  int status;
  const char *body;
  const char *retry_after;
  unsigned delay_ms;
  size_t size;
  double probability;
  unsigned count;
  uint64_t seed;
};

struct nrd_sim_request {
  char *method, *path, *query, *body, *authorization;
  int64_t at_ms;
};

struct nrd_sim;

struct nrd_sim *nrd_sim_start(const struct nrd_sim_options *opt, char *err, size_t errlen);
void nrd_sim_stop(struct nrd_sim *s);
unsigned nrd_sim_port(const struct nrd_sim *s);
/* "http://127.0.0.1:PORT/gpu-instance/openapi" and "http://127.0.0.1:PORT". */
void nrd_sim_base_url(const struct nrd_sim *s, char out[128]);
void nrd_sim_internal_base_url(const struct nrd_sim *s, char out[128]);

/* Replaces the state. 0, or -1 on bad JSON. */
int nrd_sim_load(struct nrd_sim *s, const char *scenario_json);
/* A scenario generator: fleet instances (ids "i-0".."i-N", names
 * "worker-0000"..., productName "RTX 4090 24GB" in "CN-HK-01 (Hong Kong)"),
 * the first failed of them migrating with a failed migration job (types
 * alternate, created within the last hour before now_s, each with an older
 * successful one), the rest running. Every fifth instance (i % 5 == 4) has no
 * productId; every third a network volume; all carry passwords, env values
 * and connect components. Products: the cheapest deployable one with a
 * non-zero spot price in CN-HK-01 is "prod-4090-hk-b"; cheaper ones are not
 * deployable, zero-priced or in another region. Used by demo, tests and the
 * bench. Caller frees with cJSON_Delete. */
cJSON *nrd_sim_make_fleet(size_t fleet, size_t failed, int64_t now_s);

void nrd_sim_set_latency(struct nrd_sim *s, unsigned ms);
/* A new instance's start (without new_status): toCreate for to_create_ms,
 * creating for creating_ms, pulling for pulling_ms, then running (all 0, the
 * default: running at once). Applies to instances created afterwards. */
void nrd_sim_set_start_times(struct nrd_sim *s, unsigned to_create_ms, unsigned creating_ms,
                             unsigned pulling_ms);
/* Creates with this imageUrl fail their pull: after the start times the
 * instance is exited with statusError {state: "pullImageFailed", message}.
 * message NULL: the pull works again. */
void nrd_sim_set_pull_failure(struct nrd_sim *s, const char *image_url, const char *message);
/* A server-side limit of rps requests a second over every API request (a
 * bucket of one second's worth): above it 429 RATE_LIMIT_EXCEEDED with
 * Retry-After (whole seconds). 0 removes it. refused counts those 429s. */
void nrd_sim_set_rate_limit(struct nrd_sim *s, double rps);
unsigned long nrd_sim_rate_refused(struct nrd_sim *s);
/* The account switch: creates answer 400 with reason until NULL clears it. */
void nrd_sim_set_account(struct nrd_sim *s, const char *reason);
/* Capacity of (product name, cluster): available more creates; -1 removes. */
void nrd_sim_set_capacity(struct nrd_sim *s, const char *product_name, const char *cluster_id,
                          long available);
/* 0, or -1 for an unknown kind or a probability outside [0, 1]. */
int nrd_sim_add_fault(struct nrd_sim *s, const struct nrd_sim_fault *f);
void nrd_sim_clear_faults(struct nrd_sim *s);

/* Request log: a copy the caller frees with nrd_sim_requests_free. */
size_t nrd_sim_requests(struct nrd_sim *s, struct nrd_sim_request **out);
void nrd_sim_requests_free(struct nrd_sim_request *r, size_t n);
void nrd_sim_clear_requests(struct nrd_sim *s);
/* Requests whose method equals method (NULL: any) and path ends with suffix. */
size_t nrd_sim_count(struct nrd_sim *s, const char *method, const char *path_suffix);
/* Instances currently present whose name equals name exactly. */
size_t nrd_sim_count_by_name(struct nrd_sim *s, const char *name);
size_t nrd_sim_instance_count(struct nrd_sim *s);
/* The current instances as a JSON array (caller deletes). */
cJSON *nrd_sim_instances(struct nrd_sim *s);
/* Adds (or replaces, by id) or removes one instance at run time: 0, or -1
 * for an instance without an id or no such id. */
int nrd_sim_put_instance(struct nrd_sim *s, const cJSON *instance);
int nrd_sim_remove_instance(struct nrd_sim *s, const char *id);

/* Checks a create request against CreateInstanceRequest of Novita's API
 * reference and documentation: required productId, imageUrl, kind (gpu|cpu),
 * and for gpu gpuNum (integer 1-8) and rootfsSize (integer 10-6144); a cpu
 * create needs no gpuNum/rootfsSize, may have localStorageMountPoint, and has
 * at most 30 envs; types, lengths and enums of the documented optional fields
 * (name, imageAuth, imageAuthId, ports, envs, tools, command, entrypoint,
 * clusterId, networkStorages, networkId, month, billingMode, autoRenew,
 * autoRenewMonth, minCudaVersion); envs <= 100 of {key, value}; ports one
 * string "80/http, 22/tcp" (tcp or http, at most 15, none of the reserved
 * 2222-2224); no unknown fields. false with a reason in why. The simulator's
 * create answers 400 VALIDATOR_PARAM when this fails. */
bool nrd_sim_check_create_request(const cJSON *req, char *why, size_t whylen);

/* ---- `novita-recoveryd demo` (demo.c) ---- */

/* The name of the demo's instance whose name is markup. */
#define NRD_SIM_DEMO_HOSTILE_NAME "<img src=x onerror=alert(1)>"
/* The demo scenario: nrd_sim_make_fleet(24, 6, now_s) with instance i-2
 * renamed NRD_SIM_DEMO_HOSTILE_NAME, and one more failed migration,
 * i-legacy-7 ("legacy-notebook-7", job "job-legacy-7"), whose instance has
 * no imageUrl: its recovery fails before anything is deleted, every time, so
 * a failed row always waits for an operator. Caller deletes. */
cJSON *nrd_sim_make_demo(int64_t now_s);
/* Fails the migration of the first running instance: status migrating, and a
 * failed autoInstanceMigrate job created at now_s. 0 with its id in id_out,
 * -1 when no instance is running. */
int nrd_sim_fail_migration(struct nrd_sim *s, int64_t now_s, char id_out[64]);
/* The same, leaving the instance in status (e.g. "exited": a failed
 * migration that did not leave it migrating; NULL or "": migrating). */
int nrd_sim_fail_migration_as(struct nrd_sim *s, int64_t now_s, const char *status,
                              char id_out[64]);
/* A migration that is under way: instance_id turns migrating and a job
 * job_id (instanceMigrate... autoInstanceMigrate, createdAt created_s) is
 * added in state running. 0, or -1 when no such instance. */
int nrd_sim_start_migration(struct nrd_sim *s, const char *instance_id, const char *job_id,
                            int64_t created_s);
/* Sets a job's state.state (for "fail" also its error and message): a test
 * fails a running migration at the moment it chooses. 0, or -1 when no such
 * job. */
int nrd_sim_set_job_state(struct nrd_sim *s, const char *job_id, const char *state);
/* A thread that calls nrd_sim_fail_migration every period_ms (the first
 * after one period). Stop it before the simulator. */
struct nrd_sim_ticker;
struct nrd_sim_ticker *nrd_sim_ticker_start(struct nrd_sim *s, unsigned period_ms);
void nrd_sim_ticker_stop(struct nrd_sim_ticker *t); /* NULL is a no-op */

#endif
