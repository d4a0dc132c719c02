/* Operator control of the recovery ledger over HTTP, and the brake.
 * A row whose create Novita refused for good is listed as failed with its
 * reason; retry re-opens it and the next run completes it with exactly one
 * replacement; abandon closes a row for good. MAX_RECOVERIES_PER_RUN lets a
 * run take only so many rows; the rest are deferred to the next runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define API "/api/instances/migration"

static cJSON *run_immediate(struct tu_stack *s)
{
  long st = 0;
  cJSON *ans = tu_stack_check_failed(s, "{\"immediate\":true}", &st);
  assert_non_null(ans);
  if (st != 200)
    fail_msg("check-failed answered %ld", st);
  return ans;
}

static int count_actions(const cJSON *answer, const char *action)
{
  const cJSON *o;
  int n = 0;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(cJSON_GetObjectItem(answer, "result"), "outcomes")) {
    const char *a = nrd_json_str(o, "action");
    if (a && !strcmp(a, action))
      n++;
  }
  return n;
}

/* GET recoveries?state=...; the "recoveries" array detached (caller deletes). */
static cJSON *rows_in(struct tu_stack *s, const char *state)
{
  char path[128];
  long st = 0;
  snprintf(path, sizeof(path), API "/recoveries?state=%s", state);
  cJSON *j = tu_stack_request(s, "GET", path, NULL, &st);
  assert_int_equal(st, 200);
  cJSON *rows = cJSON_DetachItemFromObject(j, "recoveries");
  assert_true(cJSON_IsArray(rows));
  int64_t count = -1;
  assert_true(nrd_json_i64(j, "count", &count));
  assert_int_equal(count, cJSON_GetArraySize(rows));
  cJSON_Delete(j);
  return rows;
}

static const cJSON *row_for(const cJSON *rows, const char *instance_id)
{
  const cJSON *r;
  cJSON_ArrayForEach(r, rows) {
    const char *id = nrd_json_str(r, "instanceId");
    if (id && !strcmp(id, instance_id))
      return r;
  }
  return NULL;
}

static size_t replacements(struct tu_stack *s, const char *base)
{
  char prefix[64];
  size_t n = 0;
  const cJSON *inst;
  cJSON *all = nrd_sim_instances(s->sim);
  snprintf(prefix, sizeof(prefix), "%s-recreated-", base);
  cJSON_ArrayForEach(inst, all) {
    const char *name = nrd_json_str(inst, "name");
    if (name && !strncmp(name, prefix, strlen(prefix)))
      n++;
  }
  cJSON_Delete(all);
  return n;
}

/* Delete requests the simulator got for one instance id. */
static size_t deletes_of(struct tu_stack *s, const char *instance_id)
{
  struct nrd_sim_request *reqs = NULL;
  size_t n = nrd_sim_requests(s->sim, &reqs), hits = 0;
  char needle[64];
  snprintf(needle, sizeof(needle), "\"%s\"", instance_id);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(reqs[i].path);
    if (len >= 20 && !strcmp(reqs[i].path + len - 20, "/gpu/instance/delete") && reqs[i].body &&
        strstr(reqs[i].body, needle))
      hits++;
  }
  nrd_sim_requests_free(reqs, n);
  return hits;
}

