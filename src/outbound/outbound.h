#ifndef NRD_OUTBOUND_H
#define NRD_OUTBOUND_H

/* The libcurl request both outbound senders make: the Novita transport
 * (src/novita) and the webhook sender (src/webhook). One place for the
 * options they share (no signals, http(s) only, no redirects, timeouts), the
 * body sink with its cap, the Retry-After header and the stop flag that cuts
 * a transfer short. Private to those two layers: the only others besides
 * main.c that include curl. */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "nrd/util.h"

/* Where an answer's body goes: appended to buf (NULL: read and dropped), at
 * most max bytes; past that the transfer stops (CURLE_WRITE_ERROR) with
 * overflow set. */
struct nrd_out_sink {
  struct nrd_buf *buf;
  size_t max;
  size_t len; /* bytes read so far */
  bool overflow;
};

/* One request: filled by the caller, read by the callbacks during
 * curl_easy_perform, so it must live until then. */
struct nrd_out_call {
  const char *url;
  long connect_timeout_ms, timeout_ms;
  struct curl_slist *headers; /* nrd_out_header; the caller frees after perform */
  const atomic_bool *stop;    /* a transfer in flight ends when it turns true */
  struct nrd_out_sink sink;
  char retry_after[64]; /* the Retry-After header's value ("" none) */
};

/* Appends one header line; aborts when out of memory (like nrd_xmalloc). */
struct curl_slist *nrd_out_header(struct curl_slist *list, const char *line);

/* Resets h (its connection cache stays: keep-alive survives between calls)
 * and sets the shared options for call. The caller adds its own (method,
 * body, ...), performs, then calls nrd_out_done. */
void nrd_out_setup(CURL *h, struct nrd_out_call *call);

/* After perform: h no longer points at call's headers, which are freed. */
void nrd_out_done(CURL *h, struct nrd_out_call *call);

#endif
