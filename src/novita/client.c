/* The shared Novita client: options, the circuit breaker, the token bucket,
 * and the per-thread connections. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nrd/log.h"
#include "nrd/thread.h"
#include "nrd/util.h"
#include "transport.h"

/* Burst of the token bucket: max(1, rps), but never more than this, so a
 * quiet period does not buy a flood. */
#define NV_BURST_MAX 5.0

const char *nrd_nv_rc_name(enum nrd_nv_rc rc)
{
  static const char *const names[] = {
    [NRD_NV_OK] = "ok",
    [NRD_NV_NOT_FOUND] = "not_found",
    [NRD_NV_TRANSIENT] = "transient",
    [NRD_NV_FINAL] = "final",
    [NRD_NV_AMBIGUOUS] = "ambiguous",
    [NRD_NV_BAD_RESPONSE] = "bad_response",
    [NRD_NV_CIRCUIT_OPEN] = "circuit_open",
    [NRD_NV_DEADLINE] = "deadline",
    [NRD_NV_ACCOUNT] = "account",
    [NRD_NV_PREPAID] = "prepaid",
  };
  return NRD_ENUM_NAME(names, rc);
}

/* Copies s without trailing slashes. */
static char *dup_base(const char *s)
{
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '/')
    n--;
  return nrd_xstrndup(s, n);
}

/* A key goes into a header line: no control characters (NULL is fine). */
static bool header_safe(const char *s)
{
  for (const char *p = s; p && *p; p++) {
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return false;
  }
  return true;
}

struct nrd_novita *nrd_novita_create(const struct nrd_novita_options *opt)
{
  if (!opt || !opt->base_url || !*opt->base_url || !header_safe(opt->api_key) ||
      !header_safe(opt->internal_api_key))
    return NULL;

  struct nrd_novita *nv = nrd_xcalloc(1, sizeof *nv);
  nv->base_url = dup_base(opt->base_url);
  nv->api_key = nrd_xstrdup(opt->api_key ? opt->api_key : "");
  if (opt->internal_base_url && *opt->internal_base_url && opt->internal_api_key &&
      *opt->internal_api_key) {
    nv->internal_base_url = dup_base(opt->internal_base_url);
    nv->internal_api_key = nrd_xstrdup(opt->internal_api_key);
  }
  nv->page_size = opt->page_size ? opt->page_size : 50;
  nv->request_timeout_ms = opt->request_timeout_ms ? opt->request_timeout_ms : 30000;
  nv->connect_timeout_ms = opt->connect_timeout_ms;
  if (nv->connect_timeout_ms == 0)
    nv->connect_timeout_ms = nv->request_timeout_ms < 5000 ? nv->request_timeout_ms : 5000;
  nv->max_retry_attempts = opt->max_retry_attempts;
  nv->rate_limit_rps = opt->rate_limit_rps > 0 ? opt->rate_limit_rps : 0;
  nv->circuit_failure_threshold = opt->circuit_failure_threshold;
  nv->circuit_cooldown_ms = opt->circuit_cooldown_ms;
  nv->max_response_bytes = opt->max_response_bytes ? opt->max_response_bytes : 16u << 20;
  nv->backoff_base_ms = opt->backoff_base_ms ? opt->backoff_base_ms : 500;
  nv->backoff_cap_ms = opt->backoff_cap_ms ? opt->backoff_cap_ms : 30000;

  atomic_init(&nv->calls, 0);
  atomic_init(&nv->aborted, false);
  pthread_mutex_init(&nv->wait_mu, NULL);
  nrd_cond_init_mono(&nv->wait_cv); /* sleeps count nrd_mono_ms time */
  pthread_mutex_init(&nv->circuit_mu, NULL);
  pthread_mutex_init(&nv->bucket_mu, NULL);
  nv->circuit = NV_CIRCUIT_CLOSED;
  nv->burst = nv->rate_limit_rps < 1 ? 1 : nv->rate_limit_rps;
  if (nv->burst > NV_BURST_MAX)
    nv->burst = NV_BURST_MAX;
  nv->tokens = nv->burst;
  nv->refilled_at_ms = nrd_mono_ms();
  nrd_nv_rate_init(nv, opt);
  return nv;
}

