/* The service on PostgreSQL (DATABASE_URL), end to end, against the
 * PostgreSQL server of tests/support/pg.sh: one service recovers a failed
 * fleet once; three replicas on the same database, each posted to at the
 * same time, still give each failed job exactly one replacement (counted at
 * the simulator, which all three talk to); /ready answers 503 while the
 * server is away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "pg_test.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define FAILED 40
#define REPLICAS 3
#define POSTS_EACH 3

static const char *immediate = "{\"immediate\":true}";

/* A stack whose store is a fresh PostgreSQL database (url, 512 bytes), or
 * the database at url when it is already set. */
static void init_on_pg(struct tu_stack *s, char *url)
{
  char db[32];
  if (!*url)
    assert_int_equal(pgt_fresh_db(url, 512, db), 0);
  tu_stack_init(s, NULL);
  s->cfg.database_url = nrd_xstrdup(url);
  s->cfg.migration_max_concurrent = 4; /* connections: pg.sh's server takes 60 */
}

static void assert_one_replacement_each(struct nrd_sim *sim, int failed)
{
  char why[128] = "";
  if (!tu_one_replacement_each(sim, failed, -1, why, sizeof(why)))
    fail_msg("%s", why);
}

/* One service on PostgreSQL: a check-failed recovers every row once, a
 * second finds nothing to do, and no SQLite file was made. */
static void test_one_service_recovers_once(void **state)
{
  (void)state;
  char url[512] = "", file[600];
  struct tu_stack s;
  init_on_pg(&s, url);
  cJSON *sc = tu_failed_fleet(FAILED, 5);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "failedJobsFound"), FAILED);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), FAILED);
  assert_int_equal(tu_result_int(rep, "errors"), 0);
  cJSON_Delete(rep);
  rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 0);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), FAILED);
  assert_one_replacement_each(s.sim, FAILED);

  cJSON *ready = tu_stack_request(&s, "GET", "/ready", NULL, &status);
  assert_int_equal(status, 200);
  cJSON_Delete(ready);
  snprintf(file, sizeof file, "%s", s.cfg.database_path);
  assert_int_not_equal(access(file, F_OK), 0); /* the rows are in PostgreSQL */
  tu_stack_cleanup(&s);
}

struct poster {
  struct tu_stack *s;
  long status;
  int recreated;
};

static void *post_one(void *arg)
{
  struct poster *p = arg;
  cJSON *rep = tu_stack_check_failed(p->s, immediate, &p->status);
  p->recreated = (int)tu_result_int(rep, "instancesRecreated");
  cJSON_Delete(rep);
  return NULL;
}

/* Three replicas on one database and one Novita: concurrent POSTs to all
 * three. Each failed job gets exactly one replacement, and every row ends
 * done (no replica left one open). */
static void test_three_replicas_one_replacement_each(void **state)
{
  (void)state;
  char url[512] = "", base[128];
  struct tu_stack s[REPLICAS];
  for (int i = 0; i < REPLICAS; i++)
    init_on_pg(&s[i], url);
  cJSON *sc = tu_failed_fleet(FAILED, 5);
  tu_stack_load(&s[0], sc); /* Novita: replica 0's simulator, for all */
  cJSON_Delete(sc);
  nrd_sim_set_latency(s[0].sim, 20); /* runs long enough to overlap */
  nrd_sim_base_url(s[0].sim, base);
  for (int i = 0; i < REPLICAS; i++) {
    free(s[i].cfg.novita_api_base_url);
    s[i].cfg.novita_api_base_url = nrd_xstrdup(base);
    tu_stack_start(&s[i]);
  }

  struct poster p[REPLICAS * POSTS_EACH];
  pthread_t th[REPLICAS * POSTS_EACH];
  for (int i = 0; i < REPLICAS * POSTS_EACH; i++) {
    p[i] = (struct poster){ .s = &s[i % REPLICAS] };
    assert_int_equal(pthread_create(&th[i], NULL, post_one, &p[i]), 0);
  }
  int recreated = 0;
  for (int i = 0; i < REPLICAS * POSTS_EACH; i++) {
    pthread_join(th[i], NULL);
    assert_true(p[i].status == 200 || p[i].status == 502);
    recreated += p[i].recreated > 0 ? p[i].recreated : 0;
  }
  /* Callers of one replica join its run: each run's count is reported to
   * all its callers, so the sum over callers can exceed FAILED; what counts
   * is Novita's side. */
  assert_true(recreated >= FAILED);
  assert_int_equal(nrd_sim_count(s[0].sim, "POST", "/gpu/instance/create"), FAILED);
  assert_one_replacement_each(s[0].sim, FAILED);

  /* Nothing open is left, on any replica; another round creates nothing. */
  for (int i = 0; i < REPLICAS; i++) {
    long status = 0;
    cJSON *rep = tu_stack_check_failed(&s[i], immediate, &status);
    assert_int_equal(status, 200);
    assert_int_equal(tu_result_int(rep, "instancesRecreated"), 0);
    cJSON_Delete(rep);
  }
  assert_int_equal(nrd_sim_count(s[0].sim, "POST", "/gpu/instance/create"), FAILED);
  for (int i = REPLICAS - 1; i >= 0; i--)
    tu_stack_cleanup(&s[i]);
}

static long ready_status(struct tu_stack *s)
{
  long status = 0;
  cJSON_Delete(tu_stack_request(s, "GET", "/ready", NULL, &status));
  return status;
}

/* /ready answers 503 while PostgreSQL is away (stopped), and 200 again once
 * it is back, without a restart of the service. */
static void test_ready_while_pg_away(void **state)
{
  (void)state;
  char url[512] = "";
  struct tu_stack s;
  init_on_pg(&s, url);
  tu_stack_start(&s);
  assert_int_equal(ready_status(&s), 200);

  assert_int_equal(system(getenv("NRD_TEST_PG_STOP")), 0);
  assert_int_equal(ready_status(&s), 503);
  assert_int_equal(ready_status(&s), 503); /* still, while it is away */

  assert_int_equal(system(getenv("NRD_TEST_PG_START")), 0);
  long status = 0;
  for (int i = 0; i < 100 && status != 200; i++) {
    status = ready_status(&s);
    if (status != 200)
      nrd_sleep_ms(100);
  }
  assert_int_equal(status, 200);
  tu_stack_cleanup(&s);
}

/* While PostgreSQL is away a check-failed sends Novita no delete and no
 * create (every step is written before it is done); once it is back the
 * next run recovers every row once. */
static void test_no_change_while_pg_away(void **state)
{
  (void)state;
  char url[512] = "";
  struct tu_stack s;
  init_on_pg(&s, url);
  cJSON *sc = tu_failed_fleet(5, 0);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);

  assert_int_equal(system(getenv("NRD_TEST_PG_STOP")), 0);
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, immediate, &status);
  assert_true(status >= 500);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 0);

  assert_int_equal(system(getenv("NRD_TEST_PG_START")), 0);
  for (int i = 0; i < 100 && ready_status(&s) != 200; i++)
    nrd_sleep_ms(100);
  rep = tu_stack_check_failed(&s, immediate, &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 5);
  cJSON_Delete(rep);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), 5);
  assert_one_replacement_each(s.sim, 5);
  tu_stack_cleanup(&s);
}

int main(void)
{
  pgt_require_server();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_one_service_recovers_once),
    cmocka_unit_test(test_three_replicas_one_replacement_each),
    cmocka_unit_test(test_ready_while_pg_away),
    cmocka_unit_test(test_no_change_while_pg_away),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
