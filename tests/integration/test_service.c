/* The service object (nrd_service): which parts each wiring starts, that a
 * part that cannot start takes the started ones down again, that a webhook
 * sender it starts is hooked to the runner's events, and that demo's own
 * configuration (nrd_config_copy) leaves the loaded one as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    cmocka_unit_test(test_config_copy_is_its_own),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
