/* The webhook sender: one thread, its own store connection and curl handle,
 * draining the outbox (events table) in seq order. The head event blocks the
 * ones behind it until it is delivered or dead, so receivers see events in
 * the order they were written. Delivery is at least once: an event is marked
 * only after its POST ended, so a crash in between sends it again. */

#include "nrd/webhook.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/store.h"
#include "nrd/retry.h"
#include "nrd/thread.h"
#include "nrd/util.h"
#include "outbound.h"

#define WH_IDLE_WAIT_MS 1000 /* nothing due: look again after this */
#define WH_CONNECT_TIMEOUT_MS 5000
#define WH_MAX_RESPONSE_BYTES 65536   /* the answer is read and dropped up to this */
#define WH_RETRY_AFTER_CAP_MS 3600000 /* longest Retry-After we honour */
#define WH_DEFAULT_BASE_MS 1000
#define WH_DEFAULT_CAP_MS 300000

static _Atomic int64_t backoff_base_ms = WH_DEFAULT_BASE_MS;
static _Atomic int64_t backoff_cap_ms = WH_DEFAULT_CAP_MS;

struct nrd_webhook {
  char *url;
  char *secret; /* NULL: requests go unsigned */
  int64_t max_age_ms;
  long timeout_ms;
  struct nrd_store *st; /* used by the sender thread only */
  CURL *curl;           /* used by the sender thread only */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* on CLOCK_MONOTONIC */
  bool notified;     /* under mu */
  atomic_bool stopping;
};

/* What one POST produced. */
struct attempt {
  CURLcode cc;
  long status;     /* 0: no HTTP answer */
  size_t body_len; /* response bytes read (and dropped) */
  char retry_after[64];
};

void nrd_webhook_set_backoff_ms(int64_t base_ms, int64_t cap_ms)
{
  if (base_ms < 1 || cap_ms < 1) {
    base_ms = WH_DEFAULT_BASE_MS;
    cap_ms = WH_DEFAULT_CAP_MS;
  }
  atomic_store(&backoff_base_ms, base_ms);
  atomic_store(&backoff_cap_ms, cap_ms < base_ms ? base_ms : cap_ms);
}

void nrd_webhook_sign(const char *secret, const char *body, size_t len, char out[72])
{
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  size_t key_len = strlen(secret);

  if (key_len > INT32_MAX ||
      !HMAC(EVP_sha256(), secret, (int)key_len, (const unsigned char *)body, len, md, &md_len) ||
      md_len != 32) {
    fprintf(stderr, "fatal: HMAC-SHA256 failed\n");
    abort();
  }
  memcpy(out, "sha256=", 7);
  for (unsigned int i = 0; i < md_len; i++) {
    out[7 + 2 * i] = hex[md[i] >> 4];
    out[7 + 2 * i + 1] = hex[md[i] & 0x0f];
  }
  out[7 + 2 * md_len] = '\0';
}

/* One signed POST of ev's body. */
static void post_event(struct nrd_webhook *wh, const struct nrd_event *ev, struct attempt *a)
{
  CURL *h = wh->curl;
  size_t len = strlen(ev->body_json);
  char line[160];
  struct nrd_out_call call = {
    .url = wh->url,
    .connect_timeout_ms =
        wh->timeout_ms < WH_CONNECT_TIMEOUT_MS ? wh->timeout_ms : WH_CONNECT_TIMEOUT_MS,
    .timeout_ms = wh->timeout_ms,
    .stop = &wh->stopping,
    .sink = { .max = WH_MAX_RESPONSE_BYTES }, /* read and dropped */
  };

  memset(a, 0, sizeof *a);
  call.headers = nrd_out_header(call.headers, "Content-Type: application/json");
  call.headers = nrd_out_header(call.headers, "Expect:");
  if (wh->secret) {
    char sig[72];
    nrd_webhook_sign(wh->secret, ev->body_json, len, sig);
    snprintf(line, sizeof line, "X-Webhook-Signature: %s", sig);
    call.headers = nrd_out_header(call.headers, line);
  }
  snprintf(line, sizeof line, "X-Webhook-Timestamp: %" PRId64, nrd_now_ms() / 1000);
  call.headers = nrd_out_header(call.headers, line);
  snprintf(line, sizeof line, "X-Webhook-Id: %.120s", ev->id);
  call.headers = nrd_out_header(call.headers, line);

  nrd_out_setup(h, &call);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, ev->body_json);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);

  a->cc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
  /* A complete answer, or one whose body we cut off at the cap, has a status;
   * anything else broken counts as no answer. */
  if (a->cc != CURLE_OK && !(a->cc == CURLE_WRITE_ERROR && a->status > 0))
    a->status = 0;
  a->body_len = call.sink.len;
  memcpy(a->retry_after, call.retry_after, sizeof a->retry_after);
  nrd_out_done(h, &call);
}

