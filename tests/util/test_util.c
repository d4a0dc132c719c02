/* Unit tests for the small helpers of util.h and the model cleanups. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
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
  s = nrd_buf_steal(&b); /* empty buffer still gives a string */
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
  json_str("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
           "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  json_str("bad\xff", "\"bad\\ufffd\"");
  json_str("\xc3", "\"\\ufffd\"");                       /* truncated sequence */
  json_str("\xc0\xaf", "\"\\ufffd\\ufffd\"");            /* overlong */
  json_str("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
}

/* What nrd_buf_json_str must write, one byte at a time, from the rules:
 * '"' and '\\' escaped, \n \r \t \b \f short, other controls and DEL as
 * \u00xx, valid UTF-8 (no overlong form, no surrogate, at most U+10FFFF)
 * kept, every other byte \ufffd. */
static size_t ref_utf8_len(const unsigned char *s, size_t avail)
{
  unsigned c = s[0], cp, len;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (avail < len)
    return 0;
  for (unsigned i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3Fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

static void ref_json_str(struct nrd_buf *b, const char *in)
{
  const unsigned char *p = (const unsigned char *)in;
  size_t n = strlen(in);
  nrd_buf_puts(b, "\"");
  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c == '"' || c == '\\') {
      char esc[2] = { '\\', (char)c };
      nrd_buf_append(b, esc, 2);
    } else if (c == '\n') {
      nrd_buf_puts(b, "\\n");
    } else if (c == '\r') {
      nrd_buf_puts(b, "\\r");
    } else if (c == '\t') {
      nrd_buf_puts(b, "\\t");
    } else if (c == '\b') {
      nrd_buf_puts(b, "\\b");
    } else if (c == '\f') {
      nrd_buf_puts(b, "\\f");
    } else if (c < 0x20 || c == 0x7F) {
      nrd_buf_printf(b, "\\u%04x", c);
    } else if (c < 0x80) {
      nrd_buf_append(b, &c, 1);
    } else {
      size_t len = ref_utf8_len(p + i, n - i);
      if (len == 0) {
        nrd_buf_puts(b, "\\ufffd");
      } else {
        nrd_buf_append(b, p + i, len);
        i += len;
        continue;
      }
    }
    i++;
  }
  nrd_buf_puts(b, "\"");
}

/* nrd_buf_json_str(in) appended to a buffer that already holds a prefix
 * equals the reference. */
static void json_str_as_ref(const char *in)
{
  struct nrd_buf got, want;
  nrd_buf_init(&got);
  nrd_buf_init(&want);
  nrd_buf_puts(&got, "p:");
  nrd_buf_puts(&want, "p:");
  nrd_buf_json_str(&got, in);
  ref_json_str(&want, in);
  assert_int_equal(got.len, want.len);
  assert_string_equal(got.data, want.data);
  assert_int_equal(got.data[got.len], '\0');
  nrd_buf_cleanup(&got);
  nrd_buf_cleanup(&want);
}

/* Plain text is copied in runs (eight bytes at a time) and in chunks of 256
 * input bytes: every byte value at every offset of a short string, and the
 * escapes and multi-byte sequences around the edges of runs and chunks. */
static void test_buf_json_str_runs(void **state)
{
  char s[1100];
  for (int c = 1; c < 256; c++) {
    for (size_t pos = 0; pos < 20; pos++) {
      memset(s, 'a', 20);
      s[20] = '\0';
      s[pos] = (char)c;
      json_str_as_ref(s);
      s[pos + 1] = '\0'; /* at the very end */
      json_str_as_ref(s);
    }
  }

  for (size_t len = 0; len < 48; len++) { /* output that ends exactly at the room reserved */
    memset(s, '\x01', len);
    s[len] = '\0';
    json_str_as_ref(s);
  }

  static const char *const specials[] = {
    "\"",           "\\",
    "\n",           "\x01",
    "\x1f",         "\x7f",
    "\x80",         "\xff",
    "\xc3",         "\xc3\xa9",
    "\xe2\x82\xac", "\xf0\x9f\x98\x80",
    "\xed\xa0\x80", "\xf4\x90\x80\x80",
    "\xe2\x82",
  };
  static const size_t lens[] = { 7, 8, 9, 15, 16, 17, 255, 256, 257, 300, 512, 513, 1030 };
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
    size_t len = lens[li];
    memset(s, 'x', len);
    s[len] = '\0';
    json_str_as_ref(s); /* one long plain run */
    memset(s, '\x01', len);
    json_str_as_ref(s); /* the worst case: six output bytes for each */
    for (size_t si = 0; si < sizeof specials / sizeof specials[0]; si++) {
      size_t sl = strlen(specials[si]);
      for (size_t pos = 0; pos + sl <= len; pos++) {
        bool edge = pos < 10 || pos + sl + 10 > len || (pos + 6 >= 256 && pos <= 258) ||
                    (pos + 6 >= 512 && pos <= 514) || (pos % 8) == 7;
        if (!edge)
          continue;
        memset(s, 'x', len);
        memcpy(s + pos, specials[si], sl);
        json_str_as_ref(s);
      }
    }
  }
}

/* Random strings, mostly plain with every kind of byte among them. */
static void test_buf_json_str_random(void **state)
{
  uint64_t seed = 0x9e3779b97f4a7c15u;
  char s[700];
  for (int round = 0; round < 3000; round++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    size_t len = (size_t)(seed % 600);
    for (size_t i = 0; i < len; i++) {
      seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
      unsigned r = (unsigned)(seed >> 32);
      unsigned char c = (unsigned char)(r % 4 ? 0x20 + (r >> 8) % 0x5F : 1 + (r >> 8) % 255);
      s[i] = (char)c;
    }
    s[len] = '\0';
    json_str_as_ref(s);
  }
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
  const char *bad[] = { "",
                        "12abc",
                        " 12",
                        "12 ",
                        "abc",
                        "-",
                        "+",
                        "1.5",
                        "0x10",
                        "9223372036854775808",
                        "-9223372036854775809" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_false(nrd_parse_i64(bad[i], INT64_MIN, INT64_MAX, &v));
  assert_int_equal(v, 7); /* untouched on failure */
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
  const char *settled[] = { "running", "exited",   "toCreate", "creating",
                            "pulling", "starting", "stopping", "somethingNew" };
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
  assert_memory_equal(&inst, &zero, sizeof inst); /* leaks show up under ASan/valgrind */
  nrd_instance_cleanup(&inst);                    /* twice is harmless */

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
    cmocka_unit_test(test_buf_json_str_runs),
    cmocka_unit_test(test_buf_json_str_random),
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
