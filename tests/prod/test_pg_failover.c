/* Replicas as real processes (`novita-recoveryd serve`) on the PostgreSQL
 * server of tests/support/pg.sh, against the simulator in this process:
 * - the leader dies (kill -9): another replica leads within the lease
 *   period, and its scheduler and watch run; a POST to a follower works;
 * - kill -9 rounds across three replicas, each a random replica at a random
 *   moment during recoveries (NRD_PG_KILL_ROUNDS, 100 by default): each
 *   failed job ends with exactly one replacement, none lost;
 * - PostgreSQL restarts mid-run: the rows resume, nothing is duplicated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "pg_test.h"
#include "proc.h"
#include "scenario.h"
#include "testutil.h"

#define REPLICAS 3
#define LEASE_S 2
#define POOL 400 /* running instances whose migrations the rounds fail */
#define STATUS "/api/instances/migration/scheduler/status"

struct fleet {
  struct prod_world w;
  struct prod_proc p[REPLICAS];
  char env_url[600];
  unsigned spawned; /* for the log names */
};

/* The test's fleet: the teardown kills what a failed test left running. */
static struct fleet the_fleet;

static int kill_left(void **state)
{
  (void)state;
  for (int i = 0; i < REPLICAS; i++)
    prod_kill(&the_fleet.p[i]);
  return 0;
}

static void fleet_init(struct fleet *f, unsigned latency_ms, int failed, int running)
{
  char url[512], db[32];
  assert_int_equal(pgt_fresh_db(url, sizeof url, db), 0);
  snprintf(f->env_url, sizeof f->env_url, "DATABASE_URL=%s", url);
  const char *extra[] = { f->env_url,
                          "RECOVERY_LEASE_SECONDS=2",
                          "MIGRATION_INTERVAL_MINUTES=60",
                          "MIGRATION_MAX_CONCURRENT=2",
                          "REQUEST_TIMEOUT=5000",
                          NULL };
  prod_world_init(&f->w, latency_ms, failed, running, extra);
  for (int i = 0; f->w.env[i]; i++) /* the first of a name is the one read */
    if (strcmp(f->w.env[i], "WATCH_INTERVAL_SECONDS=0") == 0)
      f->w.env[i] = "WATCH_INTERVAL_SECONDS=1";
  f->spawned = 0;
}

static void fleet_start(struct fleet *f, int i)
{
  char name[48];
  snprintf(name, sizeof name, "serve-%d-%u.log", i, f->spawned++);
  prod_start_serve(&f->w, &f->p[i], name);
}

static void fleet_cleanup(struct fleet *f)
{
  for (int i = 0; i < REPLICAS; i++)
    prod_kill(&f->p[i]);
  prod_world_cleanup(&f->w);
}

/* method path on replica i, without failing when no answer came (a replica
 * being killed): the HTTP status, or 0. */
static long ask(const struct fleet *f, int i, const char *method, const char *path,
                const char *body, cJSON **out)
{
  char url[256];
  struct tu_resp r = { 0 };
  const char *const json_headers[] = { "Content-Type: application/json", NULL };
  if (out)
    *out = NULL;
  if (f->p[i].pid <= 0)
    return 0;
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", f->p[i].port, path);
  if (tu_http(method, url, body ? json_headers : NULL, body, &r) != 0)
    return 0;
  long status = r.status;
  if (out)
    *out = nrd_json_parse(r.body, r.body_len);
  tu_resp_cleanup(&r);
  return status;
}

/* Replica i's scheduler status: leader (1/0, -1 when no answer), and its
 * totalRuns and watch ticks. */
static int leads(const struct fleet *f, int i, long *runs, long *ticks)
{
  cJSON *st = NULL;
  if (ask(f, i, "GET", STATUS, NULL, &st) != 200 || !st) {
    cJSON_Delete(st);
    return -1;
  }
  const cJSON *lead = cJSON_GetObjectItemCaseSensitive(st, "leader");
  const cJSON *watch = cJSON_GetObjectItemCaseSensitive(st, "watch");
  int rc = cJSON_IsBool(lead) ? cJSON_IsTrue(lead) : -1;
  int64_t v = -1;
  if (runs)
    *runs = nrd_json_i64(st, "totalRuns", &v) ? (long)v : -1;
  if (ticks)
    *ticks = nrd_json_i64(watch, "ticks", &v) ? (long)v : -1;
  cJSON_Delete(st);
  return rc;
}

/* The one replica that says it leads, waiting up to ms; -1 when none did or
 * two did. */