static bool is_final_status(long st)
{
  return st >= 400 && st < 500 && st != 408 && st != 429;
}

static void mark(struct nrd_webhook *wh, const struct nrd_event *ev, const char *state,
                 int attempts, int64_t next_ms, const char *last_error, const char *metric)
{
  int rc = nrd_store_event_mark(wh->st, ev->id, state, attempts, next_ms, last_error);
  if (rc != NRD_OK) {
    /* Left pending: it is sent again (receivers de-duplicate by id). */
    LOG_ERROR_AT(NRD_FAULT_DISK, "webhook event not marked", "eventId", ev->id, "state", state);
    return;
  }
  nrd_metrics_webhook(metric);
}

/* Sends ev once and records the outcome. */
static void deliver(struct nrd_webhook *wh, const struct nrd_event *ev)
{
  struct attempt a;
  int attempt = ev->attempts + 1;
  char why[96];

  post_event(wh, ev, &a);
  if (a.cc == CURLE_ABORTED_BY_CALLBACK && atomic_load(&wh->stopping))
    return; /* still pending: sent again after the restart */

  if (a.status >= 200 && a.status < 300) {
    mark(wh, ev, "delivered", attempt, 0, NULL, "delivered");
    LOG_INFO("webhook delivered", "eventId", ev->id, "type", ev->type, "#status", NRD_I64(a.status),
             "#attempt", NRD_I64(attempt));
    return;
  }
  if (a.status == 0)
    snprintf(why, sizeof why, "network: %s", curl_easy_strerror(a.cc));
  else
    snprintf(why, sizeof why, "HTTP %ld", a.status);

  if (is_final_status(a.status)) {
    mark(wh, ev, "dead", attempt, 0, why, "dead");
    LOG_WARN_AT(NRD_FAULT_CLIENT, "webhook refused; event dead", "eventId", ev->id, "type",
                ev->type, "#status", NRD_I64(a.status), "#attempt", NRD_I64(attempt));
    return;
  }
  int64_t delay = nrd_backoff_ms(attempt > 0 ? (unsigned)attempt - 1 : 0,
                                 atomic_load(&backoff_base_ms), atomic_load(&backoff_cap_ms));
  int64_t after = nrd_retry_after_ms(a.retry_after, nrd_now_ms(), WH_RETRY_AFTER_CAP_MS);
  if (after > delay)
    delay = after;
  mark(wh, ev, "pending", attempt, nrd_now_ms() + delay, why, "retried");
  LOG_WARN_AT(NRD_FAULT_CLIENT, "webhook failed; will retry", "eventId", ev->id, "type", ev->type,
              "#status", NRD_I64(a.status), "error", why, "#attempt", NRD_I64(attempt),
              "#retryInMs", NRD_I64(delay));
}

/* One look at the outbox head; returns how long to wait before the next. */
static int64_t step(struct nrd_webhook *wh)
{
  struct nrd_event ev;
  int64_t wait = 0;
  int rc = nrd_store_event_next(wh->st, &ev);
  if (rc != NRD_OK)
    return WH_IDLE_WAIT_MS; /* none, busy, or an error the store logged */

  int64_t now = nrd_now_ms();
  if (now - ev.created_ms > wh->max_age_ms) {
    mark(wh, &ev, "dead", ev.attempts, 0, "older than WEBHOOK_MAX_AGE_HOURS", "dead");
    LOG_WARN_AT(NRD_FAULT_CLIENT, "webhook event expired; dead", "eventId", ev.id, "type", ev.type,
                "#attempts", NRD_I64(ev.attempts));
  } else if (ev.next_attempt_ms > now) {
    wait = ev.next_attempt_ms - now;
    if (wait > WH_IDLE_WAIT_MS)
      wait = WH_IDLE_WAIT_MS;
  } else {
    deliver(wh, &ev);
  }
  nrd_event_cleanup(&ev);
  return wait;
}

