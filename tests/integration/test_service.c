/* The service object (nrd_service): which parts each wiring starts, that a
 * part that cannot start takes the started ones down again, that a webhook
 * sender it starts is hooked to the runner's events, and that demo's own
 * configuration (nrd_config_copy) leaves the loaded one as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "nrd/http.h"
#include "nrd/json.h"
#include "nrd/service.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

/* The production wiring (no options) starts every part, the scheduler too
 * when no interval is set (its endpoints answer, as in `serve`). */
static void test_serve_starts_every_part(void **state)
{
  struct tu_stack s;
  char err[256] = "";
  (void)state;
  tu_stack_init(&s, NULL);
  s.cfg.migration_interval_minutes = 0;
  s.cfg.watch_interval_seconds = 0;
  struct nrd_service *svc = nrd_service_start(&s.cfg, NULL, err, sizeof err);
  assert_non_null(svc);
  assert_non_null(nrd_service_novita(svc));
  assert_non_null(nrd_service_runner(svc));
  assert_non_null(nrd_service_scheduler(svc));
  assert_non_null(nrd_service_http(svc));
  assert_true(nrd_http_port(nrd_service_http(svc)) > 0);
  nrd_service_stop(svc);
  tu_stack_cleanup(&s);
}

/* check-failed's wiring: the client and the runner, nothing that serves. */
static void test_runner_only(void **state)
{
  struct tu_stack s;
  char err[256] = "";
  const struct nrd_service_options o = { .runner_only = true };
  (void)state;
  tu_stack_init(&s, NULL);
  s.cfg.migration_interval_minutes = 15;
  struct nrd_service *svc = nrd_service_start(&s.cfg, &o, err, sizeof err);
  assert_non_null(svc);
  assert_non_null(nrd_service_runner(svc));
  assert_null(nrd_service_scheduler(svc));
  assert_null(nrd_service_http(svc));
  nrd_service_stop(svc);
  tu_stack_cleanup(&s);
}

/* A part that cannot start (HTTP on a port taken) fails the start with its
 * reason, after the runner and scheduler had started: they are stopped. */
static void test_failed_part_stops_the_others(void **state)
{
  struct tu_stack s;
  char err[256] = "";
  (void)state;
  tu_stack_init(&s, NULL);
  tu_stack_start(&s); /* holds a port */
  struct nrd_config second;
  nrd_config_copy(&second, &s.cfg);
  second.port = nrd_http_port(s.http);
  struct nrd_service *svc = nrd_service_start(&second, NULL, err, sizeof err);
  assert_null(svc);
  assert_true(err[0] != '\0');
  nrd_config_cleanup(&second);
  tu_stack_cleanup(&s);
}

/* With WEBHOOK_URL set the service starts the sender and hooks it to the
 * runner: a run's events are delivered (to a port nobody listens on, so
 * they stay pending, but the sender tried: the outbox records attempts). */
static void test_webhook_sender_started(void **state)
{
  struct tu_stack s;
  char err[256] = "";
  (void)state;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(1, 1);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.webhook_url = nrd_xstrdup("http://127.0.0.1:1/hook");
  s.cfg.request_timeout_ms = 1000;
  struct nrd_service *svc = nrd_service_start(&s.cfg, NULL, err, sizeof err);
  assert_non_null(svc);
  char base[64], url[128];
  snprintf(base, sizeof base, "http://127.0.0.1:%u", nrd_http_port(nrd_service_http(svc)));
  snprintf(url, sizeof url, "%s/api/instances/migration/check-failed", base);
  struct tu_resp r = { 0 };
  const char *const hdrs[] = { "Content-Type: application/json", NULL };
  assert_int_equal(tu_http("POST", url, hdrs, "{\"immediate\":true}", &r), 0);
  assert_int_equal(r.status, 200);
  tu_resp_cleanup(&r);
  /* The sender's first attempt is recorded on the event. */
  snprintf(url, sizeof url, "%s/api/instances/migration/events", base);
  int attempts = 0;
  for (int64_t until = nrd_mono_ms() + 10000; attempts == 0 && nrd_mono_ms() < until;) {
    struct tu_resp e = { 0 };
    assert_int_equal(tu_http("GET", url, NULL, NULL, &e), 0);
    cJSON *j = nrd_json_parse(e.body, e.body_len);
    const cJSON *ev = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "events"), 0);
    int64_t a = 0;
    if (nrd_json_i64(ev, "attempts", &a))
      attempts = (int)a;
    cJSON_Delete(j);
    tu_resp_cleanup(&e);
    if (attempts == 0)
      nrd_sleep_ms(50);
  }
  assert_true(attempts > 0);
  nrd_service_stop(svc);
  tu_stack_cleanup(&s);
}

/* One keep-alive connection that keeps sending, pipelined, a retry (handed
 * to the runner's control thread) and a scheduler status (read from the
 * scheduler and the watch), and counts the answers it reads. */
struct keepalive {
  int fd;
  atomic_int answers;
};

static void *keepalive_send(void *arg)
{
  struct keepalive *k = arg;
  static const char req[] =
      "POST /api/instances/migration/recoveries/job-x/retry HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
      "GET /api/instances/migration/scheduler/status HTTP/1.1\r\nHost: x\r\n\r\n";
  while (send(k->fd, req, sizeof req - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof req - 1))
    ;
  return NULL;
}

