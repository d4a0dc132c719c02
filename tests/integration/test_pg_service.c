/* The service on PostgreSQL (DATABASE_URL), end to end, against the
 * PostgreSQL server of tests/support/pg.sh: one service recovers a failed
 * fleet once; three replicas on the same database, each posted to at the
 * same time, still give each failed job exactly one replacement (counted at
 * the simulator, which all three talk to); POSTs to followers while one
 * replica runs join its run (the run lock) unless it is a dry run or left
 * rows; /ready answers 503 while the server is away, and a run then sends
 * Novita nothing. */
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
  const char *body; /* NULL: immediate */
  long status;
  int recreated;
  char run_id[64];        /* the report's runId, or the 202's */
  char joined_run_id[64]; /* the report's joinedRunId, if any */
};

static void copy_str(char out[64], const cJSON *o, const char *key)
{
  const char *v = nrd_json_str(o, key);
  snprintf(out, 64, "%s", v ? v : "");
}

static void *post_one(void *arg)
{
  struct poster *p = arg;
  cJSON *rep = tu_stack_check_failed(p->s, p->body ? p->body : immediate, &p->status);
  const cJSON *result = cJSON_GetObjectItem(rep, "result");
  p->recreated = (int)tu_result_int(rep, "instancesRecreated");
  copy_str(p->run_id, result ? result : rep, "runId");
  copy_str(p->joined_run_id, result, "joinedRunId");
  cJSON_Delete(rep);
  return NULL;
}

/* n replicas on one fresh database, all talking to replica 0's simulator
 * (Novita for all), loaded with failed failed jobs (and 5 running
 * instances), each call taking latency_ms. */
static void start_replicas(struct tu_stack *s, int n, int failed, unsigned latency_ms)
{
  char url[512] = "", base[128];
  for (int i = 0; i < n; i++)
    init_on_pg(&s[i], url);
  cJSON *sc = tu_failed_fleet(failed, 5);
  tu_stack_load(&s[0], sc);
  cJSON_Delete(sc);
  nrd_sim_set_latency(s[0].sim, latency_ms);
  nrd_sim_base_url(s[0].sim, base);
  for (int i = 0; i < n; i++) {
    free(s[i].cfg.novita_api_base_url);
    s[i].cfg.novita_api_base_url = nrd_xstrdup(base);
    tu_stack_start(&s[i]);
  }
}

/* Three replicas on one database and one Novita: concurrent POSTs to all
 * three. Each failed job gets exactly one replacement, and every row ends
 * done (no replica left one open). */
static void test_three_replicas_one_replacement_each(void **state)
{
  (void)state;
  struct tu_stack s[REPLICAS];
  start_replicas(s, REPLICAS, FAILED, 20); /* runs long enough to overlap */

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

/* The sync's instance listings (GET /gpu/instances pages, not a look-up by
 * name) Novita saw at from_ms or later. */
static int sync_listings(struct nrd_sim *sim, int64_t from_ms)
{
  struct nrd_sim_request *reqs = NULL;
  size_t n = nrd_sim_requests(sim, &reqs);
  int count = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(reqs[i].path);
    if (strcmp(reqs[i].method, "GET") == 0 && len >= 14 &&
        strcmp(reqs[i].path + len - 14, "/gpu/instances") == 0 &&
        !(reqs[i].query && strstr(reqs[i].query, "name=")) && reqs[i].at_ms >= from_ms)
      count++;
  }
  nrd_sim_requests_free(reqs, n);
  return count;
}

/* Waits (up to 10 s) until Novita saw the first listing of a sync. */
static void wait_for_sync(struct nrd_sim *sim)
{
  for (int i = 0; i < 1000 && sync_listings(sim, 0) == 0; i++)
    nrd_sleep_ms(10);
  assert_int_not_equal(sync_listings(sim, 0), 0);
}

/* runs/{id} on s once it is no longer running (up to 20 s); the parsed
 * record (caller deletes). */
static cJSON *finished_run(struct tu_stack *s, const char *run_id)
{
  char path[160];
  snprintf(path, sizeof path, "/api/instances/migration/runs/%s", run_id);
  cJSON *rec = NULL;
  for (int i = 0; i < 200; i++) {
    long status = 0;
    cJSON_Delete(rec);
    rec = tu_stack_request(s, "GET", path, NULL, &status);
    assert_int_equal(status, 200);
    const char *st = nrd_json_str(rec, "state");
    if (st && strcmp(st, "running") != 0)
      break;
    nrd_sleep_ms(100);
  }
  return rec;
}

#define JOIN_FAILED 20
#define JOIN_POSTS 4

/* The run lock: replica 0 runs (slow); POSTs that reach replicas 1 and 2
 * meanwhile join its run rather than run their own. Their reports are
 * replica 0's (its runId), Novita saw one sync's listings (as many as one
 * run alone makes, measured after), each failed job got one replacement,
 * and a 202's runId on a follower ends done, naming the run it joined. */
