#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "scenario.h"
#include "testutil.h"

void prod_spawn(struct prod_proc *p, const char *const *args, const char *const *env,
                const char *log_path)
{
  const char *binary = getenv("NRD_BINARY");
  const char *argv[32];
  size_t n = 0;
  posix_spawn_file_actions_t fa;

  memset(p, 0, sizeof(*p));
  p->pid = -1;
  if (!binary) {
    fprintf(stderr, "prod_spawn: NRD_BINARY is not set\n");
    abort();
  }
  snprintf(p->log_path, sizeof(p->log_path), "%s", log_path);
  argv[n++] = binary;
  for (size_t i = 0; args && args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int rc = posix_spawn(&p->pid, binary, &fa, NULL, (char *const *)argv, (char *const *)env);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    fprintf(stderr, "prod_spawn: %s: %s\n", binary, strerror(rc));
    abort();
  }
}

char *prod_read_log(const struct prod_proc *p)
{
  struct nrd_buf b;
  char chunk[4096];
  size_t got;
  FILE *f = fopen(p->log_path, "r");

  nrd_buf_init(&b);
  nrd_buf_puts(&b, "");
  if (!f)
    return nrd_buf_steal(&b);
  while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
    nrd_buf_append(&b, chunk, got);
  fclose(f);
  return nrd_buf_steal(&b);
}

bool prod_wait_listening(struct prod_proc *p, int64_t timeout_ms)
{
  int64_t until = nrd_mono_ms() + timeout_ms;
  while (nrd_mono_ms() < until) {
    char *log = prod_read_log(p);
    const char *line = strstr(log, "\"msg\":\"listening\"");
    const char *port = line ? strstr(line, "\"port\":") : NULL;
    if (port) {
      p->port = (unsigned)strtoul(port + 7, NULL, 10);
      free(log);
      return p->port > 0;
    }
    free(log);
    if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
      p->pid = -1;
      return false;
    }
    nrd_sleep_ms(20);
  }
  return false;
}

bool prod_wait_exit(struct prod_proc *p, int64_t timeout_ms, int *code)
{
  int64_t until = nrd_mono_ms() + timeout_ms;
  int st = 0;
  if (p->pid <= 0)
    return false;
  for (;;) {
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid)
      break;
    if (r < 0 && errno != EINTR)
      return false;
    if (nrd_mono_ms() >= until)
      return false;
    nrd_sleep_ms(10);
  }
  p->pid = -1;
  *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return true;
}

void prod_kill(struct prod_proc *p)
{
  if (p->pid <= 0)
    return;
  kill(p->pid, SIGKILL);
  waitpid(p->pid, NULL, 0);
  p->pid = -1;
}

cJSON *prod_request(unsigned port, const char *method, const char *path, const char *body,
                    long *status)
{
  char url[512];
  struct tu_resp r = { 0 };
  const char *const json_headers[] = { "Content-Type: application/json", NULL };
  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
  if (tu_http(method, url, body ? json_headers : NULL, body, &r) != 0) {
    fprintf(stderr, "prod_request: no answer from %s %s\n", method, url);
    abort();
  }
  *status = r.status;
  cJSON *j = nrd_json_parse(r.body, r.body_len);
  tu_resp_cleanup(&r);
  return j;
}

int64_t prod_iso_ms(const char *s)
{
  struct tm tm;
  int ms = 0;
  char z = 0;
  memset(&tm, 0, sizeof(tm));
  if (!s ||
      sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &ms, &z) != 8 ||
      z != 'Z')
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

void prod_world_init(struct prod_world *w, unsigned latency_ms, int failed, int running,
                     const char *const *extra_env)
{
  char err[256], url[128];
  struct nrd_sim_options so = { .api_key = "prod-key", .latency_ms = latency_ms };
  size_t n = 0;

  memset(w, 0, sizeof(*w));
  w->dir = tu_tempdir();
  w->sim = nrd_sim_start(&so, err, sizeof(err));
  if (!w->sim) {
    fprintf(stderr, "prod_world_init: simulator: %s\n", err);
    abort();
  }
  cJSON *sc = tu_failed_fleet(failed, running);
  char *json = nrd_json_print(sc);
  if (nrd_sim_load(w->sim, json) != 0)
    abort();
  free(json);
  cJSON_Delete(sc);
  nrd_sim_base_url(w->sim, url);
  snprintf(w->env_base, sizeof(w->env_base), "NOVITA_API_BASE_URL=%s", url);
  snprintf(w->env_db, sizeof(w->env_db), "DATABASE_PATH=%s/data/recovery.db", w->dir);
  w->env[n++] = "NOVITA_API_KEY=prod-key";
  w->env[n++] = w->env_base;
  w->env[n++] = w->env_db;
  w->env[n++] = "PORT=0";
  w->env[n++] = "NOVITA_RATE_LIMIT_RPS=0";
  w->env[n++] = "LOG_LEVEL=info";
  w->env[n++] = "WATCH_INTERVAL_SECONDS=0"; /* these tests drive runs themselves */
  for (size_t i = 0; extra_env && extra_env[i] && n < PROD_ENV_MAX; i++)
    w->env[n++] = extra_env[i];
  w->env[n] = NULL;
}

void prod_world_cleanup(struct prod_world *w)
{
  nrd_sim_stop(w->sim);
  tu_rmrf(w->dir);
  free(w->dir);
}

void prod_start_serve(struct prod_world *w, struct prod_proc *p, const char *log_name)
{
  char log[700];
  const char *args[] = { "serve", NULL };
  snprintf(log, sizeof(log), "%s/%s", w->dir, log_name);
  prod_spawn(p, args, w->env, log);
  if (!prod_wait_listening(p, 10000)) {
    char *out = prod_read_log(p);
    prod_kill(p);
    fprintf(stderr, "serve did not start listening:\n%s\n", out);
    free(out);
    abort();
  }
}
