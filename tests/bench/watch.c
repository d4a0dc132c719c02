/* nrd-bench-watch: how soon after a migration fails is it recovered
 * (issue 15)? Not a test: tests/bench/watch.sh runs it.
 *
 *   nrd-bench-watch SERVICE_BINARY
 *
 * Holds the Novita simulator in-process (a fleet of BENCH_FLEET running
 * instances, latency BENCH_LATENCY_MS), stores the snapshots once with
 * `SERVICE check-failed` (nothing has failed yet: the service has run
 * before), then starts `SERVICE serve` with its defaults (only the
 * simulator's URL, a key, a database and PORT=0 set; WATCH_INTERVAL_SECONDS
 * and MIGRATION_INTERVAL_MINUTES only when BENCH_WATCH_INTERVAL /
 * BENCH_TIMER_MINUTES are set). Nothing POSTs. It first counts the calls
 * of BENCH_IDLE_SECONDS (60) with nothing failing, then fails BENCH_FAILURES
 * (20) migrations one at a time at random moments (seed BENCH_SEED) over
 * BENCH_MINUTES (10): each a migration job of a running instance, failed
 * at that moment. It waits until every one is recovered (or
 * BENCH_GIVE_UP_MINUTES, 20, after the last), stops the service and prints,
 * from the simulator's request log: per failure the seconds from the failure
 * to the delete sent and to the create answered (its arrival plus the
 * latency), their median, p95 and max, the idle calls a minute, and the
 * deletes and creates against the failures. */
#include <fcntl.h>
#include <signal.h>
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

struct failure {
  char id[32], name[64];
  int64_t at_ms;               /* wall clock of the failure */
  double to_delete, to_create; /* seconds; < 0 when not seen */
};

static long env_long(const char *name, long dflt)
{
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : dflt;
}

/* Runs SERVICE with args and the bench's environment; waits when wait. */
static pid_t spawn(const char *bin, const char *cmd, char **envp, bool wait)
{
  char *argv[] = { (char *)bin, (char *)cmd, NULL };
  pid_t pid = 0;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0); /* the CLI's report */
  if (posix_spawn(&pid, bin, &fa, NULL, argv, envp) != 0) {
    perror("posix_spawn");
    exit(1);
  }
  posix_spawn_file_actions_destroy(&fa);
  if (wait) {
    int st = 0;
    waitpid(pid, &st, 0);
  }
  return pid;
}

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng(void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Picks n distinct running instances i-0..i-(fleet-1). */
static void pick_victims(struct failure *f, size_t n, long fleet)
{
  for (size_t i = 0; i < n; i++) {
    long k;
    bool dup;
    do {
      k = (long)(rng() % (uint64_t)fleet);
      dup = false;
      for (size_t j = 0; j < i; j++)
        dup = dup || atol(f[j].id + 2) == k;
    } while (dup);
    snprintf(f[i].id, sizeof(f[i].id), "i-%ld", k);
    snprintf(f[i].name, sizeof(f[i].name), "worker-%04ld-recreated-", k);
  }
}

/* Deletes and creates in the log: per failure the first of each. */
static void measure(struct nrd_sim *sim, struct failure *f, size_t n, unsigned latency,
                    size_t *deletes, size_t *creates)
{
  struct nrd_sim_request *r = NULL;
  size_t nr = nrd_sim_requests(sim, &r);
  *deletes = *creates = 0;
  for (size_t i = 0; i < n; i++)
    f[i].to_delete = f[i].to_create = -1;
  for (size_t k = 0; k < nr; k++) {
    bool del = !strcmp(r[k].method, "POST") && strstr(r[k].path, "/instance/delete");
    bool cre = !strcmp(r[k].method, "POST") && strstr(r[k].path, "/instance/create");
    if (!del && !cre)
      continue;
    *(del ? deletes : creates) += 1;
    cJSON *body = nrd_json_parse(r[k].body ? r[k].body : "", r[k].body ? strlen(r[k].body) : 0);
    const char *key = del ? nrd_json_str(body, "instanceId") : nrd_json_str(body, "name");
    for (size_t i = 0; key && i < n; i++) {
      double s = (double)(r[k].at_ms - f[i].at_ms) / 1000.0;
      if (del && !strcmp(key, f[i].id) && f[i].to_delete < 0)
        f[i].to_delete = s;
      if (cre && !strncmp(key, f[i].name, strlen(f[i].name)) && f[i].to_create < 0)
        f[i].to_create = s + latency / 1000.0;
    }
    cJSON_Delete(body);
  }
  nrd_sim_requests_free(r, nr);
}

static void print_stats(const char *what, const struct failure *f, size_t n, bool create)
{
  double *v = nrd_xcalloc(n + 1, sizeof(*v));
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    double s = create ? f[i].to_create : f[i].to_delete;
    if (s >= 0)
      v[m++] = s;
  }
  qsort(v, m, sizeof(*v), cmp_double);
  if (m)
    printf("%-28s median %7.2f s  p95 %7.2f s  max %7.2f s  (%zu of %zu)\n", what, v[m / 2],
           v[(size_t)((double)(m - 1) * 0.95 + 0.5)], v[m - 1], m, n);
  else
    printf("%-28s none recovered (of %zu)\n", what, n);
  free(v);
}

