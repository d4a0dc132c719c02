/* The one transport call every Novita operation goes through: deadline,
 * circuit breaker, token bucket, one libcurl request per attempt, the
 * classification of the answer, and retries with backoff. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/retry.h"
#include "outbound.h"
#include "transport.h"

/* Longest Retry-After we honour. */
#define NV_RETRY_AFTER_CAP_MS 120000
/* A body slower than 1 byte/s for this long (or the total timeout, if
 * shorter) is cut off. */
#define NV_LOW_SPEED_MAX_S 10

enum verdict { V_OK, V_NOT_FOUND, V_FINAL, V_BAD, V_RETRY, V_ACCOUNT, V_PREPAID };

/* What one attempt produced. */
struct attempt {
  CURLcode cc;
  long status;            /* 0: no HTTP answer */
  bool sent;              /* some of the request went out */
  bool overflow;          /* the body passed max_response_bytes */
  int64_t retry_after_ms; /* -1: no usable Retry-After */
  char retry_after[64];
  char errbuf[CURL_ERROR_SIZE];
};

/* One HTTP request on the connection's handle; once: it must not be sent twice. */
static void perform(struct nrd_novita_conn *c, const char *method, const char *url,
                    const char *body, const char *key, bool once, struct nrd_buf *resp,
                    struct attempt *a)
{
  const struct nrd_novita *nv = c->nv;
  CURL *h = c->curl;
  struct nrd_buf auth;
  struct nrd_out_call call = {
    .url = url,
    .connect_timeout_ms = (long)nv->connect_timeout_ms,
    .timeout_ms = (long)nv->request_timeout_ms,
    .stop = &nv->aborted,
    .sink = { .buf = resp, .max = nv->max_response_bytes },
  };
  long low_speed_s = (long)(nv->request_timeout_ms / 1000);

  if (low_speed_s > NV_LOW_SPEED_MAX_S)
    low_speed_s = NV_LOW_SPEED_MAX_S;
  if (low_speed_s < 1)
    low_speed_s = 1;
  memset(a, 0, sizeof *a);
  a->retry_after_ms = -1;
  nrd_buf_reset(resp);
  nrd_buf_init(&auth);

  if (*key) {
    nrd_buf_printf(&auth, "Authorization: Bearer %s", key);
    call.headers = nrd_out_header(call.headers, auth.data);
  }
  call.headers = nrd_out_header(call.headers, "Accept: application/json");
  call.headers = nrd_out_header(call.headers, "Expect:");
  if (body)
    call.headers = nrd_out_header(call.headers, "Content-Type: application/json");

  nrd_out_setup(h, &call);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, low_speed_s);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, a->errbuf);
  /* curl silently sends a request again when a reused connection dies before
   * any answer: a request that must go out at most once takes a new one. */
  curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, once ? 1L : 0L);
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
  }

  a->cc = curl_easy_perform(h);

  long req_size = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
  curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req_size);
  a->sent = req_size > 0 || a->status > 0;
  a->overflow = call.sink.overflow;
  if (a->cc != CURLE_OK && !a->overflow)
    a->status = 0; /* a broken answer counts as no answer */
  memcpy(a->retry_after, call.retry_after, sizeof a->retry_after);
  a->retry_after_ms = nrd_retry_after_ms(a->retry_after, nrd_now_ms(), NV_RETRY_AFTER_CAP_MS);

  /* Drop our references to the header list and the key before freeing them. */
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
  nrd_out_done(h, &call);
  if (auth.data)
    memset(auth.data, 0, auth.len);
  nrd_buf_cleanup(&auth);
}

/* Replaces each occurrence of secret in err->message with "***". */
static void scrub(struct nrd_nv_error *err, const char *secret)
{
  size_t sl = secret ? strlen(secret) : 0;
  char *hit;
  if (sl == 0)
    return;
  if (strstr(err->code, secret))
    err->code[0] = '\0'; /* a code holding a secret is no name of Novita's */
  while ((hit = strstr(err->message, secret)) != NULL) {
    size_t tail = strlen(hit + sl);
    memcpy(hit, "***", 3);
    memmove(hit + 3, hit + sl, tail + 1);
  }
}

/* Shorter env values cannot be told from ordinary words of a message. */
#define SCRUB_MIN_LEN 4

