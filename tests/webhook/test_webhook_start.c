/* End to end (issue 14): a replacement that runs and one whose image fails
 * to pull reach the receiver as instance.running and instance.start_failed,
 * signed, from the outbox; the deliveries are recorded for openapi.yaml's
 * webhooks check. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "nrd/webhook.h"
#include "receiver.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define SECRET "start-secret"
#define BAD_IMAGE "docker.io/acme/missing:0"

/* The first delivery of this type, parsed (caller deletes), signature checked. */
static cJSON *delivery_of(struct receiver *r, const char *type)
{
  for (size_t i = 0; i < rcv_count(r); i++) {
    struct rcv_delivery d;
    assert_true(rcv_get(r, i, &d));
    cJSON *body = cJSON_ParseWithLength(d.body, d.body_len);
    assert_non_null(body);
    bool match = !strcmp(nrd_json_str(body, "type"), type);
    if (match)
      assert_true(verify(SECRET, d.body, d.body_len, d.signature));
    rcv_delivery_cleanup(&d);
    if (match)
      return body;
    cJSON_Delete(body);
  }
  return NULL;
}

static void test_start_events_delivered(void **state)
{
  (void)state;
  struct tu_stack s;
  struct receiver *rcv = rcv_start();
  char url[64], err[256] = "";
  assert_non_null(rcv);
  rcv_url(rcv, url);

  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(2, 0);
  cJSON *bad = cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "instances"), 1);
  cJSON_ReplaceItemInObject(bad, "imageUrl", cJSON_CreateString(BAD_IMAGE));
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  nrd_sim_set_start_times(s.sim, 0, 0, 50);
  nrd_sim_set_pull_failure(s.sim, BAD_IMAGE, "manifest unknown");
  s.cfg.webhook_url = nrd_xstrdup(url);
  s.cfg.webhook_secret = nrd_xstrdup(SECRET);
  tu_stack_start(&s);
  struct nrd_webhook *wh = nrd_webhook_start(&s.cfg, err, sizeof err);
  assert_non_null(wh);

  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(tu_result_int(rep, "instancesRecreated"), 2);
  cJSON_Delete(rep);
  nrd_sleep_ms(100); /* past the simulated pull */
  rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  cJSON_Delete(rep);

  /* 2 instance.recreated, 2 run.completed, instance.running, instance.start_failed */
  int64_t until = nrd_mono_ms() + 10000;
  while (rcv_count(rcv) < 6 && nrd_mono_ms() < until)
    nrd_sleep_ms(20);
  assert_int_equal(rcv_count(rcv), 6);
  cJSON *ev = delivery_of(rcv, "instance.running");
  assert_non_null(ev);
  const cJSON *data = cJSON_GetObjectItem(ev, "data");
  assert_string_equal(nrd_json_str(data, "instanceId"), "i-000");
  assert_true(cJSON_IsNumber(cJSON_GetObjectItem(data, "secondsToRunning")));
  cJSON_Delete(ev);
  ev = delivery_of(rcv, "instance.start_failed");
  assert_non_null(ev);
  data = cJSON_GetObjectItem(ev, "data");
  assert_string_equal(nrd_json_str(data, "instanceId"), "i-001");
  assert_string_equal(nrd_json_str(cJSON_GetObjectItem(data, "statusError"), "message"),
                      "manifest unknown");
  cJSON_Delete(ev);

  nrd_webhook_stop(wh);
  tu_stack_cleanup(&s);
  rcv_stop(rcv);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_start_events_delivered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
