/* Paging without `total` (issue 14): Novita's documented list example has
 * no `total`, and its pages may count from 0 or from 1. A fleet of 2,500
 * instances (and its 600 jobs) is read in every combination, each instance and
 * job exactly once. Real HTTP to the simulator on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/novita.h"
#include "nrd/sim.h"
#include "nrd/util.h"

#define FLEET 2500
#define FAILED 300

static int seen[FLEET];

static int count_items(void *ud, struct nrd_instance *items, size_t n)
{
  (void)ud;
  for (size_t i = 0; i < n; i++) {
    long k = items[i].id ? strtol(items[i].id + 2, NULL, 10) : -1;
    assert_true(k >= 0 && k < FLEET);
    seen[k]++;
  }
  return 0;
}

static void read_fleet(int page_base, bool no_total)
{
  char err[256] = "", base[128];
  struct nrd_sim_options so = { .api_key = "k",
                                .page_base = page_base,
                                .page_base_set = true,
                                .no_total = no_total,
                                .page_cap = 100 };
  struct nrd_sim *sim = nrd_sim_start(&so, err, sizeof(err));
  assert_non_null(sim);
  int64_t now = nrd_now_ms() / 1000;
  cJSON *fleet = nrd_sim_make_fleet(FLEET, FAILED, now);
  size_t n_jobs = (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(fleet, "jobs"));
  assert_true(n_jobs > 2 * 100); /* several pages of jobs */
  char *text = nrd_json_print(fleet);
  assert_int_equal(nrd_sim_load(sim, text), 0);
  free(text);
  cJSON_Delete(fleet);
  nrd_sim_base_url(sim, base);
  struct nrd_novita_options o = { .base_url = base,
                                  .api_key = "k",
                                  .page_size = 100,
                                  .request_timeout_ms = 10000,
                                  .max_retry_attempts = 1 };
  struct nrd_novita *nv = nrd_novita_create(&o);
  struct nrd_novita_conn *c = nrd_novita_conn_create(nv);

  memset(seen, 0, sizeof(seen));
  struct nrd_nv_instance_sink sink = { .items = count_items };
  struct nrd_nv_error e = { 0 };
  size_t total_seen = 0;
  assert_int_equal(nrd_nv_list_instances(c, NULL, &sink, &total_seen, &e), NRD_NV_OK);
  assert_int_equal(total_seen, FLEET);
  for (int i = 0; i < FLEET; i++)
    assert_int_equal(seen[i], 1);

  struct nrd_job *jobs = NULL;
  size_t n = 0;
  assert_int_equal(nrd_nv_list_jobs(c, "instanceMigrate", 0, now + 10, &jobs, &n, &e), NRD_NV_OK);
  size_t want = n;
  nrd_jobs_free(jobs, n);
  assert_int_equal(nrd_nv_list_jobs(c, NULL, 0, now + 10, &jobs, &n, &e), NRD_NV_OK);
  assert_int_equal(n, n_jobs);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      assert_string_not_equal(jobs[i].id, jobs[j].id);
  assert_true(want > 0 && want < n);
  nrd_jobs_free(jobs, n);

  nrd_novita_conn_destroy(c);
  nrd_novita_destroy(nv);
  nrd_sim_stop(sim);
}

static void test_one_based_with_total(void **state)
{
  (void)state;
  read_fleet(1, false);
}
static void test_one_based_without_total(void **state)
{
  (void)state;
  read_fleet(1, true);
}
static void test_zero_based_with_total(void **state)
{
  (void)state;
  read_fleet(0, false);
}
static void test_zero_based_without_total(void **state)
{
  (void)state;
  read_fleet(0, true);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_one_based_with_total),
    cmocka_unit_test(test_one_based_without_total),
    cmocka_unit_test(test_zero_based_with_total),
    cmocka_unit_test(test_zero_based_without_total),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