static int the_leader(const struct fleet *f, int64_t ms)
{
  int64_t until = nrd_mono_ms() + ms;
  do {
    int leader = -1, n = 0;
    for (int i = 0; i < REPLICAS; i++)
      if (leads(f, i, NULL, NULL) == 1) {
        leader = i;
        n++;
      }
    if (n > 1)
      return -1;
    if (n == 1)
      return leader;
    nrd_sleep_ms(50);
  } while (nrd_mono_ms() < until);
  return -1;
}

/* Failed jobs 0..failed-1 (instances "trainer-NNN"): *dups replacements
 * beyond one, *lost none at all or the old instance left. */
static void count_outcome(struct nrd_sim *sim, int failed, int *dups, int *lost)
{
  cJSON *all = nrd_sim_instances(sim);
  *dups = *lost = 0;
  for (int i = 0; i < failed; i++) {
    char prefix[48], old[16];
    int found = 0;
    bool old_left = false;
    const cJSON *inst;
    snprintf(prefix, sizeof prefix, "trainer-%03d-recreated-", i);
    snprintf(old, sizeof old, "i-%03d", i);
    cJSON_ArrayForEach(inst, all) {
      const char *name = nrd_json_str(inst, "name"), *id = nrd_json_str(inst, "id");
      found += name && strncmp(name, prefix, strlen(prefix)) == 0;
      old_left |= id && strcmp(id, old) == 0;
    }
    *dups += found > 1 ? found - 1 : 0;
    *lost += found == 0 || old_left;
  }
  cJSON_Delete(all);
}

/* Runs check-failed on live replicas until every failed job has its
 * replacement (leases of killed processes expire first). */
static void settle(struct fleet *f, int failed)
{
  int dups = 0, lost = 1;
  int64_t until = nrd_mono_ms() + 60000;
  nrd_sleep_ms(LEASE_S * 1000 + 200);
  for (int k = 0; lost > 0 && nrd_mono_ms() < until; k++) {
    ask(f, k % REPLICAS, "POST", "/api/instances/migration/check-failed", "{\"immediate\":true}",
        NULL);
    count_outcome(f->w.sim, failed, &dups, &lost);
    if (lost > 0)
      nrd_sleep_ms(300);
  }
}

static void test_leader_dies(void **state)
{
  (void)state;
  struct fleet *f = &the_fleet;
  fleet_init(f, 0, 0, 50);
  for (int i = 0; i < REPLICAS; i++)
    fleet_start(f, i);
  int leader = the_leader(f, 5000);
  assert_true(leader >= 0);
  long runs = 0, ticks = 0;
  for (int i = 0; i < 40 && ticks < 2; i++) {
    leads(f, leader, &runs, &ticks);
    nrd_sleep_ms(100);
  }
  assert_true(ticks >= 2); /* the leader's watch ticks */
  for (int i = 0; i < REPLICAS; i++)
    if (i != leader) {
      assert_int_equal(leads(f, i, &runs, &ticks), 0);
      assert_int_equal(ticks, 0); /* a follower's watch does not */
      assert_int_equal(runs, 0);
    }

  int64_t killed = nrd_mono_ms();
  prod_kill(&f->p[leader]);
  int next = the_leader(f, LEASE_S * 1000 + 2000);
  int64_t took = nrd_mono_ms() - killed;
  assert_true(next >= 0 && next != leader);
  printf("leader %d killed; replica %d leads after %lld ms (lease %d s)\n", leader, next,
         (long long)took, LEASE_S);
  assert_true(took <= LEASE_S * 1000);

  /* Its scheduler ran at once (the takeover run), its watch ticks, and a
   * migration failed now is recovered by it, once. */
  long t0 = 0;
  leads(f, next, &runs, &t0);
  for (int i = 0; i < 50 && (runs < 1 || ticks <= t0); i++) {
    nrd_sleep_ms(100);
    leads(f, next, &runs, &ticks);
  }
  assert_true(runs >= 1);
  assert_true(ticks > t0);
  char id[64];
  assert_int_equal(nrd_sim_fail_migration(f->w.sim, time(NULL), id), 0);
  int dups = 0, lost = 1;
  for (int i = 0; i < 100 && lost; i++) {
    nrd_sleep_ms(100);
    count_outcome(f->w.sim, 1, &dups, &lost);
  }
  assert_int_equal(lost, 0);
  assert_int_equal(dups, 0);

  /* A POST to the follower starts (or joins) a run there. */
  int follower = 3 - leader - next;
  assert_int_equal(
      ask(f, follower, "POST", "/api/instances/migration/scheduler/trigger", NULL, NULL), 202);
  fleet_cleanup(f);
}