static size_t count_creates(struct nrd_sim *sim)
{
  return nrd_sim_count(sim, "POST", "/gpu/instance/create");
}

/* The service's environment: nothing inherited. */
struct service_env {
  char url[200], db[300], watch[64], timer[64];
};

static void service_env(struct service_env *se, const char *url, const char *dir, char *envp[8])
{
  size_t n = 0;
  snprintf(se->url, sizeof(se->url), "NOVITA_API_BASE_URL=%s", url);
  snprintf(se->db, sizeof(se->db), "DATABASE_PATH=%s/recovery.db", dir);
  envp[n++] = "NOVITA_API_KEY=" KEY;
  envp[n++] = se->url;
  envp[n++] = se->db;
  envp[n++] = "PORT=0";
  envp[n++] = "LOG_LEVEL=warn";
  if (getenv("BENCH_WATCH_INTERVAL")) {
    snprintf(se->watch, sizeof(se->watch), "WATCH_INTERVAL_SECONDS=%s",
             getenv("BENCH_WATCH_INTERVAL"));
    envp[n++] = se->watch;
  }
  if (getenv("BENCH_TIMER_MINUTES")) {
    snprintf(se->timer, sizeof(se->timer), "MIGRATION_INTERVAL_MINUTES=%s",
             getenv("BENCH_TIMER_MINUTES"));
    envp[n++] = se->timer;
  }
  envp[n] = NULL;
}

