/* nrd-bench-probe: the measuring half of the benchmark (tests/bench/run.sh).
 *
 *   nrd-bench-probe run STATS -- CMD [ARGS...]
 *       runs CMD (stdin, stdout and stderr inherited) and writes one line to
 *       the file STATS: "wall_ms user_ms sys_ms maxrss_kb exit_status", taken
 *       from wait4's rusage of CMD alone (a process started elsewhere, such
 *       as the simulator, is not counted). Exits with CMD's status.
 *
 *   nrd-bench-probe ready TRIES PATH -- CMD [ARGS...]
 *       TRIES times: picks a free loopback port, starts CMD with PORT set to
 *       it, asks GET PATH in a tight loop until it answers 200, prints the
 *       milliseconds from fork to that answer, then stops CMD (SIGTERM) and
 *       waits for it. CMD's stdout and stderr go to /dev/null.
 *
 *   nrd-bench-probe port
 *       prints a loopback port that is free right now. */

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_GIVE_UP_MS 10000.0

static double mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static double tv_ms(struct timeval tv)
{
  return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

/* Index of the argument after "--", or -1. */
static int after_dashes(int argc, char **argv, int from)
{
  for (int i = from; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      return i + 1 < argc ? i + 1 : -1;
  }
  return -1;
}

static pid_t spawn(char **cmd, bool quiet)
{
  pid_t pid = fork();
  if (pid == 0) {
    if (quiet) {
      int fd = open("/dev/null", O_WRONLY);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
      }
    }
    execvp(cmd[0], cmd);
    fprintf(stderr, "nrd-bench-probe: cannot run %s: %s\n", cmd[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

static int cmd_run(const char *stats_path, char **cmd)
{
  struct rusage ru;
  int status = 0;
  double t0 = mono_ms();
  pid_t pid = spawn(cmd, false);
  if (pid < 0) {
    perror("nrd-bench-probe: fork");
    return 1;
  }
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      perror("nrd-bench-probe: wait4");
      return 1;
    }
  }
  double wall = mono_ms() - t0;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  FILE *f = fopen(stats_path, "w");
  if (!f) {
    perror("nrd-bench-probe: stats file");
    return 1;
  }
  fprintf(f, "%.1f %.1f %.1f %ld %d\n", wall, tv_ms(ru.ru_utime), tv_ms(ru.ru_stime), ru.ru_maxrss,
          code);
  fclose(f);
  return code;
}

/* A loopback port free right now (bound, read back, closed). */
static unsigned free_port(void)
{
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  unsigned port = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* One GET on a new connection: the HTTP status, or 0 when nobody answers. */
static int get_status(unsigned port, const char *path)
{
  struct sockaddr_in a;
  char req[512], resp[64];
  int status = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
    goto out;
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
  if (n <= 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n)
    goto out;
  size_t got = 0;
  while (got < sizeof resp - 1) {
    ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
    if (r <= 0)
      break;
    got += (size_t)r;
    if (memchr(resp, '\n', got))
      break;
  }
  resp[got] = '\0';
  if (strncmp(resp, "HTTP/1.", 7) == 0 && got > 12)
    status = atoi(resp + 9);
out:
  close(fd);
  return status;
}

static int cmd_ready(int tries, const char *path, char **cmd)
{
  int rc = 0;
  for (int t = 0; t < tries; t++) {
    char portbuf[16];
    unsigned port = free_port();
    int status = 0;
    if (port == 0) {
      fprintf(stderr, "nrd-bench-probe: no free port\n");
      return 1;
    }
    snprintf(portbuf, sizeof portbuf, "%u", port);
    setenv("PORT", portbuf, 1);
    double t0 = mono_ms(), t1;
    pid_t pid = spawn(cmd, true);
    if (pid < 0) {
      perror("nrd-bench-probe: fork");
      return 1;
    }
    for (;;) {
      status = get_status(port, path);
      t1 = mono_ms();
      if (status == 200 || t1 - t0 > READY_GIVE_UP_MS || waitpid(pid, NULL, WNOHANG) == pid)
        break;
    }
    if (status == 200) {
      printf("%.2f\n", t1 - t0);
    } else {
      fprintf(stderr, "nrd-bench-probe: %s never answered 200 on %s\n", cmd[0], path);
      rc = 1;
    }
    fflush(stdout);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    if (rc)
      break;
  }
  return rc;
}

int main(int argc, char **argv)
{
  int cmd = after_dashes(argc, argv, 1);
  if (argc >= 4 && strcmp(argv[1], "run") == 0 && cmd == 4)
    return cmd_run(argv[2], argv + cmd);
  if (argc >= 5 && strcmp(argv[1], "ready") == 0 && cmd == 5 && atoi(argv[2]) > 0)
    return cmd_ready(atoi(argv[2]), argv[3], argv + cmd);
  if (argc == 2 && strcmp(argv[1], "port") == 0) {
    unsigned port = free_port();
    printf("%u\n", port);
    return port ? 0 : 1;
  }
  fprintf(stderr, "usage: nrd-bench-probe run STATS -- CMD [ARGS...]\n"
                  "       nrd-bench-probe ready TRIES PATH -- CMD [ARGS...]\n"
                  "       nrd-bench-probe port\n");
  return 2;
}