/* Scrubs from err->message what Novita may echo back from our request body:
 * the image auth and every env value (of SCRUB_MIN_LEN bytes or more). */
static void scrub_request_secrets(struct nrd_nv_error *err, const char *body)
{
  static const char *const auth_keys[] = { "imageAuthId", "imageAuth" };
  cJSON *req;
  const cJSON *env;

  if (!body || !err->message[0])
    return;
  req = nrd_json_parse(body, strlen(body));
  for (size_t i = 0; i < sizeof auth_keys / sizeof auth_keys[0]; i++) {
    const char *v = nrd_json_str(req, auth_keys[i]);
    if (v && strlen(v) >= SCRUB_MIN_LEN)
      scrub(err, v);
  }
  cJSON_ArrayForEach(env, cJSON_GetObjectItemCaseSensitive(req, "envs")) {
    const char *v = nrd_json_str(env, "value");
    if (v && strlen(v) >= SCRUB_MIN_LEN)
      scrub(err, v);
  }
  cJSON_Delete(req);
}

/* A 2xx body of a create or delete that is Novita's error shape: a
 * non-empty `reason`, a string `code`, or a non-zero numeric `code` with a
 * `message`; and, for a create, no `id`. */
static bool error_shaped(const struct nrd_buf *resp, bool create)
{
  cJSON *root = nrd_json_parse(resp->data ? resp->data : "", resp->len);
  bool shaped = false;
  if (cJSON_IsObject(root) && !(create && cJSON_GetObjectItemCaseSensitive(root, "id"))) {
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
    const char *reason = nrd_json_str(root, "reason");
    shaped = (reason && *reason) || (cJSON_IsString(code) && code->valuestring[0]) ||
             (cJSON_IsNumber(code) && code->valuedouble != 0 &&
              cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "message")));
  }
  cJSON_Delete(root);
  return shaped;
}

/* Turns an attempt into a verdict, filling err for anything but V_OK: by the
 * reason table (nrd_nv_classify), Novita's reason first, then the status.
 * *breaker_failure: the attempt says Novita is down or overloaded. */
static enum verdict classify(const struct nrd_novita *nv, enum nrd_endpoint ep,
                             const struct attempt *a, const struct nrd_buf *resp,
                             struct nrd_nv_error *err, bool *breaker_failure)
{
  long st = a->status;
  *breaker_failure = false;
  memset(err, 0, sizeof *err);

  if (a->overflow) {
    nrd_nv_set_error(err, (int)st, NULL, "response larger than %zu bytes (HTTP %ld)",
                     nv->max_response_bytes, st);
    return V_BAD;
  }
  if (a->cc != CURLE_OK) {
    nrd_nv_set_error(err, 0, NULL, "network error: %s",
                     a->errbuf[0] ? a->errbuf : curl_easy_strerror(a->cc));
    *breaker_failure = true;
    return V_RETRY;
  }
  bool ok_status = st >= 200 && st < 300;
  /* Novita may answer an error with HTTP 200: classified as a 4xx would be. */
  if (ok_status &&
      !((ep == NRD_EP_CREATE || ep == NRD_EP_DELETE) && error_shaped(resp, ep == NRD_EP_CREATE)))
    return V_OK;

  nrd_nv_decode_error(resp->data, resp->len, (int)st, err);
  scrub(err, nv->api_key);
  scrub(err, nv->internal_api_key);
  switch (nrd_nv_classify(err->code, ok_status ? 400 : (int)st)) {
  case NRD_NV_CLASS_GONE:
    return V_NOT_FOUND;
  case NRD_NV_CLASS_ACCOUNT:
    return V_ACCOUNT;
  case NRD_NV_CLASS_PREPAID:
    return V_PREPAID;
  case NRD_NV_CLASS_ROW:
    return V_FINAL;
  case NRD_NV_CLASS_TRANSIENT:
    break;
  }
  /* Novita is up and answering when it names a passing condition. */
  *breaker_failure = st == 408 || st == 429 || st >= 500;
  return V_RETRY;
}

/* Waits for the host-wide not-before (Retry-After). false when it would end
 * after the connection's deadline. */
