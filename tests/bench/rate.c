/* nrd-bench-rate: does the adaptive token bucket find Novita's rate (issue
 * 15)? Not a test: tests/bench/watch.sh runs it (BENCH_PARTS=rate).
 *
 *   nrd-bench-rate SERVICE_BINARY N R
 *
 * Holds the simulator in-process (a fleet of 2N, N failed, latency
 * BENCH_LATENCY_MS, 50) with a server-side limit of R requests a second (0:
 * none; above it 429 with Retry-After), runs `SERVICE check-failed` once with
 * the service's defaults and prints: wall time, calls, 429s, the bound the
 * limit sets (calls / R), the ratio, and whether every row was recovered. */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nrd/json.h"
#include "nrd/sim.h"
#include "nrd/util.h"

#define KEY "bench-key"

static int run_service(const char *bin, char **envp)
{
  char *argv[] = { (char *)bin, "check-failed", NULL };
  pid_t pid = 0;
  int st = 0;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  if (posix_spawn(&pid, bin, &fa, NULL, argv, envp) != 0) {
    perror("posix_spawn");
    exit(1);
  }
  posix_spawn_file_actions_destroy(&fa);
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The rate settings of this process's environment, passed on (at most 3). */
static void pass_rate_settings(char **out)
{
  static const char *const names[] = { "NOVITA_RATE_LIMIT_RPS", "NOVITA_RATE_LIMIT_MAX_RPS",
                                       "NOVITA_RATE_LIMIT_ADAPTIVE" };
  static char buf[3][96];
  size_t k = 0;
  for (size_t i = 0; i < 3; i++) {
    const char *v = getenv(names[i]);
    if (v && *v) {
      snprintf(buf[k], sizeof buf[k], "%s=%s", names[i], v);
      out[k] = buf[k];
      k++;
    }
  }
  out[k] = NULL;
}

#define CONCURRENCY 8 /* MIGRATION_MAX_CONCURRENT's default */

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: nrd-bench-rate SERVICE_BINARY N R\n");
    return 2;
  }
  long n = strtol(argv[2], NULL, 10);
  double r = strtod(argv[3], NULL);
  const char *lat = getenv("BENCH_LATENCY_MS");
  unsigned latency = lat && *lat ? (unsigned)strtoul(lat, NULL, 10) : 50;
  char err[256], url[128], dir[] = "nrd-bench-rate.XXXXXX"; /* in the working folder */
  struct nrd_sim_options so = { .api_key = KEY, .latency_ms = latency };
  struct nrd_sim *sim = nrd_sim_start(&so, err, sizeof(err));
  if (!sim || !mkdtemp(dir)) {
    fprintf(stderr, "nrd-bench-rate: %s\n", sim ? "no temp dir" : err);
    return 1;
  }
  cJSON *sc = nrd_sim_make_fleet((size_t)(2 * n), (size_t)n, nrd_now_ms() / 1000);
  char *text = nrd_json_print(sc);
  nrd_sim_load(sim, text);
  free(text);
  cJSON_Delete(sc);
  nrd_sim_base_url(sim, url);
  nrd_sim_set_rate_limit(sim, r);

  char e_url[200], e_db[300];
  snprintf(e_url, sizeof(e_url), "NOVITA_API_BASE_URL=%s", url);
  snprintf(e_db, sizeof(e_db), "DATABASE_PATH=%s/recovery.db", dir);
  char *envp[8] = { "NOVITA_API_KEY=" KEY, e_url, e_db, "LOG_LEVEL=warn" };
  pass_rate_settings(envp + 4);
  int64_t t0 = nrd_mono_ms();
  int rc = run_service(argv[1], envp);
  double wall = (double)(nrd_mono_ms() - t0) / 1000.0;
  size_t calls = nrd_sim_count(sim, NULL, NULL);
  unsigned long refused = nrd_sim_rate_refused(sim);
  size_t creates = nrd_sim_count(sim, "POST", "/gpu/instance/create");
  size_t deletes = nrd_sim_count(sim, "POST", "/gpu/instance/delete");
  printf("N %4ld  R %5.1f  L %3u ms  wall %6.2f s  calls %4zu  429s %3lu (%4.1f%%)", n, r, latency,
         wall, calls, refused, calls ? 100.0 * (double)refused / (double)calls : 0.0);
  if (r > 0) {
    printf("  bound calls/R %6.2f s  ratio %4.2f", (double)calls / r, wall / ((double)calls / r));
  } else {
    /* The latency bound, as tests/bench/run.sh counts it: every listing
     * and look-up one after the other, then the canary's delete and create
     * alone, then the other rows MIGRATION_MAX_CONCURRENT (8) at a time. */
    size_t rounds = n >= 1 ? 1 + (size_t)(n - 1 + CONCURRENCY - 1) / CONCURRENCY : 0;
    double bound = (double)(calls - deletes - creates + 2 * rounds) * latency / 1000.0;
    printf("  latency bound %5.2f s  ratio %4.2f", bound, wall / bound);
  }
  printf("  deletes %zu creates %zu  exit %d\n", deletes, creates, rc);
  nrd_sim_stop(sim);
  static const char *const files[] = { "recovery.db", "recovery.db-wal", "recovery.db-shm" };
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
  return 0;
}