static void test_posts_to_followers_join_the_run(void **state)
{
  (void)state;
  struct tu_stack s[REPLICAS];
  start_replicas(s, REPLICAS, JOIN_FAILED, 50);
  struct poster p[JOIN_POSTS] = {
    { .s = &s[0] }, { .s = &s[1] }, { .s = &s[2], .body = "{}" }, { .s = &s[2] }
  };
  pthread_t th[JOIN_POSTS];
  assert_int_equal(pthread_create(&th[0], NULL, post_one, &p[0]), 0);
  wait_for_sync(s[0].sim); /* replica 0's run holds the lock: it syncs */
  for (int i = 1; i < JOIN_POSTS; i++) {
    assert_int_equal(pthread_create(&th[i], NULL, post_one, &p[i]), 0);
    if (p[i].body)
      pthread_join(th[i], NULL); /* the 202, before the next POST joins it */
  }
  char path[160], waiting_state[16] = "";
  snprintf(path, sizeof path, "/api/instances/migration/runs/%s", p[2].run_id);
  long status = 0;
  cJSON *waiting = tu_stack_request(&s[2], "GET", path, NULL, &status);
  snprintf(waiting_state, sizeof waiting_state, "%s",
           status == 200 && nrd_json_str(waiting, "state") ? nrd_json_str(waiting, "state") : "");
  cJSON_Delete(waiting);
  for (int i = 0; i < JOIN_POSTS; i++)
    if (!p[i].body)
      pthread_join(th[i], NULL);

  assert_int_equal(p[0].status, 200);
  assert_int_equal(p[0].recreated, JOIN_FAILED);
  assert_int_equal(p[2].status, 202);
  assert_string_equal(waiting_state, "running"); /* its replica, while it waited */
  for (int i = 1; i < JOIN_POSTS; i++) {
    if (p[i].body)
      continue;
    assert_int_equal(p[i].status, 200);
    assert_string_equal(p[i].run_id, p[0].run_id); /* replica 0's report */
    assert_int_equal(p[i].recreated, JOIN_FAILED);
  }
  int listings = sync_listings(s[0].sim, 0);
  assert_int_equal(nrd_sim_count(s[0].sim, "POST", "/gpu/instance/create"), JOIN_FAILED);
  assert_one_replacement_each(s[0].sim, JOIN_FAILED);

  /* The 202's run, read on another replica: done, joined replica 0's. */
  cJSON *rec = finished_run(&s[1], p[2].run_id);
  assert_string_equal(nrd_json_str(rec, "state"), "done");
  const cJSON *res = cJSON_GetObjectItem(rec, "result");
  assert_string_equal(nrd_json_str(res, "runId"), p[2].run_id);
  assert_string_equal(nrd_json_str(res, "joinedRunId"), p[0].run_id);
  cJSON_Delete(rec);

  /* One run alone, now: as many listings as the three POSTs made. */
  nrd_sim_clear_requests(s[0].sim);
  struct poster alone = { .s = &s[1] };
  post_one(&alone);
  assert_int_equal(alone.status, 200);
  assert_int_equal(alone.recreated, 0);
  assert_string_equal(alone.joined_run_id, "");
  assert_true(sync_listings(s[0].sim, 0) > 0);
  assert_int_equal(listings, sync_listings(s[0].sim, 0));
  for (int i = REPLICAS - 1; i >= 0; i--)
    tu_stack_cleanup(&s[i]);
}

/* A run the holder ran as a dry run is not joined by one that is not: the
 * follower waits for the lock (its sync's listings all come after the
 * holder's run ended, as many as the holder's), then runs itself and
 * recovers every failed job once. */
