/* nrd-bench-hello: the bare libmicrohttpd hello-world the benchmark puts
 * /health against. The same daemon mode as the service (internal thread,
 * epoll where available), the answer queued on the second access-handler
 * call (keep-alive stays on), a JSON body the size of /health's.
 *
 *   nrd-bench-hello          listens on the PORT environment variable (0 or
 *                            unset: a free one) on 127.0.0.1, prints "listening <port>"
 *                            and serves until SIGTERM or SIGINT. */

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

static const char BODY[] = "{\"status\":\"ok\",\"version\":\"0.1.0\",\"uptimeSeconds\":1}";

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
  static int first_call_marker;
  struct MHD_Response *r;
  enum MHD_Result ret;

  if (*con_cls == NULL) {
    *con_cls = &first_call_marker;
    return MHD_YES;
  }
  *upload_data_size = 0;
  r = MHD_create_response_from_buffer(sizeof BODY - 1, (void *)BODY, MHD_RESPMEM_PERSISTENT);
  if (!r)
    return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  ret = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

int main(void)
{
  const char *p = getenv("PORT");
  unsigned port = p ? (unsigned)strtoul(p, NULL, 10) : 0;
  const union MHD_DaemonInfo *info;
  struct MHD_Daemon *d;
  struct sockaddr_in addr;
  sigset_t set;
  int sig = 0;

  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL, on_access, NULL,
                       MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "nrd-bench-hello: cannot listen on port %u\n", port);
    return 1;
  }
  info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  printf("listening %u\n", info ? info->port : port);
  fflush(stdout);
  sigwait(&set, &sig);
  MHD_stop_daemon(d);
  return 0;
}