static void *keepalive_read(void *arg)
{
  struct keepalive *k = arg;
  char buf[8192];
  size_t keep = 0; /* bytes carried over: an answer's start cut by a read */
  ssize_t r;
  while ((r = recv(k->fd, buf + keep, sizeof buf - 1 - keep, 0)) > 0) {
    size_t n = keep + (size_t)r;
    buf[n] = '\0';
    const char *p = buf;
    while ((p = strstr(p, "HTTP/1.1 ")) != NULL) {
      atomic_fetch_add(&k->answers, 1);
      p += 9;
    }
    keep = n < 8 ? n : 8;
    memmove(buf, buf + n - keep, keep);
  }
  return NULL;
}

/* The service stops while a keep-alive connection keeps bringing requests:
 * quiescing stops new connections only, so the parts those requests reach
 * (the runner's control thread, the scheduler, the watch) are halted before
 * HTTP stops and freed after it. Before, the control struct and the
 * scheduler were freed while HTTP still served: a crash, or a use after free
 * that ASan reports. */
static void test_stop_with_keepalive_requests(void **state)
{
  struct tu_stack s;
  struct keepalive k = { .fd = socket(AF_INET, SOCK_STREAM, 0) };
  struct sockaddr_in sin = { .sin_family = AF_INET };
  struct timeval tv = { .tv_sec = 10 };
  pthread_t sender, reader;
  (void)state;
  tu_stack_init(&s, NULL);
  s.cfg.migration_interval_minutes = 15;
  s.cfg.watch_interval_seconds = 1;
  tu_stack_start(&s);
  sin.sin_port = htons((uint16_t)nrd_http_port(s.http));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_true(k.fd >= 0);
  setsockopt(k.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(k.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  assert_int_equal(connect(k.fd, (struct sockaddr *)&sin, sizeof sin), 0);
  assert_int_equal(pthread_create(&reader, NULL, keepalive_read, &k), 0);
  assert_int_equal(pthread_create(&sender, NULL, keepalive_send, &k), 0);
  for (int64_t until = nrd_mono_ms() + 10000;
       atomic_load(&k.answers) < 50 && nrd_mono_ms() < until;)
    nrd_sleep_ms(5);
  assert_true(atomic_load(&k.answers) >= 50);
  tu_stack_stop_service(&s); /* while the requests keep coming */
  shutdown(k.fd, SHUT_RDWR);
  pthread_join(sender, NULL);
  pthread_join(reader, NULL);
  close(k.fd);
  tu_stack_cleanup(&s);
}

/* What a request reaching halted parts gets during a stop (the window
 * between their halt and HTTP's): 503 SHUTTING_DOWN, for each route that
 * hands work to the runner or the scheduler. */
static void test_halted_parts_answer_503(void **state)
{
  static const char *const posts[][2] = {
    { "/api/instances/migration/check-failed", "{}" },
    { "/api/instances/migration/check-failed", "{\"immediate\":true}" },
    { "/api/instances/migration/recoveries/job-x/retry", "{}" },
    { "/api/instances/migration/scheduler/trigger", NULL },
  };
  struct tu_stack s;
  (void)state;
  tu_stack_init(&s, NULL);
  s.cfg.migration_interval_minutes = 15;
  tu_stack_start(&s);
  nrd_scheduler_halt(s.sched);
  nrd_runner_halt(s.runner);
  for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++) {
    long st = 0;
    cJSON *j = tu_stack_request(&s, "POST", posts[i][0], posts[i][1], &st);
    if (st != 503)
      fail_msg("POST %s %s: %ld, expected 503", posts[i][0], posts[i][1] ? posts[i][1] : "", st);
    assert_string_equal(nrd_json_str(cJSON_GetObjectItem(j, "error"), "code"), "SHUTTING_DOWN");
    cJSON_Delete(j);
  }
  tu_stack_cleanup(&s);
}

/* demo serves with a copy: changing the copy leaves the loaded one. */
static void test_config_copy_is_its_own(void **state)
{
  struct nrd_config loaded, own;
  (void)state;
  nrd_config_defaults(&loaded);
  loaded.novita_api_key = nrd_xstrdup("real-key");
  nrd_config_copy(&own, &loaded);
  assert_string_equal(own.novita_api_key, "real-key");
  assert_ptr_not_equal(own.novita_api_key, loaded.novita_api_key);
  assert_ptr_not_equal(own.database_path, loaded.database_path);
  assert_int_equal(own.n_proxies, loaded.n_proxies);
  assert_true(own.n_proxies == 0 || own.proxies != loaded.proxies);
  free(own.novita_api_key);
  own.novita_api_key = nrd_xstrdup("demo-key");
  assert_string_equal(loaded.novita_api_key, "real-key");
  nrd_config_cleanup(&own);
  nrd_config_cleanup(&loaded);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_serve_starts_every_part),
    cmocka_unit_test(test_runner_only),
    cmocka_unit_test(test_failed_part_stops_the_others),
    cmocka_unit_test(test_webhook_sender_started),
    cmocka_unit_test(test_stop_with_keepalive_requests),
    cmocka_unit_test(test_halted_parts_answer_503),
    cmocka_unit_test(test_config_copy_is_its_own),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
