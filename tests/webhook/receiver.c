/* The test webhook receiver (see receiver.h). */

#include "receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <fcntl.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "nrd/util.h"

#define RCV_MAX_BODY (1024 * 1024)

struct receiver {
  struct MHD_Daemon *d;
  unsigned port;
  atomic_bool stopping;
  pthread_mutex_t mu;
  struct rcv_knobs knobs;
  int seen; /* deliveries so far */
  struct rcv_delivery log[RCV_MAX_DELIVERIES];
  size_t n;
};

struct rcv_req {
  struct nrd_buf body;
};

static char *header(struct MHD_Connection *c, const char *name)
{
  return nrd_xstrdup(MHD_lookup_connection_value(c, MHD_HEADER_KIND, name));
}

/* Records the delivery and picks the answer (under mu). */
/* Appends the delivery to $NRD_WEBHOOK_LOG as one JSON line (headers by
 * lower-case name, the body parsed), for the openapi_responses test to
 * validate against openapi.yaml's webhooks. One write with O_APPEND: lines
 * of parallel tests never interleave. */
static void log_delivery(struct MHD_Connection *c, const struct rcv_req *q, unsigned status)
{
  static const char *const names[] = { "X-Webhook-Id", "X-Webhook-Signature", "X-Webhook-Timestamp",
                                       "Content-Type", "User-Agent" };
  const char *file = getenv("NRD_WEBHOOK_LOG");
  if (!file || !*file)
    return;
  cJSON *rec = cJSON_CreateObject();
  cJSON_AddBoolToObject(rec, "webhook", 1);
  cJSON_AddStringToObject(rec, "method", "POST");
  cJSON_AddNumberToObject(rec, "status", (double)status);
  cJSON *h = cJSON_AddObjectToObject(rec, "headers");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, names[i]);
    char lower[32];
    size_t n = strlen(names[i]);
    for (size_t k = 0; k <= n; k++)
      lower[k] = (char)(names[i][k] >= 'A' && names[i][k] <= 'Z' ? names[i][k] + 32 : names[i][k]);
    if (v)
      cJSON_AddStringToObject(h, lower, v);
  }
  cJSON *body = cJSON_ParseWithLength(q->body.data ? q->body.data : "", q->body.len);
  if (body) {
    cJSON *type = cJSON_GetObjectItem(body, "type");
    char path[96];
    snprintf(path, sizeof path, "webhook %s", cJSON_IsString(type) ? type->valuestring : "?");
    cJSON_AddStringToObject(rec, "path", path);
    cJSON_AddItemToObject(rec, "body", body);
  } else {
    cJSON_AddStringToObject(rec, "path", "webhook ?");
    cJSON_AddStringToObject(rec, "body", q->body.data ? q->body.data : "");
  }
  char *line = cJSON_PrintUnformatted(rec);
  size_t len = strlen(line);
  line[len] = '\n'; /* over the NUL: written by length */
  int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd >= 0) {
    if (write(fd, line, len + 1) != (ssize_t)(len + 1))
      perror("log_delivery");
    close(fd);
  }
  cJSON_free(line);
  cJSON_Delete(rec);
}

