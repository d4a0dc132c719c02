/* Novita's rate, found instead of guessed (issue 15): against a simulator
 * that answers 429 with Retry-After above R requests a second, the adaptive
 * token bucket starts at NOVITA_RATE_LIMIT_RPS's default, comes down to R,
 * and the run recovers every row with few 429s. Wall times are the bench's
 * (tests/bench), not a test's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/metrics.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define FAILED 40

/* The current rate /metrics shows. */
static double metric_rate(void)
{
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_metrics_render(&b);
  const char *p = strstr(b.data, "\nnrd_novita_rate_limit_rps ");
  double v = p ? strtod(p + strlen("\nnrd_novita_rate_limit_rps "), NULL) : -1;
  nrd_buf_cleanup(&b);
  return v;
}

/* R = 5 with the defaults (adaptive, from 20): every row recovered exactly
 * once, 429s under 10% of the calls, and the rate shown has come down. */
static void test_server_limit_5(void **state)
{
  (void)state;
  struct tu_stack s;
  struct nrd_config defaults;
  nrd_config_defaults(&defaults);
  tu_stack_init(&s, NULL);
  s.cfg.novita_rate_limit_rps = defaults.novita_rate_limit_rps;
  s.cfg.novita_rate_limit_max_rps = defaults.novita_rate_limit_max_rps;
  s.cfg.novita_rate_limit_adaptive = defaults.novita_rate_limit_adaptive;
  nrd_config_cleanup(&defaults);
  cJSON *sc = tu_failed_fleet(FAILED, 30);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  nrd_sim_set_rate_limit(s.sim, 5);
  nrd_metrics_reset();
  tu_stack_start(&s);
  assert_true(metric_rate() == 20);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  cJSON_Delete(rep);
  char why[256] = "";
  /* A row a 429 left between delete and create is finished by the next run. */
  for (int i = 0; i < 3 && !tu_one_replacement_each(s.sim, FAILED, 30 + FAILED, why, sizeof(why));
       i++) {
    rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
    cJSON_Delete(rep);
  }
  if (!tu_one_replacement_each(s.sim, FAILED, 30 + FAILED, why, sizeof(why)))
    fail_msg("%s", why);
  struct nrd_sim_request *r = NULL;
  size_t calls = nrd_sim_requests(s.sim, &r);
  nrd_sim_requests_free(r, calls);
  unsigned long refused = nrd_sim_rate_refused(s.sim);
  print_message("calls %zu, 429s %lu, rate now %.2f\n", calls, refused, metric_rate());
  assert_true(refused > 0); /* the limit was found, not guessed */
  assert_true((double)refused < 0.10 * (double)calls);
  assert_true(metric_rate() < 20);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_server_limit_5),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
