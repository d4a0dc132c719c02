/* kill -9 at varied moments during a run of 50 recoveries, then restart:
 * every failed job ends with exactly one replacement (counted by name in the
 * simulator), none lost, none doubled. And two processes on one database
 * never handle a row twice. The service runs as the real binary
 * (check-failed), the simulator in this process. Built twice: on a SQLite
 * file, and as test_pg_shared_crash on a fresh PostgreSQL database
 * (DATABASE_URL; backend_test.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "backend_test.h"
#include "scenario.h"
#include "testutil.h"

extern char **environ;

#define FAILED 50
#define ROUNDS 20

struct world {
  char *dir;
  struct nrd_sim *sim;
  char env_base[160], env_db[600];
  const char *binary;
};

static void world_init(struct world *w, unsigned latency_ms)
{
  char err[256], url[128];
  struct nrd_sim_options so = { .api_key = "crash-key", .latency_ms = latency_ms };
  memset(w, 0, sizeof(*w));
  w->binary = getenv("NRD_BINARY");
  w->dir = tu_tempdir();
  w->sim = nrd_sim_start(&so, err, sizeof(err));
  assert_non_null(w->sim);
  cJSON *sc = tu_failed_fleet(FAILED, FAILED);
  char *json = nrd_json_print(sc);
  assert_int_equal(nrd_sim_load(w->sim, json), 0);
  free(json);
  cJSON_Delete(sc);
  nrd_sim_base_url(w->sim, url);
  snprintf(w->env_base, sizeof(w->env_base), "NOVITA_API_BASE_URL=%s", url);
  char db_url[512];
  if (tb_fresh_url(db_url, sizeof db_url))
    snprintf(w->env_db, sizeof(w->env_db), "DATABASE_URL=%s", db_url);
  else
    snprintf(w->env_db, sizeof(w->env_db), "DATABASE_PATH=%s/recovery.db", w->dir);
}

static void world_cleanup(struct world *w)
{
  nrd_sim_stop(w->sim);
  tu_rmrf(w->dir);
  free(w->dir);
}

/* Starts `novita-recoveryd check-failed` with its output discarded. */
static pid_t spawn_check(struct world *w)
{
  char *argv[] = { (char *)w->binary, "check-failed", NULL };
  char *envp[] = { "NOVITA_API_KEY=crash-key",
                   w->env_base,
                   w->env_db,
                   "RECOVERY_LEASE_SECONDS=2",
                   "MIGRATION_MAX_CONCURRENT=8",
                   "NOVITA_RATE_LIMIT_RPS=0",
                   "REQUEST_TIMEOUT=5000",
                   "LOG_LEVEL=error",
                   NULL };
  posix_spawn_file_actions_t fa;
  pid_t pid = 0;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  assert_int_equal(posix_spawn(&pid, w->binary, &fa, NULL, argv, envp), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

static int wait_exit(pid_t pid)
{
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Exactly one replacement per failed instance, old ones gone: the running
 * half plus one each. And the rows were in this build's store: a SQLite
 * file exists only on SQLite. */
static void assert_exactly_one_each(struct world *w)
{
  char why[128] = "", file[600];
  if (!tu_one_replacement_each(w->sim, FAILED, 2 * FAILED, why, sizeof(why)))
    fail_msg("%s", why);
  snprintf(file, sizeof file, "%s/recovery.db", w->dir);
  if ((access(file, F_OK) == 0) == tb_is_pg())
    fail_msg("backend %s, yet the SQLite file %s", tb_backend(),
             tb_is_pg() ? "exists" : "is missing");
}

/* Runs check-failed to the end until a run leaves nothing open. */
static void finish(struct world *w)
{
  nrd_sleep_ms(2200); /* leases of killed processes expire */
  for (int i = 0; i < 4; i++) {
    if (wait_exit(spawn_check(w)) == 0)
      break;
    nrd_sleep_ms(2200);
  }
}

static void test_kill9_rounds(void **state)
{
  (void)state;
  struct world w;
  if (!getenv("NRD_BINARY"))
    skip();
  world_init(&w, 40);
  uint64_t seed = 0x9e3779b97f4a7c15u;
  for (int round = 0; round < ROUNDS; round++) {
    pid_t pid = spawn_check(&w);
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    /* From start-up to deep into the recoveries: 30 .. 1500 ms. */
    int64_t delay = 30 + (int64_t)(seed % 1470);
    nrd_sleep_ms(delay);
    kill(pid, SIGKILL);
    wait_exit(pid);
  }
  finish(&w);
  assert_exactly_one_each(&w);
  /* One create request per replacement unless an ambiguous create was
   * adopted; never more creates than rows plus kills. */
  size_t creates = nrd_sim_count(w.sim, "POST", "/gpu/instance/create");
  assert_true(creates >= FAILED && creates <= FAILED + ROUNDS);
  world_cleanup(&w);
}

static void test_two_processes_one_database(void **state)
{
  (void)state;
  struct world w;
  if (!getenv("NRD_BINARY"))
    skip();
  world_init(&w, 20);
  pid_t a = spawn_check(&w);
  pid_t b = spawn_check(&w);
  int ra = wait_exit(a), rb = wait_exit(b);
  assert_true(ra == 0 || ra == 1);
  assert_true(rb == 0 || rb == 1);
  finish(&w);
  assert_exactly_one_each(&w);
  /* No row handled twice: one delete per instance and one create per row. */
  assert_int_equal(nrd_sim_count(w.sim, "POST", "/gpu/instance/delete"), FAILED);
  assert_int_equal(nrd_sim_count(w.sim, "POST", "/gpu/instance/create"), FAILED);
  world_cleanup(&w);
}

int main(void)
{
  tb_require();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kill9_rounds),
    cmocka_unit_test(test_two_processes_one_database),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
