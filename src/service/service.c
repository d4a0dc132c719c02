/* The service: starts the parts in one order, stops them in the reverse
 * (see nrd/service.h). */
#include "nrd/service.h"

#include <stdio.h>
#include <stdlib.h>

#include "nrd/http.h"
#include "nrd/novita.h"
#include "nrd/run.h"
#include "nrd/scheduler.h"
#include "nrd/util.h"
#include "nrd/webhook.h"

struct nrd_service {
  const struct nrd_config *cfg;
  struct nrd_novita *nv;
  struct nrd_runner *runner;
  struct nrd_webhook *wh;
  struct nrd_scheduler *sched;
  struct nrd_http *http;
};

static struct nrd_novita *novita_from_config(const struct nrd_config *cfg,
                                             const struct nrd_service_options *opt)
{
  struct nrd_novita_options o = {
    .base_url = cfg->novita_api_base_url,
    .api_key = cfg->novita_api_key,
    .internal_base_url = cfg->novita_internal_api_base_url,
    .internal_api_key = cfg->novita_internal_api_key,
    .page_size = cfg->novita_page_size,
    .request_timeout_ms = cfg->request_timeout_ms,
    .max_retry_attempts = cfg->max_retry_attempts,
    .rate_limit_rps = cfg->novita_rate_limit_rps,
    .rate_adaptive = cfg->novita_rate_limit_adaptive,
    .rate_limit_max_rps = cfg->novita_rate_limit_max_rps,
    .circuit_failure_threshold = cfg->circuit_failure_threshold,
    .circuit_cooldown_ms = cfg->circuit_cooldown_seconds * 1000u,
    .backoff_base_ms = opt->backoff_base_ms,
    .backoff_cap_ms = opt->backoff_cap_ms,
  };
  return nrd_novita_create(&o);
}

static void notify_webhook(void *ud)
{
  nrd_webhook_notify(ud);
}

static bool scheduler_wanted(const struct nrd_config *cfg, const struct nrd_service_options *opt)
{
  if (!opt->scheduler_if_timed)
    return true;
  return cfg->migration_interval_minutes > 0 || cfg->watch_interval_seconds > 0;
}

/* Steps 3 to 5 of the start order. */
static int start_front(struct nrd_service *svc, const struct nrd_service_options *opt, char *err,
                       size_t errlen)
{
  const struct nrd_config *cfg = svc->cfg;
  if (cfg->webhook_url && !opt->webhook_by_caller) {
    svc->wh = nrd_webhook_start(cfg, err, errlen);
    if (!svc->wh)
      return -1;
    nrd_runner_set_event_hook(svc->runner, notify_webhook, svc->wh);
  }
  if (scheduler_wanted(cfg, opt))
    svc->sched = nrd_scheduler_create(cfg, svc->runner);
  svc->http = nrd_http_start(cfg, svc->runner, svc->sched, err, errlen);
  return svc->http ? 0 : -1;
}

struct nrd_service *nrd_service_start(const struct nrd_config *cfg,
                                      const struct nrd_service_options *opt, char *err,
                                      size_t errlen)
{
  static const struct nrd_service_options defaults = { 0 };
  struct nrd_service *svc = nrd_xcalloc(1, sizeof *svc);
  if (!opt)
    opt = &defaults;
  svc->cfg = cfg;
  svc->nv = novita_from_config(cfg, opt);
  svc->runner = nrd_runner_create(cfg, svc->nv, err, errlen);
  if (!svc->runner || (!opt->runner_only && start_front(svc, opt, err, errlen) != 0)) {
    nrd_service_stop(svc);
    return NULL;
  }
  return svc;
}

void nrd_service_stop(struct nrd_service *svc)
{
  if (!svc)
    return;
  /* Stop taking work: no new request, no new row, no call left waiting. */
  if (svc->http)
    nrd_http_quiesce(svc->http);
  if (svc->runner)
    nrd_runner_stop(svc->runner);
  nrd_novita_abort(svc->nv);
  /* Then take the parts down. */
  nrd_scheduler_halt(svc->sched);
  nrd_runner_halt(svc->runner);
  /* A keep-alive connection can still bring a request until HTTP has
   * stopped: the scheduler and runner it reaches are halted, not freed. */
  if (svc->http)
    nrd_http_stop(svc->http);
  nrd_scheduler_destroy(svc->sched);
  nrd_runner_destroy(svc->runner);
  nrd_webhook_stop(svc->wh);
  nrd_novita_destroy(svc->nv);
  free(svc);
}

void nrd_service_http_stopped(struct nrd_service *svc)
{
  svc->http = NULL;
}

struct nrd_novita *nrd_service_novita(const struct nrd_service *svc)
{
  return svc->nv;
}

struct nrd_runner *nrd_service_runner(const struct nrd_service *svc)
{
  return svc->runner;
}

struct nrd_scheduler *nrd_service_scheduler(const struct nrd_service *svc)
{
  return svc->sched;
}

struct nrd_http *nrd_service_http(const struct nrd_service *svc)
{
  return svc->http;
}