static void test_follower_runs_itself_after_a_dry_run(void **state)
{
  (void)state;
  struct tu_stack s[2];
  start_replicas(s, 2, JOIN_FAILED, 50);
  struct poster p[2] = { { .s = &s[0], .body = "{\"immediate\":true,\"dryRun\":true}" },
                         { .s = &s[1] } };
  pthread_t th[2];
  assert_int_equal(pthread_create(&th[0], NULL, post_one, &p[0]), 0);
  wait_for_sync(s[0].sim);
  assert_int_equal(pthread_create(&th[1], NULL, post_one, &p[1]), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  assert_int_equal(p[0].status, 200);
  assert_int_equal(p[1].status, 200);
  assert_string_not_equal(p[1].run_id, p[0].run_id);
  assert_string_equal(p[1].joined_run_id, "");
  assert_int_equal(p[1].recreated, JOIN_FAILED);
  assert_int_equal(nrd_sim_count(s[0].sim, "POST", "/gpu/instance/create"), JOIN_FAILED);
  assert_one_replacement_each(s[0].sim, JOIN_FAILED);

  struct nrd_run_record held;
  assert_int_equal(nrd_runner_run_record(s[0].runner, p[0].run_id, &held), NRD_OK);
  assert_string_equal(held.state, "done");
  assert_true(held.dry_run);
  int before = sync_listings(s[0].sim, 0) - sync_listings(s[0].sim, held.finished_ms);
  assert_true(before > 0);
  assert_int_equal(sync_listings(s[0].sim, held.finished_ms), before);
  nrd_run_record_cleanup(&held);
  for (int i = 1; i >= 0; i--)
    tu_stack_cleanup(&s[i]);
}

/* The holder stops mid-run (its rows parked for the next run): a follower
 * that waited for it runs itself rather than join a run that left rows,
 * and every failed job still gets exactly one replacement. */
static void test_follower_runs_itself_after_the_holder_stops(void **state)
{
  (void)state;
  struct tu_stack s[2];
  start_replicas(s, 2, JOIN_FAILED, 50);
  struct poster p[2] = { { .s = &s[0] }, { .s = &s[1] } };
  pthread_t th[2];
  assert_int_equal(pthread_create(&th[0], NULL, post_one, &p[0]), 0);
  wait_for_sync(s[0].sim);
  assert_int_equal(pthread_create(&th[1], NULL, post_one, &p[1]), 0);
  for (int i = 0; i < 2000 && nrd_sim_count(s[0].sim, "POST", "/gpu/instance/create") == 0; i++)
    nrd_sleep_ms(5);
  tu_stack_stop_service(&s[0]); /* its first create sent: rows are under way */
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  assert_int_equal(p[1].status, 200);
  assert_string_not_equal(p[1].run_id, p[0].run_id);
  assert_string_equal(p[1].joined_run_id, "");
  assert_true(p[1].recreated > 0);
  assert_int_equal(nrd_sim_count(s[0].sim, "POST", "/gpu/instance/create"), JOIN_FAILED);
  assert_one_replacement_each(s[0].sim, JOIN_FAILED);
  for (int i = 1; i >= 0; i--)
    tu_stack_cleanup(&s[i]);
}

/* A follower stopped while it waits for the lock stops at once (the
 * holder's run is still under way), its run's record ends failed, and it
 * sent Novita nothing: the holder recovers every failed job once. */
static void test_follower_stopped_while_waiting(void **state)
{
  (void)state;
  struct tu_stack s[2];
  start_replicas(s, 2, JOIN_FAILED, 50);
  struct poster p[2] = { { .s = &s[0] }, { .s = &s[1], .body = "{}" } };
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, post_one, &p[0]), 0);
  wait_for_sync(s[0].sim);
  post_one(&p[1]);
  assert_int_equal(p[1].status, 202);
  nrd_sleep_ms(300); /* it has tried the lock, and waits */
  tu_stack_stop_service(&s[1]);
  assert_true(nrd_runner_busy(s[0].runner)); /* the stop did not wait for the holder */
  pthread_join(th, NULL);
  assert_int_equal(p[0].status, 200);
  assert_int_equal(p[0].recreated, JOIN_FAILED);
  struct nrd_run_record rec;
  assert_int_equal(nrd_runner_run_record(s[0].runner, p[1].run_id, &rec), NRD_OK);
  assert_string_equal(rec.state, "failed");
  nrd_run_record_cleanup(&rec);
  assert_int_equal(nrd_sim_count(s[0].sim, "POST", "/gpu/instance/create"), JOIN_FAILED);
  assert_one_replacement_each(s[0].sim, JOIN_FAILED);
  /* As many listings as one run alone makes: none were the follower's. */
  int listings = sync_listings(s[0].sim, 0);
  nrd_sim_clear_requests(s[0].sim);
  struct poster alone = { .s = &s[0] };
  post_one(&alone);
  assert_int_equal(alone.status, 200);
  assert_true(sync_listings(s[0].sim, 0) > 0);
  assert_int_equal(listings, sync_listings(s[0].sim, 0));
  for (int i = 1; i >= 0; i--)
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
  assert_int_equal(status, 503);
  assert_string_equal(nrd_json_str(cJSON_GetObjectItem(rep, "error"), "code"), "STORE_UNAVAILABLE");
  cJSON_Delete(rep);
  /* The run lock could not be asked for: not even a listing was sent. */
  assert_int_equal(sync_listings(s.sim, 0), 0);
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
    cmocka_unit_test(test_posts_to_followers_join_the_run),
    cmocka_unit_test(test_follower_runs_itself_after_a_dry_run),
    cmocka_unit_test(test_follower_runs_itself_after_the_holder_stops),
    cmocka_unit_test(test_follower_stopped_while_waiting),
    cmocka_unit_test(test_ready_while_pg_away),
    cmocka_unit_test(test_no_change_while_pg_away),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
