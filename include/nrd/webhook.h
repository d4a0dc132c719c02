#ifndef NRD_WEBHOOK_H
#define NRD_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "nrd/config.h"

/* Webhook delivery from the durable outbox (the events table). A sender
 * thread with its own store connection and curl handle drains pending events
 * in order: POST of the event's JSON body to cfg->webhook_url, signed
 * X-Webhook-Signature: sha256=<hex HMAC-SHA256(body, WEBHOOK_SECRET)> and
 * X-Webhook-Timestamp: <unix seconds of sending>. 2xx: delivered. 5xx, 429
 * and network errors: retried with backoff and full jitter (Retry-After
 * honoured) until the event is older than WEBHOOK_MAX_AGE_HOURS, then dead.
 * Other 4xx: dead at once. Nothing in recovery ever waits on it. */

struct nrd_webhook;

/* Starts the sender thread (its own store connection on cfg->database_path
 * and one curl handle; curl_global_init must have run). cfg's strings are
 * copied. NULL with err when the URL is unset or the database cannot be
 * opened. Freed by nrd_webhook_stop. */
struct nrd_webhook *nrd_webhook_start(const struct nrd_config *cfg, char *err, size_t errlen);
/* Wakes the sender (new events were written). Safe from any thread; NULL ok. */
void nrd_webhook_notify(struct nrd_webhook *wh);
/* Stops the sender (an attempt in flight is aborted and retried after
 * restart), joins its thread and frees wh. NULL ok. */
void nrd_webhook_stop(struct nrd_webhook *wh);

/* "sha256=<64 hex>" of body under secret into out. */
void nrd_webhook_sign(const char *secret, const char *body, size_t len, char out[72]);

/* Test hook: the retry backoff's base and cap in milliseconds (defaults 1000
 * and 300000; values < 1 restore them). Process-wide, read by senders when
 * they schedule a retry. Production code never calls it. */
void nrd_webhook_set_backoff_ms(int64_t base_ms, int64_t cap_ms);

#endif
