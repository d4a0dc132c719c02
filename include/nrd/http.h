#ifndef NRD_HTTP_H
#define NRD_HTTP_H

#include <stddef.h>

#include "nrd/config.h"
#include "nrd/run.h"

/* The HTTP API on libmicrohttpd (internal polling thread, epoll). Immediate
 * check-failed requests suspend their connection until their run ends, so
 * nothing else waits behind them. */

struct nrd_http;
struct nrd_scheduler;

struct nrd_http *nrd_http_start(const struct nrd_config *cfg, struct nrd_runner *runner,
                                struct nrd_scheduler *sched, char *err, size_t errlen);
unsigned nrd_http_port(const struct nrd_http *h);
/* Stops accepting new connections (in-flight ones finish). */
void nrd_http_quiesce(struct nrd_http *h);
void nrd_http_stop(struct nrd_http *h);

#endif
