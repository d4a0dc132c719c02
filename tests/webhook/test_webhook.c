/* The webhook sender against a loopback receiver: retries, order, signatures,
 * restarts, dead events, Retry-After, notify and stop. Each test has its own
 * temporary database; the test keeps a second connection to it. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "nrd/config.h"
#include "nrd/log.h"
#include "nrd/metrics.h"
#include "nrd/store.h"
#include "nrd/util.h"
#include "nrd/webhook.h"
#include "receiver.h"
#include "testutil.h"

#define SECRET "s3cret-for-tests"
#define WAIT_MS 15000

struct fx {
  char *dir;
  struct nrd_config cfg;
  struct nrd_store *st;
  struct receiver *rcv;
};

static int setup(void **state)
{
  struct fx *f = nrd_xcalloc(1, sizeof *f);
  char path[512];
  char err[256] = "";
  char url[64];

  f->dir = tu_tempdir();
  snprintf(path, sizeof path, "%s/db/recovery.db", f->dir);
  nrd_config_defaults(&f->cfg);
  free(f->cfg.database_path);
  f->cfg.database_path = nrd_xstrdup(path);
  f->cfg.webhook_secret = nrd_xstrdup(SECRET);
  f->cfg.request_timeout_ms = 10000;
  if (nrd_store_open_path(path, &f->st, NULL, err, sizeof err) != NRD_OK) {
    fprintf(stderr, "open failed: %s\n", err);
    return -1;
  }
  f->rcv = rcv_start();
  if (!f->rcv)
    return -1;
  rcv_url(f->rcv, url);
  f->cfg.webhook_url = nrd_xstrdup(url);
  nrd_webhook_set_backoff_ms(20, 100);
  nrd_metrics_reset();
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  rcv_stop(f->rcv);
  nrd_store_close(f->st);
  nrd_config_cleanup(&f->cfg);
  tu_rmrf(f->dir);
  free(f->dir);
  free(f);
  nrd_webhook_set_backoff_ms(0, 0);
  return 0;
}

static void set_url(struct fx *f, const struct receiver *r)
{
  char url[64];
  rcv_url(r, url);
  free(f->cfg.webhook_url);
  f->cfg.webhook_url = nrd_xstrdup(url);
}

static void insert_event(struct fx *f, const char *id, int64_t created_ms)
{
  char at[32];
  char body[256];
  nrd_iso8601(created_ms, at);
  snprintf(body, sizeof body,
           "{\"id\":\"%s\",\"type\":\"run.completed\",\"createdAt\":\"%s\","
           "\"data\":{\"errors\":0,\"note\":\"caf\xc3\xa9\"}}",
           id, at);
  struct nrd_event e = {
    .id = (char *)id, .type = "run.completed", .body_json = body, .created_ms = created_ms
  };
  assert_int_equal(nrd_store_event_insert(f->st, &e), NRD_OK);
}

/* The stored event with id (caller cleans up); fails the test if missing. */
static void get_event(struct fx *f, const char *id, struct nrd_event *out)
{
  struct nrd_event *all = NULL;
  size_t n = 0;
  bool found = false;
  memset(out, 0, sizeof *out);
  assert_int_equal(nrd_store_event_list(f->st, NULL, 1000, &all, &n), NRD_OK);
  for (size_t i = 0; i < n; i++) {
    if (strcmp(all[i].id, id) == 0) {
      *out = all[i];
      memset(&all[i], 0, sizeof all[i]);
      found = true;
    }
  }
  nrd_events_free(all, n);
  assert_true(found);
}

static bool has_state(struct fx *f, const char *id, const char *state)
{
  struct nrd_event e;
  get_event(f, id, &e);
  bool yes = strcmp(e.state, state) == 0;
  nrd_event_cleanup(&e);
  return yes;
}

static int attempts_of(struct fx *f, const char *id)
{
  struct nrd_event e;
  get_event(f, id, &e);
  int n = e.attempts;
  nrd_event_cleanup(&e);
  return n;
}

/* Polls until the event reaches state; false after WAIT_MS. */
static bool wait_state(struct fx *f, const char *id, const char *state)
{
  int64_t until = nrd_mono_ms() + WAIT_MS;
  while (nrd_mono_ms() < until) {
    if (has_state(f, id, state))
      return true;
    nrd_sleep_ms(10);
  }
  return false;
}

static bool wait_attempts(struct fx *f, const char *id, int min)
{
  int64_t until = nrd_mono_ms() + WAIT_MS;
  while (nrd_mono_ms() < until) {
    if (attempts_of(f, id) >= min)
      return true;
    nrd_sleep_ms(5);
  }
  return false;
}

