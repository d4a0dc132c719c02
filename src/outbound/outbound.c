/* The shared libcurl request of the outbound senders (see outbound.h). */
#include "outbound.h"

#include <stdio.h>
#include <stdlib.h>

#include "nrd/retry.h"

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
  struct nrd_out_sink *s = ud;
  size_t n = size * nmemb;
  if (n > s->max - s->len) {
    s->overflow = true;
    return 0; /* a short count makes curl stop with CURLE_WRITE_ERROR */
  }
  if (s->buf)
    nrd_buf_append(s->buf, ptr, n);
  s->len += n;
  return n;
}

static size_t on_header(char *ptr, size_t size, size_t nitems, void *ud)
{
  struct nrd_out_call *call = ud;
  nrd_retry_after_header(ptr, size * nitems, call->retry_after);
  return size * nitems;
}

/* Called by curl during a transfer: non-zero aborts it (shutdown). */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
  const atomic_bool *stop = ud;
  (void)dltotal;
  (void)dlnow;
  (void)ultotal;
  (void)ulnow;
  return stop && atomic_load(stop) ? 1 : 0;
}

struct curl_slist *nrd_out_header(struct curl_slist *list, const char *line)
{
  struct curl_slist *n = curl_slist_append(list, line);
  if (!n) {
    fprintf(stderr, "fatal: curl_slist_append failed\n");
    abort();
  }
  return n;
}

void nrd_out_setup(CURL *h, struct nrd_out_call *call)
{
  call->retry_after[0] = '\0';
  call->sink.len = call->sink.buf ? call->sink.buf->len : 0;
  call->sink.overflow = false;
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, call->url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, call->connect_timeout_ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, call->timeout_ms);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, call->headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &call->sink);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, call);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, call->stop);
}

void nrd_out_done(CURL *h, struct nrd_out_call *call)
{
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(call->headers);
  call->headers = NULL;
}