static bool wait_not_before(struct nrd_novita_conn *c)
{
  int64_t wait = atomic_load(&c->nv->not_before_ms) - nrd_now_ms();
  if (wait <= 0)
    return true;
  if (c->deadline_ms && nrd_mono_ms() + wait >= c->deadline_ms)
    return false;
  nrd_nv_sleep(c->nv, wait);
  return true;
}

void nrd_novita_set_not_before(struct nrd_novita *nv, int64_t wall_ms)
{
  int64_t cur = atomic_load(&nv->not_before_ms);
  while (wall_ms > cur && !atomic_compare_exchange_weak(&nv->not_before_ms, &cur, wall_ms))
    ;
}

int64_t nrd_novita_not_before(struct nrd_novita *nv)
{
  return atomic_load(&nv->not_before_ms);
}

void nrd_novita_backoff(struct nrd_novita *nv, unsigned attempt)
{
  nrd_nv_sleep(nv, nrd_backoff_ms(attempt, nv->backoff_base_ms, nv->backoff_cap_ms));
}

static void log_failure(enum nrd_endpoint ep, const struct nrd_nv_error *err, unsigned attempt,
                        const char *outcome)
{
  LOG_WARN_AT(NRD_FAULT_NOVITA, "novita request failed", "endpoint", nrd_endpoint_name(ep),
              "#status", NRD_I64(err->http_status), "code", err->code, "message", err->message,
              "#attempt", NRD_I64(attempt + 1), "outcome", outcome);
}

/* Not sent this time: a call that went out before ends transient, keeping
 * its last attempt's error; else err says why and rc is the result. */
static enum nrd_nv_rc not_sent(bool sent_before, struct nrd_nv_error *err, enum nrd_nv_rc rc,
                               const char *why)
{
  if (sent_before)
    return NRD_NV_TRANSIENT;
  nrd_nv_set_error(err, 0, NULL, "%s", why);
  return rc;
}

/* Whether the next attempt may go out now: NRD_NV_OK (with *probe set when
 * it is the half-open probe), or the call's result. */
static enum nrd_nv_rc may_send(struct nrd_novita_conn *c, bool sent_before, bool *probe,
                               struct nrd_nv_error *err)
{
  struct nrd_novita *nv = c->nv;

  if (c->deadline_ms && nrd_mono_ms() >= c->deadline_ms)
    return not_sent(sent_before, err, NRD_NV_DEADLINE,
                    "deadline passed before the request was sent");
  if (nrd_nv_aborted(nv))
    return not_sent(sent_before, err, NRD_NV_DEADLINE, "shutting down: not sent");
  /* Refuse before waiting for a token while the circuit cools down... */
  if (nrd_novita_circuit_state(nv) == NV_CIRCUIT_OPEN)
    return not_sent(sent_before, err, NRD_NV_CIRCUIT_OPEN,
                    "circuit open: Novita failed repeatedly; not sent");
  if (!wait_not_before(c))
    return not_sent(sent_before, err, NRD_NV_DEADLINE,
                    "deadline passes before Novita's Retry-After allows a request");
  if (!nrd_nv_bucket_take(nv, c->deadline_ms))
    return not_sent(sent_before, err, NRD_NV_DEADLINE,
                    "deadline passes before the rate limit allows a request");
  /* ...and ask again after it: the half-open probe is taken only here. */
  if (!nrd_nv_circuit_admit(nv, probe))
    return not_sent(sent_before, err, NRD_NV_CIRCUIT_OPEN,
                    "circuit open: Novita failed repeatedly; not sent");
  return NRD_NV_OK;
}

/* The end of a call on any verdict but V_RETRY: the breaker hears of a
 * success (Novita answered), the failure is logged, the result returned. */