static bool wait_count(struct receiver *r, size_t n)
{
  int64_t until = nrd_mono_ms() + WAIT_MS;
  while (nrd_mono_ms() < until) {
    if (rcv_count(r) >= n)
      return true;
    nrd_sleep_ms(5);
  }
  return false;
}

static struct nrd_webhook *start(struct fx *f)
{
  char err[256] = "";
  struct nrd_webhook *wh = nrd_webhook_start(&f->cfg, err, sizeof err);
  if (!wh)
    fprintf(stderr, "start failed: %s\n", err);
  assert_non_null(wh);
  return wh;
}

/* The value of one sample in the metrics text, -1 when absent. */
static double metric(const char *name)
{
  struct nrd_buf b;
  double v = -1;
  nrd_buf_init(&b);
  nrd_metrics_render(&b);
  size_t len = strlen(name);
  const char *p = b.data ? strstr(b.data, name) : NULL;
  while (p) {
    if ((p == b.data || p[-1] == '\n') && p[len] == ' ') {
      v = strtod(p + len + 1, NULL);
      break;
    }
    p = strstr(p + len, name);
  }
  nrd_buf_cleanup(&b);
  return v;
}

/* Checks what a delivery carried: headers, signature, body id. */
static void check_delivery(const struct rcv_delivery *d, const char *secret)
{
  assert_non_null(d->id);
  assert_non_null(d->content_type);
  assert_string_equal(d->content_type, "application/json");
  assert_non_null(d->timestamp);
  int64_t ts = 0;
  assert_true(nrd_parse_i64(d->timestamp, 0, INT64_MAX, &ts));
  int64_t now = nrd_now_ms() / 1000;
  assert_true(ts <= now && ts >= now - 60);
  if (secret) {
    assert_true(verify(secret, d->body, d->body_len, d->signature));
    assert_false(verify("not-the-secret", d->body, d->body_len, d->signature));
  } else {
    assert_null(d->signature);
  }
  cJSON *body = cJSON_ParseWithLength(d->body, d->body_len);
  assert_non_null(body);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(body, "id");
  assert_true(cJSON_IsString(id));
  assert_string_equal(id->valuestring, d->id);
  cJSON_Delete(body);
}

static void test_start_needs_url_and_database(void **state)
{
  struct fx *f = *state;
  char err[256] = "";
  char path[600];

  free(f->cfg.webhook_url);
  f->cfg.webhook_url = NULL;
  assert_null(nrd_webhook_start(&f->cfg, err, sizeof err));
  assert_non_null(strstr(err, "WEBHOOK_URL"));

  set_url(f, f->rcv);
  snprintf(path, sizeof path, "%s/db/recovery.db/not-a-dir/x.db", f->dir);
  free(f->cfg.database_path);
  f->cfg.database_path = nrd_xstrdup(path);
  err[0] = '\0';
  assert_null(nrd_webhook_start(&f->cfg, err, sizeof err));
  assert_true(strlen(err) > 0);
}

/* Scenario 1: the receiver fails the first 2 deliveries. */
static void test_retries_then_delivers_in_order(void **state)
{
  struct fx *f = *state;
  static const char *ids[] = { "evt_1", "evt_2", "evt_3" };
  struct rcv_knobs k = { .fail_first = 2 };
  rcv_set(f->rcv, &k);
  int64_t now = nrd_now_ms();
  for (size_t i = 0; i < 3; i++)
    insert_event(f, ids[i], now + (int64_t)i);

  struct nrd_webhook *wh = start(f);
  for (size_t i = 0; i < 3; i++)
    assert_true(wait_state(f, ids[i], "delivered"));
  nrd_webhook_stop(wh);

  size_t n = rcv_count(f->rcv);
  size_t ok = 0;
  assert_int_equal(n, 5);
  for (size_t i = 0; i < n; i++) {
    struct rcv_delivery d;
    assert_true(rcv_get(f->rcv, i, &d));
    check_delivery(&d, SECRET);
    if (i < 2) {
      /* The head blocks the others until it goes through. */
      assert_int_equal(d.answered, 500);
      assert_string_equal(d.id, "evt_1");
    } else {
      assert_int_equal(d.answered, 200);
      assert_string_equal(d.id, ids[ok]);
      ok++;
    }
    rcv_delivery_cleanup(&d);
  }
  assert_int_equal(ok, 3);

  struct nrd_event e;
  get_event(f, "evt_1", &e);
  assert_int_equal(e.attempts, 3);
  nrd_event_cleanup(&e);
  assert_int_equal(attempts_of(f, "evt_2"), 1);
  assert_int_equal(attempts_of(f, "evt_3"), 1);
  assert_true(metric("nrd_webhook_events_total{result=\"delivered\"}") == 3);
  assert_true(metric("nrd_webhook_events_total{result=\"retried\"}") == 2);
  assert_true(metric("nrd_webhook_events_total{result=\"dead\"}") == 0);
}