static uint64_t next_rand(uint64_t *seed)
{
  *seed ^= *seed << 13;
  *seed ^= *seed >> 7;
  *seed ^= *seed << 17;
  return *seed;
}

static int rounds_setting(void)
{
  const char *v = getenv("NRD_PG_KILL_ROUNDS");
  int n = v && *v ? atoi(v) : 100;
  return n > 0 && n <= POOL / 2 ? n : 100;
}

/* One round: two more migrations fail, a POST reaches a random replica, and
 * after a random 0-300 ms a random replica is killed and started again.
 * true when a recovery was still open at the kill. */
static bool kill_round(struct fleet *f, int round, uint64_t *seed)
{
  char id[64];
  for (int k = 0; k < 2; k++)
    assert_int_equal(nrd_sim_fail_migration(f->w.sim, time(NULL), id), 0);
  int to = (int)(next_rand(seed) % REPLICAS);
  ask(f, to, "POST", "/api/instances/migration/scheduler/trigger", NULL, NULL);
  nrd_sleep_ms((int64_t)(next_rand(seed) % 300));
  int victim = (int)(next_rand(seed) % REPLICAS), dups = 0, open = 0;
  count_outcome(f->w.sim, 2 * (round + 1), &dups, &open);
  prod_kill(&f->p[victim]);
  fleet_start(f, victim);
  return open > 0;
}

static void test_kill9_rounds(void **state)
{
  (void)state;
  struct fleet *f = &the_fleet;
  int rounds = rounds_setting();
  fleet_init(f, 10, 0, POOL);
  for (int i = 0; i < REPLICAS; i++)
    fleet_start(f, i);
  uint64_t seed = 0x9e3779b97f4a7c15u ^ (uint64_t)time(NULL);
  int64_t t0 = nrd_mono_ms();
  int mid = 0; /* rounds whose kill came while a recovery was open */
  for (int r = 0; r < rounds; r++)
    mid += kill_round(f, r, &seed);
  int64_t killing = nrd_mono_ms() - t0;
  settle(f, 2 * rounds);
  int dups = 0, lost = 0;
  count_outcome(f->w.sim, 2 * rounds, &dups, &lost);
  printf("kill -9 rounds: %d rounds (%d killed while a recovery was open), %d failed jobs, "
         "%d duplicates, %d lost, %zu creates; %lld ms of rounds, %lld ms in all\n",
         rounds, mid, 2 * rounds, dups, lost,
         nrd_sim_count(f->w.sim, "POST", "/gpu/instance/create"), (long long)killing,
         (long long)(nrd_mono_ms() - t0));
  assert_int_equal(dups, 0);
  assert_int_equal(lost, 0);
  assert_int_equal((int)nrd_sim_instance_count(f->w.sim), POOL);
  fleet_cleanup(f);
}

static void test_pg_restarts_mid_run(void **state)
{
  (void)state;
  struct fleet *f = &the_fleet;
  enum { FAILED = 30 };
  fleet_init(f, 20, FAILED, 10);
  for (int i = 0; i < REPLICAS; i++)
    fleet_start(f, i);
  for (int i = 0; i < REPLICAS; i++)
    ask(f, i, "POST", "/api/instances/migration/scheduler/trigger", NULL, NULL);
  nrd_sleep_ms(300);
  size_t before = nrd_sim_count(f->w.sim, "POST", "/gpu/instance/create");
  assert_int_equal(system(getenv("NRD_TEST_PG_RESTART")), 0);
  printf("PostgreSQL restarted after %zu of %d creates\n", before, FAILED);
  settle(f, FAILED);
  int dups = 0, lost = 0;
  count_outcome(f->w.sim, FAILED, &dups, &lost);
  assert_int_equal(dups, 0);
  assert_int_equal(lost, 0);
  assert_int_equal((int)nrd_sim_instance_count(f->w.sim), FAILED + 10);
  for (int i = 0; i < REPLICAS; i++)
    assert_true(f->p[i].pid > 0 && waitpid(f->p[i].pid, NULL, WNOHANG) == 0); /* none died */
  assert_true(the_leader(f, 5000) >= 0);
  fleet_cleanup(f);
}

int main(void)
{
  pgt_require_server();
  if (!getenv("NRD_BINARY"))
    return 77;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(test_leader_dies, kill_left),
    cmocka_unit_test_teardown(test_kill9_rounds, kill_left),
    cmocka_unit_test_teardown(test_pg_restarts_mid_run, kill_left),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
