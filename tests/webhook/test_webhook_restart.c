/* The service is killed (SIGKILL) with webhook events still undelivered
 * (the receiver was down); after a restart the events go out, each once,
 * signed. The real binary, an in-process simulator and receiver. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "proc.h"
#include "receiver.h"

#define SECRET "restart-secret"

/* The world's environment with one more NAME=value (replacing none). */
static void env_with(const struct prod_world *w, const char *extra, const char **out)
{
  size_t n = 0;
  for (; w->env[n]; n++)
    out[n] = w->env[n];
  out[n++] = extra;
  out[n] = NULL;
}

static void test_events_survive_kill(void **state)
{
  (void)state;
  if (!getenv("NRD_BINARY"))
    skip();
  /* A receiver started and stopped at once: its port has nobody behind it. */
  struct receiver *gone = rcv_start();
  assert_non_null(gone);
  char dead_url[64], url_env[96];
  rcv_url(gone, dead_url);
  rcv_stop(gone);

  const char *extra[] = { "WEBHOOK_SECRET=" SECRET, "MIGRATION_INTERVAL_MINUTES=0", NULL };
  struct prod_world w;
  prod_world_init(&w, 0, 3, 2, extra);
  const char *env[PROD_ENV_MAX + 2];
  snprintf(url_env, sizeof(url_env), "WEBHOOK_URL=%s", dead_url);
  env_with(&w, url_env, env);

  struct prod_proc p;
  char log[700];
  snprintf(log, sizeof(log), "%s/first.log", w.dir);
  const char *args[] = { "serve", NULL };
  prod_spawn(&p, args, env, log);
  assert_true(prod_wait_listening(&p, 10000));
  long status = 0;
  cJSON *rep = prod_request(p.port, "POST", "/api/instances/migration/check-failed",
                            "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  int64_t n = 0;
  assert_true(nrd_json_i64(cJSON_GetObjectItem(rep, "result"), "instancesRecreated", &n));
  assert_int_equal(n, 3);
  cJSON_Delete(rep);
  /* Three instance.recreated and one run.completed wait in the outbox. */
  rep = prod_request(p.port, "GET", "/api/instances/migration/events", NULL, &status);
  assert_int_equal(status, 200);
  const cJSON *ev;
  int pending = 0;
  cJSON_ArrayForEach(ev, cJSON_GetObjectItem(rep, "events"))
    pending += !strcmp(nrd_json_str(ev, "state"), "pending");
  assert_int_equal(pending, 4);
  cJSON_Delete(rep);
  prod_kill(&p);

  struct receiver *rcv = rcv_start();
  assert_non_null(rcv);
  char url[64];
  rcv_url(rcv, url);
  snprintf(url_env, sizeof(url_env), "WEBHOOK_URL=%s", url);
  env_with(&w, url_env, env);
  snprintf(log, sizeof(log), "%s/second.log", w.dir);
  prod_spawn(&p, args, env, log);
  assert_true(prod_wait_listening(&p, 10000));
  /* The first process's failed attempts set a backoff; allow for it. */
  for (int i = 0; i < 300 && rcv_count(rcv) < 4; i++)
    nrd_sleep_ms(100);
  assert_int_equal(rcv_count(rcv), 4);

  int recreated = 0, completed = 0;
  for (size_t i = 0; i < 4; i++) {
    struct rcv_delivery d;
    assert_true(rcv_get(rcv, i, &d));
    assert_true(verify(SECRET, d.body, d.body_len, d.signature));
    assert_false(verify("wrong-secret", d.body, d.body_len, d.signature));
    cJSON *body = nrd_json_parse(d.body, d.body_len);
    const char *type = nrd_json_str(body, "type");
    assert_non_null(type);
    recreated += !strcmp(type, "instance.recreated");
    completed += !strcmp(type, "run.completed");
    assert_string_equal(nrd_json_str(body, "id"), d.id);
    for (size_t k = 0; k < i; k++) { /* each event once */
      struct rcv_delivery e;
      assert_true(rcv_get(rcv, k, &e));
      assert_string_not_equal(e.id, d.id);
      rcv_delivery_cleanup(&e);
    }
    cJSON_Delete(body);
    rcv_delivery_cleanup(&d);
  }
  assert_int_equal(recreated, 3);
  assert_int_equal(completed, 1);

  kill(p.pid, SIGTERM);
  int code = -1;
  assert_true(prod_wait_exit(&p, 10000, &code));
  assert_int_equal(code, 0);
  rcv_stop(rcv);
  prod_world_cleanup(&w);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_events_survive_kill),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