/* Scenario 2: nothing listens; events wait; a new sender delivers them. */
static void test_receiver_down_then_restart(void **state)
{
  struct fx *f = *state;
  static const char *ids[] = { "evt_a", "evt_b", "evt_c" };
  struct receiver *gone = rcv_start();
  assert_non_null(gone);
  set_url(f, gone);
  rcv_stop(gone); /* its port now refuses connections */

  int64_t t0 = nrd_now_ms();
  for (size_t i = 0; i < 3; i++)
    insert_event(f, ids[i], t0 + (int64_t)i);
  nrd_webhook_set_backoff_ms(50, 200);
  struct nrd_webhook *wh = start(f);
  assert_true(wait_attempts(f, "evt_a", 3));
  nrd_webhook_stop(wh);

  struct nrd_event e;
  get_event(f, "evt_a", &e);
  assert_string_equal(e.state, "pending");
  assert_true(e.attempts >= 3);
  assert_true(e.next_attempt_ms >= t0);
  assert_non_null(e.last_error);
  assert_non_null(strstr(e.last_error, "network"));
  nrd_event_cleanup(&e);
  for (size_t i = 1; i < 3; i++) {
    get_event(f, ids[i], &e);
    assert_string_equal(e.state, "pending");
    assert_int_equal(e.attempts, 0);
    nrd_event_cleanup(&e);
  }
  assert_true(metric("nrd_webhook_events_total{result=\"retried\"}") >= 3);
  assert_true(metric("nrd_webhook_events_total{result=\"delivered\"}") == 0);

  /* The "restarted" service: a new sender, the receiver now up. */
  set_url(f, f->rcv);
  wh = start(f);
  for (size_t i = 0; i < 3; i++)
    assert_true(wait_state(f, ids[i], "delivered"));
  nrd_webhook_stop(wh);
  assert_int_equal(rcv_count(f->rcv), 3);
  for (size_t i = 0; i < 3; i++) {
    struct rcv_delivery d;
    assert_true(rcv_get(f->rcv, i, &d));
    check_delivery(&d, SECRET);
    assert_string_equal(d.id, ids[i]);
    rcv_delivery_cleanup(&d);
  }
}

/* Scenario 3: too old -> dead, never sent; a 400 -> dead at once, the next
 * event still goes out. */
static void test_expired_and_refused_events_are_dead(void **state)
{
  struct fx *f = *state;
  struct rcv_knobs k = { .refuse_id = "evt_bad" };
  rcv_set(f->rcv, &k);
  int64_t now = nrd_now_ms();
  insert_event(f, "evt_old", now - 25LL * 3600 * 1000);
  insert_event(f, "evt_bad", now);
  insert_event(f, "evt_good", now + 1);

  struct nrd_webhook *wh = start(f);
  assert_true(wait_state(f, "evt_good", "delivered"));
  nrd_webhook_stop(wh);

  struct nrd_event e;
  get_event(f, "evt_old", &e);
  assert_string_equal(e.state, "dead");
  assert_int_equal(e.attempts, 0);
  assert_non_null(strstr(e.last_error, "WEBHOOK_MAX_AGE_HOURS"));
  nrd_event_cleanup(&e);
  get_event(f, "evt_bad", &e);
  assert_string_equal(e.state, "dead");
  assert_int_equal(e.attempts, 1);
  assert_string_equal(e.last_error, "HTTP 400");
  nrd_event_cleanup(&e);

  assert_int_equal(rcv_count(f->rcv), 2);
  struct rcv_delivery d;
  assert_true(rcv_get(f->rcv, 0, &d));
  assert_string_equal(d.id, "evt_bad");
  assert_int_equal(d.answered, 400);
  rcv_delivery_cleanup(&d);
  assert_true(rcv_get(f->rcv, 1, &d));
  assert_string_equal(d.id, "evt_good");
  check_delivery(&d, SECRET);
  rcv_delivery_cleanup(&d);
  assert_true(metric("nrd_webhook_events_total{result=\"dead\"}") == 2);
  assert_true(metric("nrd_webhook_events_total{result=\"delivered\"}") == 1);
}