static unsigned record(struct receiver *r, struct MHD_Connection *c, struct rcv_req *q)
{
  unsigned status = 200;
  pthread_mutex_lock(&r->mu);
  const struct rcv_knobs *k = &r->knobs;
  const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Webhook-Id");
  if (r->seen < k->fail_first)
    status = 500;
  else if (k->refuse_id && id && strcmp(id, k->refuse_id) == 0)
    status = 400;
  else if (k->status)
    status = k->status;
  r->seen++;
  if (r->n < RCV_MAX_DELIVERIES) {
    struct rcv_delivery *d = &r->log[r->n++];
    d->id = header(c, "X-Webhook-Id");
    d->signature = header(c, "X-Webhook-Signature");
    d->timestamp = header(c, "X-Webhook-Timestamp");
    d->content_type = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    d->body = nrd_xstrndup(q->body.data ? q->body.data : "", q->body.len);
    d->body_len = q->body.len;
    d->answered = status;
  }
  log_delivery(c, q, status);
  pthread_mutex_unlock(&r->mu);
  return status;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
  struct receiver *r = cls;
  struct rcv_req *q = *con_cls;
  (void)url;
  (void)method;
  (void)version;
  if (!q) {
    q = nrd_xcalloc(1, sizeof *q);
    nrd_buf_init(&q->body);
    *con_cls = q;
    return MHD_YES;
  }
  if (*upload_size) {
    if (q->body.len + *upload_size <= RCV_MAX_BODY)
      nrd_buf_append(&q->body, upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  unsigned status = record(r, c, q);
  pthread_mutex_lock(&r->mu);
  unsigned delay = r->knobs.delay_ms;
  const char *retry_after = r->knobs.retry_after;
  pthread_mutex_unlock(&r->mu);
  for (unsigned waited = 0; waited < delay && !atomic_load(&r->stopping); waited += 10)
    nrd_sleep_ms(10);

  static char ok[] = "{\"ok\":true}";
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(strlen(ok), ok, MHD_RESPMEM_PERSISTENT);
  if (!resp)
    return MHD_NO;
  if (retry_after && status != 200 && status != 400)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_after);
  enum MHD_Result ret = MHD_queue_response(c, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct rcv_req *q = *con_cls;
  (void)cls;
  (void)c;
  (void)toe;
  if (!q)
    return;
  nrd_buf_cleanup(&q->body);
  free(q);
  *con_cls = NULL;
}

struct receiver *rcv_start(void)
{
  struct receiver *r = nrd_xcalloc(1, sizeof *r);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = 0;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  pthread_mutex_init(&r->mu, NULL);
  atomic_init(&r->stopping, false);
  r->d = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
      NULL, on_request, r, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&sa,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, r, MHD_OPTION_END);
  if (!r->d) {
    pthread_mutex_destroy(&r->mu);
    free(r);
    return NULL;
  }
  r->port = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT)->port;
  return r;
}

void rcv_stop(struct receiver *r)
{
  if (!r)
    return;
  atomic_store(&r->stopping, true);
  MHD_stop_daemon(r->d);
  for (size_t i = 0; i < r->n; i++)
    rcv_delivery_cleanup(&r->log[i]);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

unsigned rcv_port(const struct receiver *r)
{
  return r->port;
}

void rcv_url(const struct receiver *r, char out[64])
{
  snprintf(out, 64, "http://127.0.0.1:%u/hook", r->port);
}

void rcv_set(struct receiver *r, const struct rcv_knobs *k)
{
  pthread_mutex_lock(&r->mu);
  r->knobs = *k;
  pthread_mutex_unlock(&r->mu);
}

size_t rcv_count(struct receiver *r)
{
  pthread_mutex_lock(&r->mu);
  size_t n = r->n;
  pthread_mutex_unlock(&r->mu);
  return n;
}

bool rcv_get(struct receiver *r, size_t i, struct rcv_delivery *out)
{
  bool found = false;
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&r->mu);
  if (i < r->n) {
    const struct rcv_delivery *d = &r->log[i];
    out->id = nrd_xstrdup(d->id);
    out->signature = nrd_xstrdup(d->signature);
    out->timestamp = nrd_xstrdup(d->timestamp);
    out->content_type = nrd_xstrdup(d->content_type);
    out->body = nrd_xstrndup(d->body, d->body_len);
    out->body_len = d->body_len;
    out->answered = d->answered;
    found = true;
  }
  pthread_mutex_unlock(&r->mu);
  return found;
}

void rcv_delivery_cleanup(struct rcv_delivery *d)
{
  free(d->id);
  free(d->signature);
  free(d->timestamp);
  free(d->content_type);
  free(d->body);
  memset(d, 0, sizeof *d);
}

static int hex_value(char ch)
{
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  return -1;
}

bool verify(const char *secret, const char *body, size_t len, const char *hdr)
{
  unsigned char want[EVP_MAX_MD_SIZE];
  unsigned char got[32];
  unsigned int want_len = 0;
  static const char prefix[] = "sha256=";

  if (!hdr || strncmp(hdr, prefix, sizeof prefix - 1) != 0)
    return false;
  hdr += sizeof prefix - 1;
  if (strlen(hdr) != 2 * sizeof got)
    return false;
  for (size_t i = 0; i < sizeof got; i++) {
    int hi = hex_value(hdr[2 * i]);
    int lo = hex_value(hdr[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return false;
    got[i] = (unsigned char)(hi << 4 | lo);
  }
  if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, want,
            &want_len) ||
      want_len != sizeof got)
    return false;
  return CRYPTO_memcmp(want, got, sizeof got) == 0;
}