/* Fails n migrations of random instances at random moments over minutes. */
static void fail_over_time(struct nrd_sim *sim, struct failure *f, size_t n, long fleet,
                           long minutes)
{
  int64_t *moments = nrd_xcalloc(n + 1, sizeof(*moments));
  pick_victims(f, n, fleet);
  int64_t start = nrd_now_ms();
  for (size_t i = 0; i < n; i++)
    moments[i] = start + (int64_t)(rng() % (uint64_t)(minutes * 60000));
  qsort(moments, n, sizeof(*moments), cmp_i64);
  for (size_t i = 0; i < n; i++) {
    char job[64];
    while (nrd_now_ms() < moments[i])
      nrd_sleep_ms(20);
    snprintf(job, sizeof(job), "job-bench-%zu", i);
    /* A migration that ran a few minutes, failing now. */
    nrd_sim_start_migration(sim, f[i].id, job, nrd_now_ms() / 1000 - 180);
    f[i].at_ms = nrd_now_ms();
    nrd_sim_set_job_state(sim, job, "fail");
  }
  free(moments);
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: nrd-bench-watch SERVICE_BINARY\n");
    return 2;
  }
  long fleet = env_long("BENCH_FLEET", 2000), nfail = env_long("BENCH_FAILURES", 20);
  long minutes = env_long("BENCH_MINUTES", 10), idle_s = env_long("BENCH_IDLE_SECONDS", 60);
  long give_up = env_long("BENCH_GIVE_UP_MINUTES", 20);
  unsigned latency = (unsigned)env_long("BENCH_LATENCY_MS", 50);
  rng_state ^= (uint64_t)env_long("BENCH_SEED", 15);
  char err[256], url[128], dir[] = "nrd-bench-watch.XXXXXX"; /* in the working folder */
  struct nrd_sim_options so = { .api_key = KEY, .latency_ms = latency };
  struct nrd_sim *sim = nrd_sim_start(&so, err, sizeof(err));
  if (!sim || !mkdtemp(dir)) {
    fprintf(stderr, "nrd-bench-watch: %s\n", sim ? "no temp dir" : err);
    return 1;
  }
  cJSON *sc = nrd_sim_make_fleet((size_t)fleet, 0, nrd_now_ms() / 1000);
  char *text = nrd_json_print(sc);
  nrd_sim_load(sim, text);
  free(text);
  cJSON_Delete(sc);
  nrd_sim_base_url(sim, url);

  struct service_env se;
  char *envp[8];
  service_env(&se, url, dir, envp);

  spawn(argv[1], "check-failed", envp, true); /* the snapshots, as a running service has */
  pid_t svc = spawn(argv[1], "serve", envp, false);
  nrd_sleep_ms(5000); /* start-up and the first tick */
  nrd_sim_clear_requests(sim);
  nrd_sleep_ms(idle_s * 1000);
  size_t idle_calls = nrd_sim_count(sim, NULL, NULL);
  printf("fleet %ld, latency %u ms, %s%s%s%s\n", fleet, latency,
         getenv("BENCH_WATCH_INTERVAL") ? "WATCH_INTERVAL_SECONDS=" : "watch at its default",
         getenv("BENCH_WATCH_INTERVAL") ? getenv("BENCH_WATCH_INTERVAL") : "",
         getenv("BENCH_TIMER_MINUTES") ? ", MIGRATION_INTERVAL_MINUTES=" : "",
         getenv("BENCH_TIMER_MINUTES") ? getenv("BENCH_TIMER_MINUTES") : "");
  printf("idle: %zu calls in %ld s = %.1f calls a minute\n", idle_calls, idle_s,
         (double)idle_calls * 60.0 / (double)idle_s);

  struct failure *f = nrd_xcalloc((size_t)nfail + 1, sizeof(*f));
  fail_over_time(sim, f, (size_t)nfail, fleet, minutes);
  int64_t until = nrd_now_ms() + give_up * 60000;
  while (count_creates(sim) < (size_t)nfail && nrd_now_ms() < until)
    nrd_sleep_ms(200);
  nrd_sleep_ms(2000); /* anything extra would show now */
  kill(svc, SIGTERM);
  waitpid(svc, NULL, 0);

  size_t deletes, creates;
  measure(sim, f, (size_t)nfail, latency, &deletes, &creates);
  for (long i = 0; i < nfail; i++)
    printf("failure %2ld %-8s delete after %7.2f s, create answered after %7.2f s\n", i, f[i].id,
           f[i].to_delete, f[i].to_create);
  print_stats("failure -> delete sent", f, (size_t)nfail, false);
  print_stats("failure -> create answered", f, (size_t)nfail, true);
  printf("deletes %zu, creates %zu, failures %ld%s\n", deletes, creates, nfail,
         deletes == (size_t)nfail && creates == (size_t)nfail ? " (none extra)" : " (MISMATCH)");
  free(f);
  nrd_sim_stop(sim);
  static const char *const files[] = { "recovery.db", "recovery.db-wal", "recovery.db-shm" };
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
    unlink(path);
  }
  if (rmdir(dir) != 0)
    fprintf(stderr, "nrd-bench-watch: %s left behind\n", dir);
  return 0;
}
