/* End to end: the whole service in-process with a sender beside it. A failed
 * migration recovered through check-failed reaches the receiver as
 * instance.recreated then run.completed, signed, and the events endpoint
 * shows both delivered. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "nrd/webhook.h"
#include "receiver.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define SECRET "e2e-secret"

/* Delivery i parsed (caller deletes), after checking its signature. */
static cJSON *delivered(struct receiver *r, size_t i)
{
  struct rcv_delivery d;
  assert_true(rcv_get(r, i, &d));
  assert_int_equal(d.answered, 200);
  assert_true(verify(SECRET, d.body, d.body_len, d.signature));
  assert_false(verify("wrong", d.body, d.body_len, d.signature));
  assert_null(strstr(d.body, "sshPassword"));
  cJSON *body = cJSON_ParseWithLength(d.body, d.body_len);
  assert_non_null(body);
  assert_string_equal(nrd_json_str(body, "id"), d.id);
  rcv_delivery_cleanup(&d);
  return body;
}

static void test_recovery_is_announced(void **state)
{
  (void)state;
  struct tu_stack s;
  struct receiver *rcv = rcv_start();
  char url[64];
  char err[256] = "";
  assert_non_null(rcv);
  rcv_url(rcv, url);

  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(1, 1);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.webhook_url = nrd_xstrdup(url);
  s.cfg.webhook_secret = nrd_xstrdup(SECRET);
  tu_stack_start(&s);
  struct nrd_webhook *wh = nrd_webhook_start(&s.cfg, err, sizeof err);
  assert_non_null(wh);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 1);
  const cJSON *o = tu_outcome_for(rep, "i-000");
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "recreated");

  /* Nothing calls notify here: the sender's idle look finds them. */
  int64_t until = nrd_mono_ms() + 10000;
  while (rcv_count(rcv) < 2 && nrd_mono_ms() < until)
    nrd_sleep_ms(20);
  assert_int_equal(rcv_count(rcv), 2);

  cJSON *ev = delivered(rcv, 0);
  assert_string_equal(nrd_json_str(ev, "type"), "instance.recreated");
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
  assert_string_equal(nrd_json_str(data, "instanceId"), "i-000");
  assert_string_equal(nrd_json_str(data, "jobId"), "job-000");
  assert_string_equal(nrd_json_str(data, "newInstanceId"), nrd_json_str(o, "newInstanceId"));
  assert_string_equal(nrd_json_str(data, "newName"), nrd_json_str(o, "newName"));
  cJSON_Delete(ev);

  ev = delivered(rcv, 1);
  assert_string_equal(nrd_json_str(ev, "type"), "run.completed");
  data = cJSON_GetObjectItemCaseSensitive(ev, "data");
  const cJSON *result = cJSON_GetObjectItemCaseSensitive(rep, "result");
  assert_string_equal(nrd_json_str(data, "runId"), nrd_json_str(result, "runId"));
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(data, "instancesRecreated");
  assert_true(cJSON_IsNumber(n) && n->valuedouble == 1);
  cJSON_Delete(ev);
  cJSON_Delete(rep);

  /* The outbox as the API shows it: both delivered. */
  until = nrd_mono_ms() + 5000;
  bool all_delivered = false;
  while (!all_delivered && nrd_mono_ms() < until) {
    cJSON *list = tu_stack_request(&s, "GET", "/api/instances/migration/events", NULL, &status);
    assert_int_equal(status, 200);
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(list, "events");
    assert_int_equal(cJSON_GetArraySize(events), 2);
    all_delivered = true;
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
      if (strcmp(nrd_json_str(e, "state"), "delivered") != 0)
        all_delivered = false;
    }
    cJSON_Delete(list);
    if (!all_delivered)
      nrd_sleep_ms(20);
  }
  assert_true(all_delivered);

  nrd_webhook_stop(wh);
  tu_stack_cleanup(&s);
  rcv_stop(rcv);
}

/* A row that fails for good is announced once, with the reason. */
static void test_failure_is_announced(void **state)
{
  (void)state;
  struct tu_stack s;
  struct receiver *rcv = rcv_start();
  char url[64];
  char err[256] = "";
  assert_non_null(rcv);
  rcv_url(rcv, url);

  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(1, 1);
  cJSON_DeleteItemFromObject(cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "instances"), 0),
                             "imageUrl");
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.webhook_url = nrd_xstrdup(url);
  s.cfg.webhook_secret = nrd_xstrdup(SECRET);
  tu_stack_start(&s);
  struct nrd_webhook *wh = nrd_webhook_start(&s.cfg, err, sizeof err);
  assert_non_null(wh);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  assert_int_equal(tu_result_int(rep, "errors"), 1);
  cJSON_Delete(rep);

  int64_t until = nrd_mono_ms() + 10000;
  while (rcv_count(rcv) < 2 && nrd_mono_ms() < until)
    nrd_sleep_ms(20);
  assert_int_equal(rcv_count(rcv), 2);
  cJSON *ev = delivered(rcv, 0);
  assert_string_equal(nrd_json_str(ev, "type"), "instance.recovery_failed");
  const cJSON *data = cJSON_GetObjectItemCaseSensitive(ev, "data");
  assert_string_equal(nrd_json_str(data, "jobId"), "job-000");
  assert_non_null(nrd_json_str(data, "reason"));
  cJSON_Delete(ev);

  nrd_webhook_stop(wh);
  tu_stack_cleanup(&s);
  rcv_stop(rcv);
}

int main(void)
{
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_recovery_is_announced),
    cmocka_unit_test(test_failure_is_announced),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return failed;
}
