#ifndef NRD_TEST_RECEIVER_H
#define NRD_TEST_RECEIVER_H

/* A webhook receiver for tests: libmicrohttpd on 127.0.0.1 port 0, a thread
 * per connection. Records every delivery (headers and body) and answers it
 * according to its knobs. */

#include <stdbool.h>
#include <stddef.h>

#define RCV_MAX_DELIVERIES 64

struct rcv_delivery {
  char *id;        /* X-Webhook-Id */
  char *signature; /* X-Webhook-Signature, NULL when absent */
  char *timestamp; /* X-Webhook-Timestamp */
  char *content_type;
  char *body;
  size_t body_len;
  unsigned answered; /* the status we answered */
};

struct receiver;

/* Knobs, set before deliveries arrive (guarded inside). */
struct rcv_knobs {
  int fail_first;          /* answer 500 to the first K deliveries */
  const char *refuse_id;   /* answer 400 to this X-Webhook-Id (not copied) */
  unsigned status;         /* answer this status to everything (0: off) */
  const char *retry_after; /* Retry-After sent with failures (not copied) */
  unsigned delay_ms;       /* hold each answer this long */
};

/* Starts; NULL on failure. rcv_stop frees. */
struct receiver *rcv_start(void);
void rcv_stop(struct receiver *r);
unsigned rcv_port(const struct receiver *r);
void rcv_url(const struct receiver *r, char out[64]); /* "http://127.0.0.1:PORT/hook" */
void rcv_set(struct receiver *r, const struct rcv_knobs *k);
/* Copy of delivery i (0-based) into out; false when there is no such one.
 * rcv_delivery_cleanup frees the copy. */
size_t rcv_count(struct receiver *r);
bool rcv_get(struct receiver *r, size_t i, struct rcv_delivery *out);
void rcv_delivery_cleanup(struct rcv_delivery *d);

/* True when header is "sha256=<hex HMAC-SHA256(body, secret)>" (checked with
 * OpenSSL directly and compared in constant time). */
bool verify(const char *secret, const char *body, size_t len, const char *header);

#endif