void nrd_novita_destroy(struct nrd_novita *nv)
{
  if (!nv)
    return;
  pthread_cond_destroy(&nv->wait_cv);
  pthread_mutex_destroy(&nv->wait_mu);
  pthread_mutex_destroy(&nv->circuit_mu);
  pthread_mutex_destroy(&nv->bucket_mu);
  free(nv->base_url);
  free(nv->api_key);
  free(nv->internal_base_url);
  free(nv->internal_api_key);
  free(nv);
}

struct nrd_novita_conn *nrd_novita_conn_create(struct nrd_novita *nv)
{
  if (!nv)
    return NULL;
  CURL *h = curl_easy_init();
  if (!h)
    return NULL;
  struct nrd_novita_conn *c = nrd_xcalloc(1, sizeof *c);
  c->nv = nv;
  c->curl = h;
  return c;
}

void nrd_novita_conn_destroy(struct nrd_novita_conn *c)
{
  if (!c)
    return;
  curl_easy_cleanup(c->curl);
  free(c);
}

void nrd_novita_conn_set_deadline(struct nrd_novita_conn *c, int64_t deadline_mono_ms)
{
  c->deadline_ms = deadline_mono_ms > 0 ? deadline_mono_ms : 0;
}

void nrd_novita_abort(struct nrd_novita *nv)
{
  if (!nv)
    return;
  atomic_store(&nv->aborted, true);
  pthread_mutex_lock(&nv->wait_mu);
  pthread_cond_broadcast(&nv->wait_cv);
  pthread_mutex_unlock(&nv->wait_mu);
}

bool nrd_nv_aborted(struct nrd_novita *nv)
{
  return atomic_load(&nv->aborted);
}

void nrd_nv_sleep(struct nrd_novita *nv, int64_t ms)
{
  if (ms <= 0)
    return;
  int64_t until = nrd_mono_ms() + ms;
  struct timespec ts = { .tv_sec = (time_t)(until / 1000),
                         .tv_nsec = (long)(until % 1000) * 1000000L };
  pthread_mutex_lock(&nv->wait_mu);
  while (!atomic_load(&nv->aborted) && nrd_mono_ms() < until)
    pthread_cond_timedwait(&nv->wait_cv, &nv->wait_mu, &ts);
  pthread_mutex_unlock(&nv->wait_mu);
}

uint64_t nrd_novita_calls(struct nrd_novita *nv)
{
  return nv ? (uint64_t)atomic_load(&nv->calls) : 0;
}

/* ---- circuit breaker ---- */

/* Caller holds circuit_mu. Publishes the state when it changes. */
static void circuit_move(struct nrd_novita *nv, enum nv_circuit to)
{
  if (nv->circuit == to)
    return;
  nv->circuit = to;
  nrd_metrics_circuit_set((int)to);
  if (to == NV_CIRCUIT_OPEN)
    LOG_WARN_AT(NRD_FAULT_NOVITA, "novita circuit opened", "#failures",
                NRD_I64(nv->consecutive_failures), "#cooldownMs", NRD_I64(nv->circuit_cooldown_ms));
  else
    LOG_INFO("novita circuit state", "state", to == NV_CIRCUIT_CLOSED ? "closed" : "half-open");
}

int nrd_novita_circuit_state(struct nrd_novita *nv)
{
  pthread_mutex_lock(&nv->circuit_mu);
  int s = (int)nv->circuit;
  /* An open circuit whose cooldown is over reads as half-open: the next call probes. */
  if (nv->circuit == NV_CIRCUIT_OPEN &&
      nrd_mono_ms() - nv->opened_at_ms >= (int64_t)nv->circuit_cooldown_ms)
    s = NV_CIRCUIT_HALF_OPEN;
  pthread_mutex_unlock(&nv->circuit_mu);
  return s;
}