/* Waits up to ms, or until notified or stopped. */
static void wait_for(struct nrd_webhook *wh, int64_t ms)
{
  int64_t until = nrd_mono_ms() + ms;
  pthread_mutex_lock(&wh->mu);
  while (!wh->notified && !atomic_load(&wh->stopping)) {
    if (!nrd_cond_wait_ms(&wh->cv, &wh->mu, until - nrd_mono_ms()))
      break;
  }
  wh->notified = false;
  pthread_mutex_unlock(&wh->mu);
}

static void *sender_main(void *arg)
{
  struct nrd_webhook *wh = arg;
  while (!atomic_load(&wh->stopping)) {
    int64_t wait = step(wh);
    if (wait > 0)
      wait_for(wh, wait);
  }
  return NULL;
}

static void webhook_free(struct nrd_webhook *wh)
{
  if (wh->curl)
    curl_easy_cleanup(wh->curl);
  nrd_store_close(wh->st);
  if (wh->secret) {
    OPENSSL_cleanse(wh->secret, strlen(wh->secret));
    free(wh->secret);
  }
  free(wh->url);
  free(wh);
}

struct nrd_webhook *nrd_webhook_start(const struct nrd_config *cfg, char *err, size_t errlen)
{
  struct nrd_webhook *wh = NULL;
  bool sync_made = false;
  char dberr[256] = "";

  if (!cfg->webhook_url || !*cfg->webhook_url) {
    snprintf(err, errlen, "webhook: WEBHOOK_URL is not set");
    return NULL;
  }
  wh = nrd_xcalloc(1, sizeof *wh);
  wh->url = nrd_xstrdup(cfg->webhook_url);
  if (cfg->webhook_secret && *cfg->webhook_secret)
    wh->secret = nrd_xstrdup(cfg->webhook_secret);
  wh->max_age_ms = (int64_t)cfg->webhook_max_age_hours * 3600 * 1000;
  wh->timeout_ms = (long)cfg->request_timeout_ms;
  atomic_init(&wh->stopping, false);

  const struct nrd_store_target db = nrd_store_target_of(cfg);
  if (nrd_store_open(&db, &wh->st, NULL, dberr, sizeof dberr) != NRD_OK) {
    snprintf(err, errlen, "webhook: %s", dberr);
    goto fail;
  }
  wh->curl = curl_easy_init();
  if (!wh->curl) {
    snprintf(err, errlen, "webhook: curl_easy_init failed");
    goto fail;
  }
  nrd_cond_init_mono(&wh->cv);
  pthread_mutex_init(&wh->mu, NULL);
  sync_made = true;
  if (pthread_create(&wh->thread, NULL, sender_main, wh) != 0) {
    snprintf(err, errlen, "webhook: cannot start the sender thread");
    goto fail;
  }
  LOG_INFO("webhook sender started", "#signed", NRD_BOOL(wh->secret != NULL), "#maxAgeHours",
           NRD_I64(cfg->webhook_max_age_hours));
  return wh;

fail:
  if (sync_made) {
    pthread_cond_destroy(&wh->cv);
    pthread_mutex_destroy(&wh->mu);
  }
  webhook_free(wh);
  return NULL;
}

void nrd_webhook_notify(struct nrd_webhook *wh)
{
  if (!wh)
    return;
  nrd_flag_raise(&wh->mu, &wh->cv, &wh->notified);
}

void nrd_webhook_stop(struct nrd_webhook *wh)
{
  if (!wh)
    return;
  pthread_mutex_lock(&wh->mu);
  atomic_store(&wh->stopping, true);
  pthread_cond_signal(&wh->cv);
  pthread_mutex_unlock(&wh->mu);
  pthread_join(wh->thread, NULL);
  pthread_cond_destroy(&wh->cv);
  pthread_mutex_destroy(&wh->mu);
  LOG_INFO("webhook sender stopped");
  webhook_free(wh);
}
