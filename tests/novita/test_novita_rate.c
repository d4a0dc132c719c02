/* The adaptive token bucket (issue 15) against the simulator's server-side
 * limit: a 429 cuts the rate, success raises it while the bucket is what
 * holds calls back, never above the top; the fixed bucket stays put. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "nrd/novita.h"
#include "nrd/sim.h"
#include "nrd/util.h"

struct world {
  struct nrd_sim *sim;
  struct nrd_novita *nv;
  struct nrd_novita_conn *conn;
};

static void start(struct world *w, double rps, bool adaptive, double max_rps)
{
  char err[256], url[128];
  struct nrd_sim_options so = { .api_key = "k" };
  w->sim = nrd_sim_start(&so, err, sizeof(err));
  assert_non_null(w->sim);
  assert_int_equal(nrd_sim_load(w->sim, "{\"instances\":[],\"jobs\":[],\"products\":[]}"), 0);
  nrd_sim_base_url(w->sim, url);
  struct nrd_novita_options o = { .base_url = url,
                                  .api_key = "k",
                                  .page_size = 10,
                                  .request_timeout_ms = 5000,
                                  .max_retry_attempts = 0,
                                  .rate_limit_rps = rps,
                                  .rate_adaptive = adaptive,
                                  .rate_limit_max_rps = max_rps,
                                  .backoff_base_ms = 10,
                                  .backoff_cap_ms = 50 };
  w->nv = nrd_novita_create(&o);
  w->conn = nrd_novita_conn_create(w->nv);
}

static void stop(struct world *w)
{
  nrd_novita_conn_destroy(w->conn);
  nrd_novita_destroy(w->nv);
  nrd_sim_stop(w->sim);
}

/* One call (a products listing), its outcome. */
static enum nrd_nv_rc one_call(struct world *w)
{
  struct nrd_product *p = NULL;
  size_t n = 0;
  struct nrd_nv_error err;
  enum nrd_nv_rc rc = nrd_nv_list_products(w->conn, "x", &p, &n, &err);
  nrd_products_free(p, n);
  return rc;
}

/* A server limit of 3 a second under a bucket at 20: the first 429 cuts the
 * rate below 20; the fixed bucket keeps 20. */
static void test_cut_on_429(void **state)
{
  (void)state;
  for (int adaptive = 0; adaptive < 2; adaptive++) {
    struct world w;
    start(&w, 20, adaptive, 50);
    nrd_sim_set_rate_limit(w.sim, 3);
    assert_true(nrd_novita_rate(w.nv) == 20);
    int throttled = 0;
    for (int i = 0; i < 10 && !throttled; i++)
      throttled = one_call(&w) == NRD_NV_TRANSIENT;
    assert_true(throttled);
    if (adaptive)
      assert_true(nrd_novita_rate(w.nv) < 20 * 0.75);
    else
      assert_true(nrd_novita_rate(w.nv) == 20);
    stop(&w);
  }
}

/* The adaptive bucket holds one second of calls, as the AWS SDKs' does, and
 * follows its rate when a 429 cuts it; the fixed bucket holds at most 5. */
static void test_burst_is_one_second(void **state)
{
  (void)state;
  for (int adaptive = 0; adaptive < 2; adaptive++) {
    struct world w;
    start(&w, 20, adaptive, 50);
    assert_true(nrd_novita_burst(w.nv) == (adaptive ? 20 : 5));
    nrd_sim_set_rate_limit(w.sim, 3);
    int throttled = 0;
    for (int i = 0; i < 10 && !throttled; i++)
      throttled = one_call(&w) == NRD_NV_TRANSIENT;
    assert_true(throttled);
    double r = nrd_novita_rate(w.nv);
    assert_true(nrd_novita_burst(w.nv) == (adaptive ? (r < 1 ? 1 : r) : 5));
    stop(&w);
  }
}

/* No server limit, a bucket at 2 that holds the calls back: the rate rises
 * while calls succeed, up to the top (4), never above. */
static void test_rise_to_top(void **state)
{
  (void)state;
  struct world w;
  start(&w, 2, true, 4);
  int64_t end = nrd_mono_ms() + 3000;
  while (nrd_mono_ms() < end)
    assert_int_equal(one_call(&w), NRD_NV_OK);
  assert_true(nrd_novita_rate(w.nv) > 2);
  assert_true(nrd_novita_rate(w.nv) <= 4);
  stop(&w);
}

/* Calls that never wait for a token are no sign the bucket holds anything
 * back: ten a second under a bucket at 20 leave it at 20. */
static void test_no_rise_when_not_held_back(void **state)
{
  (void)state;
  struct world w;
  start(&w, 20, true, 50);
  for (int i = 0; i < 12; i++) {
    assert_int_equal(one_call(&w), NRD_NV_OK);
    nrd_sleep_ms(100);
  }
  assert_true(nrd_novita_rate(w.nv) == 20);
  stop(&w);
}

/* Error answers are no sign there is room: a bucket at 2 that holds calls
 * back stays at 2 while every answer is a 500. */
static void test_errors_do_not_raise(void **state)
{
  (void)state;
  struct world w;
  start(&w, 2, true, 4);
  struct nrd_sim_fault f = { .kind = NRD_SIM_STATUS, .match = "products", .status = 500 };
  nrd_sim_add_fault(w.sim, &f);
  int64_t end = nrd_mono_ms() + 2500;
  while (nrd_mono_ms() < end)
    assert_int_not_equal(one_call(&w), NRD_NV_OK);
  assert_true(nrd_novita_rate(w.nv) == 2);
  stop(&w);
}

/* After a 429 the rate comes back to the ceiling measured then, and, while
 * calls keep succeeding and the bucket holds them back, goes above it. */
static void test_back_past_the_ceiling(void **state)
{
  (void)state;
  struct world w;
  start(&w, 20, true, 50);
  nrd_sim_set_rate_limit(w.sim, 3);
  int throttled = 0;
  for (int i = 0; i < 10 && !throttled; i++)
    throttled = one_call(&w) == NRD_NV_TRANSIENT;
  assert_true(throttled);
  double ceiling = nrd_novita_rate(w.nv) / 0.7; /* the cut is 30% of it */
  nrd_sim_set_rate_limit(w.sim, 0);
  int64_t end = nrd_mono_ms() + 6000;
  while (nrd_mono_ms() < end)
    assert_int_equal(one_call(&w), NRD_NV_OK);
  assert_true(nrd_novita_rate(w.nv) > ceiling * 1.01);
  stop(&w);
}

int main(void)
{
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cut_on_429),          cmocka_unit_test(test_burst_is_one_second),
    cmocka_unit_test(test_rise_to_top),         cmocka_unit_test(test_no_rise_when_not_held_back),
    cmocka_unit_test(test_errors_do_not_raise), cmocka_unit_test(test_back_past_the_ceiling),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