static void test_failed_retry_abandon(void **state)
{
  (void)state;
  struct tu_stack s;
  long st = 0;

  tu_stack_init(&s, NULL);
  /* i-000 and i-002 are sound; i-001 has no image, so it fails before any delete. */
  cJSON *sc = tu_failed_fleet(3, 2);
  cJSON *broken = cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "instances"), 1);
  assert_string_equal(nrd_json_str(broken, "id"), "i-001");
  cJSON_DeleteItemFromObject(broken, "imageUrl");
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  /* The first create is refused for good. */
  struct nrd_sim_fault f = {
    .kind = NRD_SIM_STATUS,
    .match = "/gpu/instance/create",
    .status = 400,
    .body = "{\"code\":\"INVALID_PARAMS\",\"message\":\"rootfs quota exceeded\"}",
    .count = 1
  };
  assert_int_equal(nrd_sim_add_fault(s.sim, &f), 0);
  tu_stack_start(&s);

  cJSON *ans = run_immediate(&s);
  assert_int_equal(tu_result_int(ans, "failedJobsFound"), 3);
  assert_int_equal(tu_result_int(ans, "instancesRecreated"), 1);
  assert_int_equal(tu_result_int(ans, "errors"), 2);
  cJSON_Delete(ans);

  /* Both failures are listed with their reasons. */
  cJSON *failed = rows_in(&s, "failed");
  assert_int_equal(cJSON_GetArraySize(failed), 2);
  const cJSON *noimage = row_for(failed, "i-001");
  assert_non_null(noimage);
  assert_non_null(strstr(nrd_json_str(noimage, "lastError"), "imageUrl"));
  const cJSON *refused = NULL, *r;
  cJSON_ArrayForEach(r, failed)
    if (r != noimage)
      refused = r;
  const char *err = nrd_json_str(refused, "lastError");
  assert_non_null(err);
  assert_non_null(strstr(err, "rootfs quota exceeded"));
  char refused_job[64], refused_inst[16], refused_name[32], noimage_job[64];
  snprintf(refused_job, sizeof(refused_job), "%s", nrd_json_str(refused, "jobId"));
  snprintf(refused_inst, sizeof(refused_inst), "%s", nrd_json_str(refused, "instanceId"));
  snprintf(refused_name, sizeof(refused_name), "%s", nrd_json_str(refused, "instanceName"));
  snprintf(noimage_job, sizeof(noimage_job), "%s", nrd_json_str(noimage, "jobId"));
  cJSON_Delete(failed);
  assert_int_equal(replacements(&s, refused_name), 0);
  assert_int_equal(deletes_of(&s, "i-001"), 0);

  /* Retry re-opens the refused row; abandon closes the image-less one. */
  char path[256];
  snprintf(path, sizeof(path), API "/recoveries/%s/retry", refused_job);
  cJSON_Delete(tu_stack_request(&s, "POST", path, NULL, &st));
  assert_int_equal(st, 200);
  cJSON *pending = rows_in(&s, "pending");
  assert_non_null(row_for(pending, refused_inst));
  cJSON_Delete(pending);
  snprintf(path, sizeof(path), API "/recoveries/%s/abandon", noimage_job);
  cJSON_Delete(tu_stack_request(&s, "POST", path, "{\"reason\":\"image is gone for good\"}", &st));
  assert_int_equal(st, 200);
  cJSON *abandoned = rows_in(&s, "abandoned");
  assert_int_equal(cJSON_GetArraySize(abandoned), 1);
  assert_string_equal(nrd_json_str(row_for(abandoned, "i-001"), "lastError"),
                      "image is gone for good");
  cJSON_Delete(abandoned);
  /* Neither can be retried now; an unknown job is 404 too. */
  snprintf(path, sizeof(path), API "/recoveries/%s/retry", noimage_job);
  cJSON_Delete(tu_stack_request(&s, "POST", path, NULL, &st));
  assert_int_equal(st, 404);
  cJSON_Delete(tu_stack_request(&s, "POST", API "/recoveries/no-such-job/retry", NULL, &st));
  assert_int_equal(st, 404);

  /* The next run completes the retried row and leaves the abandoned one alone. */
  ans = run_immediate(&s);
  assert_int_equal(tu_result_int(ans, "instancesRecreated"), 1);
  assert_int_equal(tu_result_int(ans, "errors"), 0);
  const cJSON *o = tu_outcome_for(ans, refused_inst);
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "recreated");
  assert_null(tu_outcome_for(ans, "i-001"));
  cJSON_Delete(ans);
  assert_int_equal(replacements(&s, "trainer-000"), 1);
  assert_int_equal(replacements(&s, "trainer-002"), 1);
  assert_int_equal(replacements(&s, "trainer-001"), 0);
  assert_int_equal(deletes_of(&s, "i-001"), 0);

  /* And a third run changes nothing. */
  size_t creates = nrd_sim_count(s.sim, "POST", "/gpu/instance/create");
  assert_int_equal(creates, 3); /* refused, then one per sound instance */
  ans = run_immediate(&s);
  assert_int_equal(tu_result_int(ans, "instancesRecreated"), 0);
  cJSON_Delete(ans);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), creates);
  abandoned = rows_in(&s, "abandoned");
  assert_int_equal(cJSON_GetArraySize(abandoned), 1);
  cJSON_Delete(abandoned);
  cJSON *created = rows_in(&s, "created"), *running = rows_in(&s, "running");
  /* the third run saw the replacements of the first two running */
  assert_int_equal(cJSON_GetArraySize(created) + cJSON_GetArraySize(running), 2);
  cJSON_Delete(created);
  cJSON_Delete(running);
  assert_int_equal(deletes_of(&s, "i-001"), 0);
  tu_stack_cleanup(&s);
}

static void test_brake_defers_the_rest(void **state)
{
  (void)state;
  struct tu_stack s;
  const int failed = 10, brake = 4;
  const int expect_recreated[] = { 4, 4, 2 };
  const int expect_deferred[] = { 6, 2, 0 };

  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(failed, 3);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.max_recoveries_per_run = (unsigned)brake;
  tu_stack_start(&s);

  for (int run = 0; run < 3; run++) {
    cJSON *ans = run_immediate(&s);
    assert_int_equal(tu_result_int(ans, "instancesRecreated"), expect_recreated[run]);
    assert_int_equal(count_actions(ans, "recreated"), expect_recreated[run]);
    assert_int_equal(count_actions(ans, "deferred"), expect_deferred[run]);
    assert_int_equal(tu_result_int(ans, "deferred"), expect_deferred[run]);
    assert_int_equal(tu_result_int(ans, "errors"), 0);
    cJSON_Delete(ans);
    assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"),
                     expect_recreated[0] + (run > 0 ? expect_recreated[1] : 0) +
                         (run > 1 ? expect_recreated[2] : 0));
  }
  for (int i = 0; i < failed; i++) {
    char base[32];
    snprintf(base, sizeof(base), "trainer-%03d", i);
    assert_int_equal(replacements(&s, base), 1);
  }
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), failed);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_failed_retry_abandon),
    cmocka_unit_test(test_brake_defers_the_rest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