bool nrd_nv_circuit_admit(struct nrd_novita *nv, bool *probe)
{
  bool ok = true;
  *probe = false;
  if (nv->circuit_failure_threshold == 0)
    return true;
  pthread_mutex_lock(&nv->circuit_mu);
  if (nv->circuit == NV_CIRCUIT_OPEN &&
      nrd_mono_ms() - nv->opened_at_ms >= (int64_t)nv->circuit_cooldown_ms)
    circuit_move(nv, NV_CIRCUIT_HALF_OPEN);
  if (nv->circuit == NV_CIRCUIT_OPEN) {
    ok = false;
  } else if (nv->circuit == NV_CIRCUIT_HALF_OPEN) {
    ok = !nv->probe_in_flight;
    if (ok) {
      nv->probe_in_flight = true;
      *probe = true;
    }
  }
  pthread_mutex_unlock(&nv->circuit_mu);
  return ok;
}

void nrd_nv_circuit_record(struct nrd_novita *nv, bool failed, bool probe)
{
  if (nv->circuit_failure_threshold == 0)
    return;
  pthread_mutex_lock(&nv->circuit_mu);
  if (probe)
    nv->probe_in_flight = false;
  if (!failed) {
    nv->consecutive_failures = 0;
    /* Only the probe closes a half-open circuit; a late answer to a call
     * admitted before it opened does not. */
    if (nv->circuit != NV_CIRCUIT_HALF_OPEN || probe)
      circuit_move(nv, NV_CIRCUIT_CLOSED);
  } else {
    nv->consecutive_failures++;
    if (probe || nv->consecutive_failures >= nv->circuit_failure_threshold) {
      nv->opened_at_ms = nrd_mono_ms();
      circuit_move(nv, NV_CIRCUIT_OPEN);
    }
  }
  pthread_mutex_unlock(&nv->circuit_mu);
}

/* ---- token bucket ---- */

void nrd_nv_bucket_refill(struct nrd_novita *nv, int64_t now)
{
  nv->tokens += (double)(now - nv->refilled_at_ms) * nv->rate_limit_rps / 1000.0;
  if (nv->tokens > nv->burst)
    nv->tokens = nv->burst;
  nv->refilled_at_ms = now;
}

bool nrd_nv_bucket_take(struct nrd_novita *nv, int64_t deadline_ms)
{
  if (!nv->adaptive && nv->rate_limit_rps <= 0) /* adaptive: never 0 */
    return true;
  pthread_mutex_lock(&nv->bucket_mu);
  int64_t now = nrd_mono_ms();
  nrd_nv_bucket_refill(nv, now);
  /* Tokens may go negative: each waiter reserves its token, so waiters queue
   * up in order and nobody spins. */
  int64_t wait_ms = 0;
  if (nv->tokens < 1) {
    wait_ms = (int64_t)((1 - nv->tokens) * 1000.0 / nv->rate_limit_rps + 0.999);
    nv->held_back_at_ms = now;
  }
  bool ok = deadline_ms <= 0 || now + wait_ms <= deadline_ms;
  if (ok) {
    nv->tokens -= 1;
    nrd_nv_rate_sent(nv, now + wait_ms);
  }
  pthread_mutex_unlock(&nv->bucket_mu);
  if (ok)
    nrd_nv_sleep(nv, wait_ms);
  return ok;
}

/* ---- errors ---- */

/* Cuts a UTF-8 sequence left incomplete at the end of s (by truncation). */
static void utf8_trim_tail(char *s)
{
  size_t len = strlen(s);
  size_t i = len;
  while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
    i--;
  if (i == 0)
    return;
  unsigned char lead = (unsigned char)s[i - 1];
  size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  if (len - (i - 1) < want)
    s[i - 1] = '\0';
}

void nrd_nv_set_error(struct nrd_nv_error *err, int http_status, const char *code, const char *fmt,
                      ...)
{
  va_list ap;
  err->http_status = http_status;
  snprintf(err->code, sizeof err->code, "%s", code ? code : "");
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  for (char *p = err->message; *p; p++) {
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      *p = ' ';
  }
  utf8_trim_tail(err->message);
}
