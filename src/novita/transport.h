#ifndef NRD_NOVITA_TRANSPORT_H
#define NRD_NOVITA_TRANSPORT_H

/* Private to src/novita: the client's shared state and the one transport call
 * every operation goes through. Only this layer includes curl. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "nrd/metrics.h"
#include "nrd/novita.h"
#include "nrd/util.h"

#define NV_RATE_WINDOW 256 /* sends remembered to measure the rate */

enum nv_circuit { NV_CIRCUIT_CLOSED = 0, NV_CIRCUIT_OPEN = 1, NV_CIRCUIT_HALF_OPEN = 2 };

struct nrd_novita {
  /* Immutable after create; strings owned. */
  char *base_url, *api_key;
  char *internal_base_url, *internal_api_key; /* both NULL unless both were set */
  unsigned page_size, request_timeout_ms, connect_timeout_ms, max_retry_attempts;
  double rate_limit_rps;
  unsigned circuit_failure_threshold, circuit_cooldown_ms;
  size_t max_response_bytes;
  unsigned backoff_base_ms, backoff_cap_ms;

  atomic_uint_least64_t calls;
  atomic_int_least64_t not_before_ms; /* wall clock; Retry-After for the whole host */

  atomic_bool aborted;     /* nrd_novita_abort was called */
  pthread_mutex_t wait_mu; /* with wait_cv: sleeps that abort cuts short */
  pthread_cond_t wait_cv;

  pthread_mutex_t circuit_mu; /* guards the circuit fields */
  enum nv_circuit circuit;
  unsigned consecutive_failures;
  int64_t opened_at_ms;
  bool probe_in_flight;

  pthread_mutex_t bucket_mu; /* guards the token bucket */
  double tokens, burst;
  int64_t refilled_at_ms;

  /* The adaptive rate (rate.c), under bucket_mu: rate_limit_rps is the
   * current rate when adaptive. */
  bool adaptive;
  double rate_max_rps;
  double rate_ceiling;           /* the measured rate at the last 429 (0: none yet) */
  int64_t rate_cut_at_ms;        /* mono ms of the last cut */
  int64_t rate_raised_at_ms;     /* mono ms of the last raise */
  int64_t held_back_at_ms;       /* mono ms of the last take that had to wait */
  int64_t sends[NV_RATE_WINDOW]; /* mono ms of the latest token takes (a ring) */
  unsigned n_sends;
};

struct nrd_novita_conn {
  struct nrd_novita *nv;
  CURL *curl;          /* owned; one thread at a time */
  int64_t deadline_ms; /* 0: none */
};

/* Sends one logical call (with retries when allowed). On NRD_NV_OK, resp
 * holds the 2xx body (caller-owned buffer, reset here) and *http_status the
 * status; on anything else err says why. use_internal_key picks the jobs
 * host's key. body may be NULL (GET). err may not be NULL. */
enum nrd_nv_rc nrd_nv_transport(struct nrd_novita_conn *c, enum nrd_endpoint ep, const char *method,
                                const char *url, const char *body, bool use_internal_key,
                                bool allow_retry, struct nrd_buf *resp, int *http_status,
                                struct nrd_nv_error *err);

/* Circuit breaker (client.c). admit: false when the call must not be sent;
 * *probe set when this attempt is the half-open probe. record: the outcome
 * of a call (failed = network error, 5xx, 429 or transient code after retries). */
bool nrd_nv_circuit_admit(struct nrd_novita *nv, bool *probe);
void nrd_nv_circuit_record(struct nrd_novita *nv, bool failed, bool probe);

/* Token bucket (client.c): waits for a token. false, without taking one,
 * when the wait would end after deadline_ms (0: no deadline). */
bool nrd_nv_bucket_take(struct nrd_novita *nv, int64_t deadline_ms);
/* Credits the tokens earned since the last refill at the current rate, at
 * most burst (under bucket_mu): before the rate changes, so a change never
 * rewrites the past. */
void nrd_nv_bucket_refill(struct nrd_novita *nv, int64_t now);

/* The adaptive rate (rate.c), called with bucket_mu held. rate_init sets it
 * up at create; rate_sent notes a token taken at now. */
void nrd_nv_rate_init(struct nrd_novita *nv, const struct nrd_novita_options *opt);
void nrd_nv_rate_sent(struct nrd_novita *nv, int64_t now);
/* An answer to a request sent at sent_ms (mono): throttled (429) cuts the
 * rate, anything else lets it rise. Takes bucket_mu. */
void nrd_nv_rate_feedback(struct nrd_novita *nv, int64_t sent_ms, bool throttled);

/* Sleeps ms, or less when nrd_novita_abort is called meanwhile. */
void nrd_nv_sleep(struct nrd_novita *nv, int64_t ms);
bool nrd_nv_aborted(struct nrd_novita *nv);

/* Writes a printf-formatted message into err->message (sanitized, cut). */
void nrd_nv_set_error(struct nrd_nv_error *err, int http_status, const char *code, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

#endif
