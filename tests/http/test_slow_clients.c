/* Slow clients (issue 16): connections from several loopback addresses
 * that trickle their request head a byte at a time hold at most the
 * per-address limit each, are closed once the head deadline passes however
 * steadily they trickle, and meanwhile /health from another address answers
 * within 1 s every time. Scaled down: a 2 s deadline, 8 connections per
 * address, 64 in all, 5 attacking addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nrd/util.h"
#include "stack.h"
#include "testutil.h"

#define ADDRESSES 5
#define PER_ADDRESS_TRIED 16
#define PER_IP 8
#define TOTAL 64
#define DEADLINE_S 2
#define ATTACK_MS 7000

static struct tu_stack g_stack;

struct trickler {
  int fd;
  bool open; /* the service has not closed it yet */
  int64_t opened_ms;
};

static int connect_from(const char *from)
{
  struct sockaddr_in src = { 0 }, dst = { 0 };
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  src.sin_family = AF_INET;
  inet_pton(AF_INET, from, &src.sin_addr);
  assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)nrd_http_port(g_stack.http));
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
  return fd;
}

/* One more byte of a head that never ends; false once the service closed
 * the connection (end of stream, reset or a refused write). */
static bool trickle(struct trickler *t, int step)
{
  char buf[256];
  const char *head = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  char one = step < (int)strlen(head) ? head[step] : 'a';
  ssize_t r = recv(t->fd, buf, sizeof buf, MSG_DONTWAIT);
  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
    return false;
  return send(t->fd, &one, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 || errno == EAGAIN;
}

/* GET /health from 127.0.0.1 on a fresh connection: the milliseconds it
 * took, or -1 when no 200 came. */
static int64_t probe_health(void)
{
  static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  struct timeval tv = { .tv_sec = 5 };
  char buf[512];
  size_t got = 0;
  int64_t t0 = nrd_mono_ms();
  int fd = connect_from("127.0.0.1");
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) {
    close(fd);
    return -1;
  }
  for (ssize_t r; got < sizeof buf - 1 && (r = recv(fd, buf + got, sizeof buf - 1 - got, 0)) > 0;)
    got += (size_t)r;
  buf[got] = '\0';
  close(fd);
  return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? nrd_mono_ms() - t0 : -1;
}

static void test_slow_flood(void **state)
{
  (void)state;
  struct trickler t[ADDRESSES * PER_ADDRESS_TRIED];
  size_t n = 0;
  int probes = 0;

  for (int a = 0; a < ADDRESSES; a++) {
    char from[32];
    snprintf(from, sizeof from, "127.0.0.%d", a + 2);
    for (int i = 0; i < PER_ADDRESS_TRIED; i++, n++) {
      t[n].fd = connect_from(from);
      t[n].open = true;
      t[n].opened_ms = nrd_mono_ms();
    }
  }
  int64_t start = nrd_mono_ms();
  for (int step = 0; nrd_mono_ms() - start < ATTACK_MS; step++) {
    for (size_t i = 0; i < n; i++)
      if (t[i].open && !trickle(&t[i], step))
        t[i].open = false;
    if (step % 3 == 0) {
      int64_t ms = probe_health();
      if (ms < 0 || ms > 1000)
        fail_msg("/health under the flood: %s after %lld ms", ms < 0 ? "no answer" : "answered",
                 (long long)ms);
      probes++;
    }
    nrd_sleep_ms(100);
  }
  size_t still_open = 0;
  for (size_t i = 0; i < n; i++) {
    still_open += t[i].open;
    close(t[i].fd);
  }
  assert_true(probes >= 10);
  /* Past the deadline (2 s, the attack lasted 7) every trickler was closed. */
  if (still_open)
    fail_msg("%zu trickling connections still open after %d ms", still_open, ATTACK_MS);
  assert_int_equal(probe_health() >= 0, 1);
}

/* A kept-alive connection (a proxy's upstream pool) may idle between
 * requests past the head deadline, within the idle timeout: its next
 * request is still served. */
static void test_kept_alive_idles(void **state)
{
  (void)state;
  static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  struct timeval tv = { .tv_sec = 5 };
  char buf[512];
  int fd = connect_from("127.0.0.1");
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  for (int i = 0; i < 2; i++) {
    if (i == 1)
      nrd_sleep_ms(DEADLINE_S * 1000 + 1500);
    assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(r > 12);
    assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
  }
  close(fd);
}

static int setup(void **state)
{
  (void)state;
  tu_stack_init(&g_stack, NULL);
  g_stack.cfg.http_request_timeout_seconds = DEADLINE_S;
  g_stack.cfg.http_max_connections = TOTAL;
  g_stack.cfg.http_max_connections_per_ip = PER_IP;
  tu_stack_start(&g_stack);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  tu_stack_cleanup(&g_stack);
  return 0;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_slow_flood),
    cmocka_unit_test(test_kept_alive_idles),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
