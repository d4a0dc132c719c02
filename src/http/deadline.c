/* A deadline for each connection's request head (HTTP_REQUEST_TIMEOUT_
 * SECONDS). libmicrohttpd's own timeout is an idle timeout: a client that
 * sends one byte a second keeps its slot for ever. Every connection is
 * tracked from libmicrohttpd's "started" notice; the access handler's first
 * call marks its head complete, and a finished request starts the clock
 * again for the next head on a kept-alive connection, which may first idle
 * for libmicrohttpd's idle timeout (a proxy keeps connections open between
 * requests, nginx's upstream keepalive for 25 s). A reaper thread shuts
 * down the socket of any connection whose head is late; libmicrohttpd then
 * reads the end of the stream and closes it the ordinary way.
 *
 * libmicrohttpd sends the "closed" notice before it closes the socket, and
 * the notice takes the lock the reaper holds while it shuts a socket down:
 * the reaper never touches a descriptor that was closed and reused. */

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "http_internal.h"
#include "nrd/log.h"
#include "nrd/thread.h"
#include "nrd/util.h"

#define SWEEP_MS 200

struct tracked {
  MHD_socket fd;
  int64_t since_ms; /* when the head being waited for began */
  bool head_done;   /* the current request's head is complete */
  bool kept;        /* a request was answered on it: may idle first */
  bool reaped;
  struct tracked *prev, *next;
};

struct http_deadline {
  int64_t timeout_ms;
  int64_t idle_ms;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
  bool started;
  struct tracked *list;
  pthread_t thread;
};

static struct tracked *tracked_of(struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

void http_deadline_opened(struct http_deadline *d, struct MHD_Connection *conn,
                          void **socket_context)
{
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct tracked *t = nrd_xcalloc(1, sizeof *t);

  t->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
  t->since_ms = nrd_mono_ms();
  pthread_mutex_lock(&d->mu);
  t->next = d->list;
  if (d->list)
    d->list->prev = t;
  d->list = t;
  pthread_mutex_unlock(&d->mu);
  *socket_context = t;
}

void http_deadline_closed(struct http_deadline *d, void **socket_context)
{
  struct tracked *t = *socket_context;

  if (!t)
    return;
  pthread_mutex_lock(&d->mu);
  if (t->prev)
    t->prev->next = t->next;
  else
    d->list = t->next;
  if (t->next)
    t->next->prev = t->prev;
  pthread_mutex_unlock(&d->mu);
  *socket_context = NULL;
  free(t);
}

/* The connection's request head arrived, or (answered) its request was
 * answered: a kept-alive connection's clock starts again for the next one. */
static void mark(struct http_deadline *d, struct MHD_Connection *conn, bool answered)
{
  struct tracked *t = tracked_of(conn);

  if (!t)
    return;
  pthread_mutex_lock(&d->mu);
  t->head_done = !answered;
  if (answered) {
    t->kept = true;
    t->since_ms = nrd_mono_ms();
  }
  pthread_mutex_unlock(&d->mu);
}

void http_deadline_head_done(struct http_deadline *d, struct MHD_Connection *conn)
{
  mark(d, conn, false);
}

void http_deadline_request_done(struct http_deadline *d, struct MHD_Connection *conn)
{
  mark(d, conn, true);
}

/* Shuts down every late connection; called with the lock held. */
static size_t sweep(struct http_deadline *d)
{
  int64_t now = nrd_mono_ms();
  size_t n = 0;

  for (struct tracked *t = d->list; t; t = t->next) {
    int64_t allowed = d->timeout_ms + (t->kept ? d->idle_ms : 0);
    if (t->head_done || t->reaped || now - t->since_ms < allowed || t->fd == MHD_INVALID_SOCKET)
      continue;
    shutdown(t->fd, SHUT_RDWR);
    t->reaped = true;
    n++;
  }
  return n;
}

static void *reaper_main(void *arg)
{
  struct http_deadline *d = arg;

  pthread_mutex_lock(&d->mu);
  while (!d->stop) {
    nrd_cond_wait_ms(&d->cv, &d->mu, SWEEP_MS);
    size_t n = d->stop ? 0 : sweep(d);
    if (n > 0)
      LOG_INFO("closed connections whose request head was late", "#count", NRD_I64(n),
               "#timeoutSeconds", NRD_I64(d->timeout_ms / 1000));
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

struct http_deadline *http_deadline_create(unsigned timeout_seconds, unsigned idle_seconds)
{
  struct http_deadline *d = nrd_xcalloc(1, sizeof *d);

  d->timeout_ms = (int64_t)timeout_seconds * 1000;
  d->idle_ms = (int64_t)idle_seconds * 1000;
  pthread_mutex_init(&d->mu, NULL);
  nrd_cond_init_mono(&d->cv); /* timed waits count monotonic time */
  return d;
}

bool http_deadline_start(struct http_deadline *d)
{
  d->started = pthread_create(&d->thread, NULL, reaper_main, d) == 0;
  return d->started;
}

void http_deadline_stop(struct http_deadline *d)
{
  if (!d || !d->started)
    return;
  nrd_flag_raise(&d->mu, &d->cv, &d->stop);
  pthread_join(d->thread, NULL);
  d->started = false;
}

void http_deadline_destroy(struct http_deadline *d)
{
  if (!d)
    return;
  http_deadline_stop(d);
  for (struct tracked *t = d->list; t;) { /* none once the daemon stopped */
    struct tracked *next = t->next;
    free(t);
    t = next;
  }
  pthread_cond_destroy(&d->cv);
  pthread_mutex_destroy(&d->mu);
  free(d);
}