static enum nrd_nv_rc settle(struct nrd_novita *nv, enum nrd_endpoint ep, enum verdict v,
                             bool allow_retry, bool probe, unsigned attempt,
                             const struct nrd_nv_error *err)
{
  static const struct {
    enum nrd_nv_rc rc;
    const char *outcome; /* NULL: not a failure, not logged */
  } ends[] = {
    [V_OK] = { NRD_NV_OK, NULL },
    [V_NOT_FOUND] = { NRD_NV_NOT_FOUND, NULL },
    [V_FINAL] = { NRD_NV_FINAL, "final" },
    [V_ACCOUNT] = { NRD_NV_ACCOUNT, "account" },
    [V_PREPAID] = { NRD_NV_PREPAID, "prepaid" },
  };

  nrd_nv_circuit_record(nv, false, probe);
  if (v == V_BAD) {
    log_failure(ep, err, attempt, allow_retry ? "bad_response" : "ambiguous");
    return allow_retry ? NRD_NV_BAD_RESPONSE : NRD_NV_AMBIGUOUS;
  }
  if (ends[v].outcome)
    log_failure(ep, err, attempt, ends[v].outcome);
  return ends[v].rc;
}

enum nrd_nv_rc nrd_nv_transport(struct nrd_novita_conn *c, enum nrd_endpoint ep, const char *method,
                                const char *url, const char *body, bool use_internal_key,
                                bool allow_retry, struct nrd_buf *resp, int *http_status,
                                struct nrd_nv_error *err)
{
  struct nrd_novita *nv = c->nv;
  const char *key = use_internal_key && nv->internal_api_key ? nv->internal_api_key : nv->api_key;
  struct attempt a;
  bool sent_before = false;

  memset(err, 0, sizeof *err);
  *http_status = 0;
  for (unsigned attempt = 0;; attempt++) {
    bool probe = false;
    enum nrd_nv_rc rc = may_send(c, sent_before, &probe, err);
    if (rc != NRD_NV_OK)
      return rc;

    int64_t t0 = nrd_mono_ms();
    perform(c, method, url, body, key, !allow_retry, resp, &a);
    atomic_fetch_add(&nv->calls, 1);
    nrd_metrics_novita_request(ep, (int)a.status, (double)(nrd_mono_ms() - t0) / 1000.0);
    sent_before = true;
    *http_status = (int)a.status;

    if (a.cc == CURLE_ABORTED_BY_CALLBACK) {
      /* Shutdown cut it short: no verdict on Novita (the breaker is left
       * as it is: an aborted client sends nothing more), and no retry. */
      bool maybe_applied = !allow_retry && a.sent;
      nrd_nv_set_error(err, 0, NULL, "aborted by shutdown while in flight");
      log_failure(ep, err, attempt, maybe_applied ? "ambiguous" : "transient");
      return maybe_applied ? NRD_NV_AMBIGUOUS : NRD_NV_TRANSIENT;
    }
    if ((a.status == 429 || a.status == 503) && a.retry_after_ms >= 0)
      nrd_novita_set_not_before(nv, nrd_now_ms() + a.retry_after_ms);
    /* A 429 cuts the rate; only an answer Novita served raises it (an
     * error, a 5xx storm above all, is no sign there is room). */
    if (a.status == 429 || (a.status >= 200 && a.status < 300))
      nrd_nv_rate_feedback(nv, t0, a.status == 429);
    bool breaker_failure;
    enum verdict v = classify(nv, ep, &a, resp, err, &breaker_failure);
    scrub_request_secrets(err, body);
    if (v != V_RETRY)
      return settle(nv, ep, v, allow_retry, probe, attempt, err);

    if (!allow_retry) {
      /* No second try: a request Novita may have acted on has an unknown outcome. */
      bool maybe_applied = a.sent && (a.status == 0 || a.status >= 500);
      nrd_nv_circuit_record(nv, breaker_failure, probe);
      log_failure(ep, err, attempt, maybe_applied ? "ambiguous" : "transient");
      return maybe_applied ? NRD_NV_AMBIGUOUS : NRD_NV_TRANSIENT;
    }
    int64_t wait = nrd_backoff_ms(attempt, nv->backoff_base_ms, nv->backoff_cap_ms);
    if (a.retry_after_ms > wait)
      wait = a.retry_after_ms;
    bool last = probe || attempt >= nv->max_retry_attempts ||
                (c->deadline_ms && nrd_mono_ms() + wait >= c->deadline_ms);
    if (last) {
      nrd_nv_circuit_record(nv, breaker_failure, probe);
      log_failure(ep, err, attempt, "transient");
      return NRD_NV_TRANSIENT;
    }
    log_failure(ep, err, attempt, "retry");
    nrd_metrics_novita_retry(ep);
    nrd_nv_sleep(nv, wait);
  }
}
