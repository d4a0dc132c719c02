/* Unit tests for the small helpers of util.h and the model cleanups. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "nrd/model.h"
#include "nrd/util.h"

static void test_buf(void **state)
{
  struct nrd_buf b;
  nrd_buf_init(&b);
  for (int i = 0; i < 1000; i++)
    nrd_buf_printf(&b, "%d,", i % 10);
  assert_int_equal(b.len, 2000);
  assert_int_equal(strlen(b.data), 2000);
  assert_memory_equal(b.data, "0,1,2,", 6);
  nrd_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  nrd_buf_append(&b, "ab\0cd", 5);
  assert_int_equal(b.len, 5);
  assert_int_equal(b.data[5], '\0');
  nrd_buf_reset(&b);
  nrd_buf_puts(&b, "x");
  char *s = nrd_buf_steal(&b);
  assert_string_equal(s, "x");
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  free(s);
  s = nrd_buf_steal(&b);  /* empty buffer still gives a string */
  assert_string_equal(s, "");
  free(s);
  nrd_buf_cleanup(&b);
}

static void json_str(const char *in, const char *expected)
{
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_json_str(&b, in);
  assert_string_equal(b.data, expected);
  nrd_buf_cleanup(&b);
}

static void test_buf_json_str(void **state)
{
  json_str("plain", "\"plain\"");
  json_str("a\"b\\c", "\"a\\\"b\\\\c\"");
  json_str("l1\nl2\r\t\b\f", "\"l1\\nl2\\r\\t\\b\\f\"");
  json_str("\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"");
  json_str("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  json_str("bad\xff", "\"bad\\ufffd\"");
  json_str("\xc3", "\"\\ufffd\"");                 /* truncated sequence */
  json_str("\xc0\xaf", "\"\\ufffd\\ufffd\"");      /* overlong */
  json_str("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");  /* surrogate */
}

static void test_iso8601(void **state)
{
  char out[32];
  nrd_iso8601(1795878000123LL, out);
  assert_string_equal(out, "2026-11-28T15:00:00.123Z");
  nrd_iso8601(0, out);
  assert_string_equal(out, "1970-01-01T00:00:00.000Z");
  nrd_iso8601(-1, out);
  assert_string_equal(out, "1969-12-31T23:59:59.999Z");
}

static void test_clocks(void **state)
{
  int64_t now = nrd_now_ms();
  assert_true(now > 1700000000000LL);
  int64_t m0 = nrd_mono_ms();
  nrd_sleep_ms(20);
  int64_t m1 = nrd_mono_ms();
  assert_true(m1 - m0 >= 20);
  assert_true(m1 - m0 < 2000);
}

static void test_random(void **state)
{
  unsigned char a[32], b[32];
  nrd_random_bytes(a, sizeof a);
  nrd_random_bytes(b, sizeof b);
  assert_memory_not_equal(a, b, sizeof a);
  double sum = 0;
  for (int i = 0; i < 10000; i++) {
    double u = nrd_random_unit();
    assert_true(u >= 0.0 && u < 1.0);
    sum += u;
  }
  assert_true(sum / 10000 > 0.45 && sum / 10000 < 0.55);
}

static void test_make_id(void **state)
{
  char a[64], b[64];
  int64_t before = nrd_now_ms();
  nrd_make_id("run", a);
  nrd_make_id("run", b);
  assert_string_not_equal(a, b);
  assert_memory_equal(a, "run_", 4);
  char *end = NULL;
  long long ms = strtoll(a + 4, &end, 10);
  assert_true(ms >= before && ms <= nrd_now_ms());
  assert_int_equal(end - (a + 4), 13);
  assert_int_equal(*end, '_');
  assert_int_equal(strlen(end + 1), 6);
  assert_int_equal(strspn(end + 1, "abcdefghijklmnopqrstuvwxyz0123456789"), 6);
}

static void test_parse_i64(void **state)
{
  int64_t v = 0;
  assert_true(nrd_parse_i64("42", 0, 100, &v));
  assert_int_equal(v, 42);
  assert_true(nrd_parse_i64("-5", -10, 10, &v));
  assert_int_equal(v, -5);
  assert_true(nrd_parse_i64("9223372036854775807", INT64_MIN, INT64_MAX, &v));
  assert_true(v == INT64_MAX);
  v = 7;
  const char *bad[] = { "", "12abc", " 12", "12 ", "abc", "-", "+", "1.5", "0x10",
                        "9223372036854775808", "-9223372036854775809" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(nrd_parse_i64(bad[i], INT64_MIN, INT64_MAX, &v));
  assert_int_equal(v, 7);  /* untouched on failure */
  assert_false(nrd_parse_i64("101", 0, 100, &v));
  assert_false(nrd_parse_i64("-1", 0, 100, &v));
  assert_false(nrd_parse_i64(NULL, 0, 100, &v));
}

static void test_parse_double(void **state)
{
  double d = 0;
  assert_true(nrd_parse_double("2.5", 0, 10, &d));
  assert_true(d == 2.5);
  assert_true(nrd_parse_double("0", 0, 10, &d));
  assert_true(nrd_parse_double(".5", 0, 10, &d));
  const char *bad[] = { "", " 1", "1 ", "nan", "inf", "1e999", "0x1p3", "1,5", "abc" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(nrd_parse_double(bad[i], -1e300, 1e300, &d));
  assert_false(nrd_parse_double("10.01", 0, 10, &d));
}

static void test_parse_bool(void **state)
{
  bool b = false;
  const char *yes[] = { "true", "TRUE", "True", "1", "yes", "YES" };
  const char *no[] = { "false", "FALSE", "0", "no", "No" };
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    b = false;
    assert_true(nrd_parse_bool(yes[i], &b));
    assert_true(b);
  }
  for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
    b = true;
    assert_true(nrd_parse_bool(no[i], &b));
    assert_false(b);
  }
  const char *bad[] = { "", "maybe", "on", "2", " true", "t" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(nrd_parse_bool(bad[i], &b));
}

static void test_ct_equal(void **state)
{
  assert_true(nrd_ct_equal("secret", 6, "secret", 6));
  assert_false(nrd_ct_equal("secret", 6, "secreT", 6));
  assert_false(nrd_ct_equal("secret", 6, "secret2", 7));
  assert_false(nrd_ct_equal("secret", 6, "", 0));
  assert_true(nrd_ct_equal("", 0, "", 0));
}

static void test_xstr(void **state)
{
  assert_null(nrd_xstrdup(NULL));
  char *s = nrd_xstrndup("abcdef", 3);
  assert_string_equal(s, "abc");
  free(s);
  s = nrd_xstrndup("ab", 10);
  assert_string_equal(s, "ab");
  free(s);
}

static void test_status_settled(void **state)
{
  const char *settled[] = { "running", "exited", "toCreate", "creating", "pulling", "starting",
                            "stopping", "somethingNew" };
  const char *transitional[] = { "migrating", "toRemove", "removing", "removed", "freezing" };
  for (size_t i = 0; i < sizeof settled / sizeof settled[0]; i++)
    assert_true(nrd_status_is_settled(settled[i]));
  for (size_t i = 0; i < sizeof transitional / sizeof transitional[0]; i++)
    assert_false(nrd_status_is_settled(transitional[i]));
  assert_false(nrd_status_is_settled(NULL));
  assert_false(nrd_status_is_settled(""));
}

static void test_model_cleanup(void **state)
{
  struct nrd_instance inst = { 0 };
  inst.id = nrd_xstrdup("i-1");
  inst.raw_json = nrd_xstrdup("{}");
  inst.n_ports = 1;
  inst.ports = nrd_xcalloc(1, sizeof *inst.ports);
  inst.ports[0].port = nrd_xstrdup("8080");
  inst.ports[0].type = nrd_xstrdup("tcp");
  inst.n_envs = 2;
  inst.envs = nrd_xcalloc(2, sizeof *inst.envs);
  inst.envs[0].key = nrd_xstrdup("K");
  inst.envs[1].value = nrd_xstrdup("V");
  inst.n_mounts = 1;
  inst.mounts = nrd_xcalloc(1, sizeof *inst.mounts);
  inst.mounts[0].mount_path = nrd_xstrdup("/data");
  inst.created_at = 5;
  nrd_instance_cleanup(&inst);
  struct nrd_instance zero = { 0 };
  assert_memory_equal(&inst, &zero, sizeof inst);  /* leaks show up under ASan/valgrind */
  nrd_instance_cleanup(&inst);                      /* twice is harmless */

  struct nrd_job job = { .id = nrd_xstrdup("j"), .error = nrd_xstrdup("e"), .created_at = 1 };
  nrd_job_cleanup(&job);
  assert_null(job.id);
  assert_int_equal(job.created_at, 0);

  struct nrd_product p = { .id = nrd_xstrdup("p"), .n_regions = 2 };
  p.regions = nrd_xcalloc(2, sizeof *p.regions);
  p.regions[0] = nrd_xstrdup("CN-HK-01 (Hong Kong)");
  nrd_product_cleanup(&p);
  assert_null(p.regions);
  assert_int_equal(p.n_regions, 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_buf),
    cmocka_unit_test(test_buf_json_str),
    cmocka_unit_test(test_iso8601),
    cmocka_unit_test(test_clocks),
    cmocka_unit_test(test_random),
    cmocka_unit_test(test_make_id),
    cmocka_unit_test(test_parse_i64),
    cmocka_unit_test(test_parse_double),
    cmocka_unit_test(test_parse_bool),
    cmocka_unit_test(test_ct_equal),
    cmocka_unit_test(test_xstr),
    cmocka_unit_test(test_status_settled),
    cmocka_unit_test(test_model_cleanup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
