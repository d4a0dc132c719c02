/* The adaptive rate of the token bucket (issue 15), after the AWS SDKs'
 * adaptive retry mode: Novita publishes no rate limit, so the bucket finds
 * it. It starts at NOVITA_RATE_LIMIT_RPS and holds one second of calls (the
 * AWS SDKs' bucket capacity); while calls succeed and the bucket
 * is what holds them back (a call waited for its token within the last
 * second) it rises (doubling every 50 ms of that until the first
 * 429; after one, back to the rate measured at that 429 within a couple of
 * seconds, then 5% of it a second above); a 429 cuts the rate measured over
 * the last second by 30%, as the AWS SDKs' CUBIC does (once per burst of
 * 429s: a 429 to a request sent before the last cut does not cut again). Never above NOVITA_RATE_LIMIT_MAX_RPS, nor
 * below MIN_RPS. Retry-After is honoured by the transport as before. */
#include <math.h>

#include "nrd/metrics.h"
#include "transport.h"

#define MIN_RPS 0.5
#define CUT 0.7           /* a 429 cuts the measured rate by 30% (AWS: 0.7) */
#define DOUBLING_MS 50.0  /* before the first 429, while calls wait: 20 to 50 in 66 ms */
#define APPROACH_MS 750.0 /* time constant back to the ceiling */
#define PROBE 0.05        /* of the ceiling, a second, above it */
#define MEASURE_MS 1000
#define HELD_BACK_MS 1000 /* a wait this recent: the bucket holds calls back */

static void set_rate(struct nrd_novita *nv, double r)
{
  nrd_nv_bucket_refill(nv, nrd_mono_ms());
  if (r > nv->rate_max_rps)
    r = nv->rate_max_rps;
  if (r < MIN_RPS)
    r = MIN_RPS;
  nv->rate_limit_rps = r;
  nv->burst = r < 1 ? 1 : r; /* one second of calls, as the AWS SDKs' bucket holds */
  if (nv->tokens > nv->burst)
    nv->tokens = nv->burst;
  nrd_metrics_novita_rate(r);
}

void nrd_nv_rate_init(struct nrd_novita *nv, const struct nrd_novita_options *opt)
{
  nv->adaptive = opt->rate_adaptive && nv->rate_limit_rps > 0;
  nv->rate_max_rps = opt->rate_limit_max_rps > 0 ? opt->rate_limit_max_rps : 50;
  if (nv->rate_max_rps < nv->rate_limit_rps)
    nv->rate_max_rps = nv->rate_limit_rps;
  nv->rate_raised_at_ms = nrd_mono_ms();
  if (nv->adaptive) {
    set_rate(nv, nv->rate_limit_rps);
    nv->tokens = nv->burst;
  }
  nrd_metrics_novita_rate(nv->rate_limit_rps);
}

void nrd_nv_rate_sent(struct nrd_novita *nv, int64_t now)
{
  if (!nv->adaptive)
    return;
  nv->sends[nv->n_sends % NV_RATE_WINDOW] = now;
  nv->n_sends++;
}

/* Tokens taken over the last MEASURE_MS, a second. */
static double measured(const struct nrd_novita *nv, int64_t now)
{
  unsigned n = nv->n_sends < NV_RATE_WINDOW ? nv->n_sends : NV_RATE_WINDOW;
  unsigned hits = 0;
  for (unsigned i = 0; i < n; i++) {
    int64_t t = nv->sends[(nv->n_sends - 1 - i) % NV_RATE_WINDOW];
    if (t > now - MEASURE_MS && t <= now)
      hits++;
  }
  return (double)hits * 1000.0 / MEASURE_MS;
}

static void raise_rate(struct nrd_novita *nv, int64_t now)
{
  double dt = (double)(now - nv->rate_raised_at_ms);
  double r = nv->rate_limit_rps, c = nv->rate_ceiling;
  if (dt <= 0)
    return;
  if (dt > 1000)
    dt = 1000; /* a quiet spell is no evidence */
  nv->rate_raised_at_ms = now;
  if (c > 0 && r < c) {
    /* The approach never reaches c by itself: within 1% it is there, and
     * the probe above it can begin. */
    double next = r + (c - r) * (1 - exp(-dt / APPROACH_MS));
    set_rate(nv, c - next < 0.01 * c ? c : next);
    return;
  }
  /* Above what is known to pass: only while the bucket holds calls back
   * (a call waited for its token within the last second). */
  if (nv->held_back_at_ms == 0 || now - nv->held_back_at_ms > HELD_BACK_MS)
    return;
  if (c > 0)
    set_rate(nv, r + PROBE * c * dt / 1000.0);
  else
    set_rate(nv, r * exp2(dt / DOUBLING_MS));
}

void nrd_nv_rate_feedback(struct nrd_novita *nv, int64_t sent_ms, bool throttled)
{
  if (!nv->adaptive)
    return;
  pthread_mutex_lock(&nv->bucket_mu);
  int64_t now = nrd_mono_ms();
  if (!throttled) {
    raise_rate(nv, now);
  } else if (sent_ms >= nv->rate_cut_at_ms) {
    double m = measured(nv, now);
    double base = m > 0 && m < nv->rate_limit_rps ? m : nv->rate_limit_rps;
    nv->rate_ceiling = base;
    nv->rate_cut_at_ms = now;
    nv->rate_raised_at_ms = now;
    set_rate(nv, base * CUT);
  }
  pthread_mutex_unlock(&nv->bucket_mu);
}

double nrd_novita_rate(struct nrd_novita *nv)
{
  pthread_mutex_lock(&nv->bucket_mu);
  double r = nv->rate_limit_rps;
  pthread_mutex_unlock(&nv->bucket_mu);
  return r;
}

double nrd_novita_burst(struct nrd_novita *nv)
{
  pthread_mutex_lock(&nv->bucket_mu);
  double b = nv->burst;
  pthread_mutex_unlock(&nv->bucket_mu);
  return b;
}
