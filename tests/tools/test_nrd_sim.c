/* nrd-sim run as a user would: starts, says where it listens, serves the
 * generated fleet or a scenario file, stops cleanly on SIGTERM. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "testutil.h"

#define WAIT_MS 10000

struct proc {
  pid_t pid;
  unsigned port;
};

/* Starts nrd-sim with args (NULL-terminated, after argv[0]); reads the
 * "listening <port>" line. false when the program exits first. */
static bool spawn(const char *const *args, struct proc *p)
{
  const char *bin = getenv("NRD_SIM_BINARY");
  char *argv[32];
  char line[64];
  size_t n = 0, len = 0;
  int fds[2];
  struct pollfd pfd;

  argv[n++] = (char *)bin;
  for (size_t i = 0; args[i] && n < 31; i++)
    argv[n++] = (char *)args[i];
  argv[n] = NULL;
  assert_int_equal(pipe(fds), 0);
  p->pid = fork();
  assert_true(p->pid >= 0);
  if (p->pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execv(bin, argv);
    _exit(127);
  }
  close(fds[1]);
  pfd.fd = fds[0];
  pfd.events = POLLIN;
  while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
    ssize_t got;
    assert_true(poll(&pfd, 1, WAIT_MS) == 1);
    got = read(fds[0], line + len, sizeof line - 1 - len);
    if (got <= 0)
      break;
    len += (size_t)got;
  }
  close(fds[0]);
  line[len] = '\0';
  return sscanf(line, "listening %u", &p->port) == 1 && p->port > 0;
}

/* Exit status of the child, waiting at most WAIT_MS. */
static int reap(pid_t pid)
{
  int st = 0;
  for (int waited = 0; waited < WAIT_MS; waited += 10) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    nrd_sleep_ms(10);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  return -1;
}

static cJSON *get(const struct proc *p, const char *path, const char *key, long *status)
{
  char url[256], auth[128];
  const char *const headers[] = { auth, NULL };
  struct tu_resp r;
  cJSON *j;

  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", p->port, path);
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
  assert_int_equal(tu_http("GET", url, headers, NULL, &r), 0);
  *status = r.status;
  j = nrd_json_parse(r.body, r.body_len);
  tu_resp_cleanup(&r);
  return j;
}

static void test_fleet_and_sigterm(void **state)
{
  const char *const args[] = { "--port",    "0",          "--fleet", "12",          "--failed",
                               "3",         "--page-cap", "5",       "--page-base", "0",
                               "--api-key", "k1",         NULL };
  struct proc p;
  long st;
  int64_t total;
  cJSON *j;

  assert_true(spawn(args, &p));
  j = get(&p, "/gpu-instance/openapi/v1/gpu/instances?pageNum=0&pageSize=50", "k1", &st);
  assert_int_equal(st, 200);
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 12);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "instances")), 5);
  cJSON_Delete(j);
  j = get(&p, "/gpu-instance/openapi/v1/gpu/instances?status=migrating", "k1", &st);
  assert_true(nrd_json_i64(j, "total", &total));
  assert_int_equal(total, 3);
  cJSON_Delete(j);
  j = get(&p, "/gpu-instance/openapi/v1/gpu/instances", "wrong", &st);
  assert_int_equal(st, 401);
  cJSON_Delete(j);
  assert_int_equal(kill(p.pid, SIGTERM), 0);
  assert_int_equal(reap(p.pid), 0);
}

static void test_scenario_file_and_sigint(void **state)
{
  char *dir = tu_tempdir();
  char path[512];
  FILE *f;
  struct proc p;
  long st;
  cJSON *j;
  const char *args[] = { "--scenario", path, "--api-key", "k2", NULL };

  snprintf(path, sizeof path, "%s/scenario.json", dir);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs("{\"instances\":[{\"id\":\"i-file\",\"name\":\"from-file\",\"status\":\"running\"}]}", f);
  fclose(f);
  assert_true(spawn(args, &p));
  j = get(&p, "/gpu-instance/openapi/v1/gpu/instances", "k2", &st);
  assert_int_equal(st, 200);
  assert_string_equal(
      nrd_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "instances"), 0), "id"), "i-file");
  cJSON_Delete(j);
  assert_int_equal(kill(p.pid, SIGINT), 0);
  assert_int_equal(reap(p.pid), 0);
  tu_rmrf(dir);
  free(dir);
}

static void test_bad_arguments(void **state)
{
  const char *const unknown[] = { "--bogus", "1", NULL };
  const char *const base[] = { "--page-base", "2", NULL };
  char *dir = tu_tempdir();
  char path[512];
  const char *const missing[] = { "--scenario", path, NULL };
  struct proc p;

  snprintf(path, sizeof path, "%s/missing.json", dir);

  assert_false(spawn(unknown, &p));
  assert_int_equal(reap(p.pid), 2);
  assert_false(spawn(base, &p));
  assert_int_equal(reap(p.pid), 2);
  assert_false(spawn(missing, &p));
  assert_int_equal(reap(p.pid), 1);
  tu_rmrf(dir);
  free(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_fleet_and_sigterm),
    cmocka_unit_test(test_scenario_file_and_sigint),
    cmocka_unit_test(test_bad_arguments),
  };
  if (!getenv("NRD_SIM_BINARY")) {
    fprintf(stderr, "NRD_SIM_BINARY is not set\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