/* Waits for the next failed attempt of evt_r and checks it was scheduled at
 * least min_ms after t0. */
static void check_retry_after(struct fx *f, int attempt, int64_t t0, int64_t min_ms)
{
  assert_true(wait_attempts(f, "evt_r", attempt));
  struct nrd_event e;
  get_event(f, "evt_r", &e);
  assert_string_equal(e.state, "pending");
  assert_true(e.next_attempt_ms >= t0 + min_ms);
  assert_true(e.next_attempt_ms <= nrd_now_ms() + min_ms + 5000);
  nrd_event_cleanup(&e);
}

/* 429 and 503 are retried no sooner than Retry-After (seconds or a date). */
static void test_retry_after_is_honoured(void **state)
{
  struct fx *f = *state;
  struct rcv_knobs k = { .status = 429, .retry_after = "2" };
  rcv_set(f->rcv, &k);
  nrd_webhook_set_backoff_ms(1, 1);
  insert_event(f, "evt_r", nrd_now_ms());

  int64_t t0 = nrd_now_ms();
  struct nrd_webhook *wh = start(f);
  check_retry_after(f, 1, t0, 2000);
  nrd_webhook_stop(wh);
  assert_int_equal(rcv_count(f->rcv), 1);
  assert_true(has_state(f, "evt_r", "pending"));

  /* An HTTP date 4 s ahead: at least 2 s once rounded to whole seconds. */
  char date[64];
  time_t later = time(NULL) + 4;
  struct tm tm;
  gmtime_r(&later, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  k = (struct rcv_knobs){ .status = 503, .retry_after = date };
  rcv_set(f->rcv, &k);
  assert_int_equal(nrd_store_event_mark(f->st, "evt_r", "pending", 1, 0, NULL), NRD_OK);
  t0 = nrd_now_ms();
  wh = start(f);
  check_retry_after(f, 2, t0, 2000);
  nrd_webhook_stop(wh);
  assert_int_equal(rcv_count(f->rcv), 2);
  struct nrd_event e;
  get_event(f, "evt_r", &e);
  assert_string_equal(e.last_error, "HTTP 503");
  nrd_event_cleanup(&e);
}

/* Without a secret nothing is signed; notify wakes an idle sender at once;
 * stop aborts a delivery in flight, which stays pending. */
static void test_notify_unsigned_and_stop(void **state)
{
  struct fx *f = *state;
  free(f->cfg.webhook_secret);
  f->cfg.webhook_secret = NULL;

  struct nrd_webhook *wh = start(f);
  nrd_sleep_ms(100); /* idle now, next look in ~900 ms */
  insert_event(f, "evt_n", nrd_now_ms());
  int64_t t0 = nrd_mono_ms();
  nrd_webhook_notify(wh);
  assert_true(wait_state(f, "evt_n", "delivered"));
  assert_true(nrd_mono_ms() - t0 < 400);
  struct rcv_delivery d;
  assert_true(rcv_get(f->rcv, 0, &d));
  check_delivery(&d, NULL);
  rcv_delivery_cleanup(&d);

  struct rcv_knobs k = { .delay_ms = 8000 };
  rcv_set(f->rcv, &k);
  insert_event(f, "evt_slow", nrd_now_ms());
  nrd_webhook_notify(wh);
  assert_true(wait_count(f->rcv, 2));
  t0 = nrd_mono_ms();
  nrd_webhook_stop(wh);
  assert_true(nrd_mono_ms() - t0 < 2500);
  struct nrd_event e;
  get_event(f, "evt_slow", &e);
  assert_string_equal(e.state, "pending");
  assert_int_equal(e.attempts, 0);
  nrd_event_cleanup(&e);
  nrd_webhook_notify(NULL);
  nrd_webhook_stop(NULL);
}

int main(void)
{
  /* The events here are made up by the tests, not by the service: they are
   * not held to openapi.yaml's webhooks (test_webhook_e2e's are). */
  unsetenv("NRD_WEBHOOK_LOG");
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 1;
  nrd_log_set_level(NRD_LOG_WARN);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_start_needs_url_and_database, setup, teardown),
    cmocka_unit_test_setup_teardown(test_retries_then_delivers_in_order, setup, teardown),
    cmocka_unit_test_setup_teardown(test_receiver_down_then_restart, setup, teardown),
    cmocka_unit_test_setup_teardown(test_expired_and_refused_events_are_dead, setup, teardown),
    cmocka_unit_test_setup_teardown(test_retry_after_is_honoured, setup, teardown),
    cmocka_unit_test_setup_teardown(test_notify_unsigned_and_stop, setup, teardown),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return failed;
}
