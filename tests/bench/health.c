/* nrd-bench-health: /health latency under load (issue 19, tests/bench/health.sh).
 *
 *   nrd-bench-health PORT SECONDS POST_MS
 *       For SECONDS, one thread asks GET /health on 127.0.0.1:PORT every
 *       10 ms (fixed schedule: a late answer makes the next request go at
 *       once, not pushes the schedule back) on one keep-alive connection,
 *       reconnecting when the server closes it (the reconnect is counted in
 *       that request's time). With POST_MS > 0, another thread POSTs
 *       /api/instances/migration/check-failed (no body: a background run,
 *       started or joined) every POST_MS ms, each on its own connection.
 *       Prints one line:
 *         samples N p50_ms X p99_ms Y max_ms Z errors E posts P post_errors Q
 *       A sample is the time from sending the request to reading the whole
 *       answer (monotonic clock); an error is a request that got no 200.
 *       Exits 1 when no sample was taken. */

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 10.0
#define ANSWER_MAX 65536

static int port;
static double end_ms;

static double mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_until(double t)
{
  double d = t - mono_ms();
  if (d <= 0)
    return;
  long long ns = (long long)(d * 1e6);
  struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };
  nanosleep(&ts, NULL);
}

static int connect_local(void)
{
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  struct sockaddr_in a = { .sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  if (fd < 0)
    return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool send_all(int fd, const char *s, size_t n)
{
  while (n > 0) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0)
      return false;
    s += w;
    n -= (size_t)w;
  }
  return true;
}

/* The first place in [s, end) where needle starts, case-insensitive. */
static const char *find_ci(const char *s, const char *end, const char *needle)
{
  size_t n = strlen(needle);
  for (; s + n <= end; s++) {
    if (strncasecmp(s, needle, n) == 0)
      return s;
  }
  return NULL;
}

/* Reads one answer (headers, then Content-Length bytes of body, or up to EOF
 * without one). Its status, 0 when the connection failed; *closed when the
 * server closes the connection after it. */
static int read_answer(int fd, bool *closed)
{
  char buf[ANSWER_MAX + 1];
  size_t len = 0;
  char *body = NULL;
  long clen = -1;

  *closed = true;
  for (;;) {
    if (len == ANSWER_MAX)
      return 0;
    ssize_t r = recv(fd, buf + len, ANSWER_MAX - len, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
    buf[len] = '\0';
    if (!body && (body = strstr(buf, "\r\n\r\n"))) {
      body += 4;
      const char *cl = find_ci(buf, body, "\r\ncontent-length:");
      clen = cl ? strtol(cl + 17, NULL, 10) : -1;
    }
    if (body && clen >= 0 && (size_t)(buf + len - body) >= (size_t)clen) {
      *closed = find_ci(buf, body, "\r\nconnection: close") != NULL;
      break;
    }
  }
  int status = 0;
  if (len > 12 && sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
    status = 0;
  return body ? status : 0;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

struct posts {
  long sent, errors;
  double every_ms;
};

static void *post_loop(void *arg)
{
  struct posts *p = arg;
  static const char req[] = "POST /api/instances/migration/check-failed HTTP/1.1\r\n"
                            "Host: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  for (double next = mono_ms(); next < end_ms; next += p->every_ms) {
    sleep_until(next);
    int fd = connect_local();
    bool closed;
    int status = fd >= 0 && send_all(fd, req, sizeof req - 1) ? read_answer(fd, &closed) : 0;
    if (fd >= 0)
      close(fd);
    p->sent++;
    if (status != 200 && status != 202)
      p->errors++;
  }
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: nrd-bench-health PORT SECONDS POST_MS\n");
    return 2;
  }
  port = atoi(argv[1]);
  double seconds = atof(argv[2]), post_ms = atof(argv[3]);
  size_t cap = (size_t)(seconds * 1000.0 / POLL_MS) + 16, n = 0;
  double *samples = calloc(cap, sizeof *samples);
  long errors = 0;
  struct posts posts = { 0, 0, post_ms };
  pthread_t poster;
  static const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

  if (!samples)
    return 2;
  end_ms = mono_ms() + seconds * 1000.0;
  if (post_ms > 0 && pthread_create(&poster, NULL, post_loop, &posts) != 0)
    return 2;
  int fd = -1;
  for (double next = mono_ms(); next < end_ms && n < cap; next += POLL_MS) {
    sleep_until(next);
    double t0 = mono_ms();
    bool closed = true;
    if (fd < 0)
      fd = connect_local();
    int status = fd >= 0 && send_all(fd, req, sizeof req - 1) ? read_answer(fd, &closed) : 0;
    samples[n++] = mono_ms() - t0;
    if (status != 200)
      errors++;
    if ((closed || status == 0) && fd >= 0) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0)
    close(fd);
  if (post_ms > 0)
    pthread_join(poster, NULL);
  if (n == 0)
    return 1;
  qsort(samples, n, sizeof *samples, cmp_double);
  size_t i50 = (n - 1) / 2, i99 = (size_t)((double)(n - 1) * 0.99);
  printf("samples %zu p50_ms %.3f p99_ms %.3f max_ms %.3f errors %ld posts %ld post_errors %ld\n",
         n, samples[i50], samples[i99], samples[n - 1], errors, posts.sent, posts.errors);
  free(samples);
  return 0;
}
