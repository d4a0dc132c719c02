/* The simulator's server-side rate limit: at most R requests a second to
 * the public API and the jobs host together (a token bucket holding one
 * second's worth, refilled continuously); above it 429 RATE_LIMIT_EXCEEDED
 * with Retry-After in whole seconds, as an API gateway answers. Off (0)
 * unless a test or the bench sets it: Novita publishes no limit. */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "sim_internal.h"

static int64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void nrd_sim_set_rate_limit(struct nrd_sim *s, double rps)
{
  pthread_mutex_lock(&s->rate_mu);
  s->rate_rps = rps > 0 ? rps : 0;
  s->rate_tokens = s->rate_rps;
  s->rate_at_ns = now_ns();
  pthread_mutex_unlock(&s->rate_mu);
}

bool sim_rate_refuse(struct nrd_sim *s, char retry_after[16])
{
  bool refuse = false;
  pthread_mutex_lock(&s->rate_mu);
  if (s->rate_rps > 0) {
    int64_t now = now_ns();
    s->rate_tokens += (double)(now - s->rate_at_ns) / 1e9 * s->rate_rps;
    if (s->rate_tokens > s->rate_rps)
      s->rate_tokens = s->rate_rps;
    s->rate_at_ns = now;
    if (s->rate_tokens >= 1) {
      s->rate_tokens -= 1;
    } else {
      refuse = true;
      double wait_s = (1 - s->rate_tokens) / s->rate_rps;
      snprintf(retry_after, 16, "%d", (int)ceil(wait_s));
      s->rate_refused++;
    }
  }
  pthread_mutex_unlock(&s->rate_mu);
  return refuse;
}

unsigned long nrd_sim_rate_refused(struct nrd_sim *s)
{
  pthread_mutex_lock(&s->rate_mu);
  unsigned long n = s->rate_refused;
  pthread_mutex_unlock(&s->rate_mu);
  return n;
}
