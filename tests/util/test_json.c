/* Unit tests for the depth-checked parser and the typed readers of json.h. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"

static cJSON *parse(const char *s)
{
  return nrd_json_parse(s, strlen(s));
}

/* depth opening brackets, then closing ones. */
static char *nested(int depth, char open, char close)
{
  char *s = nrd_xmalloc((size_t)depth * 2 + 1);
  memset(s, open, (size_t)depth);
  memset(s + depth, close, (size_t)depth);
  s[depth * 2] = '\0';
  return s;
}

static void test_depth_limit(void **state)
{
  char *ok = nested(NRD_JSON_MAX_DEPTH, '[', ']');
  cJSON *j = parse(ok);
  assert_non_null(j);
  cJSON_Delete(j);
  free(ok);

  char *deep = nested(NRD_JSON_MAX_DEPTH + 1, '[', ']');
  assert_null(parse(deep));
  free(deep);

  /* Very deep input is refused before cJSON recurses into it. */
  char *huge = nested(200000, '[', ']');
  assert_null(parse(huge));
  free(huge);

  /* Brackets inside strings, also after escaped quotes, do not count. */
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_puts(&b, "{\"k\":\"\\\"");
  for (int i = 0; i < 200; i++)
    nrd_buf_puts(&b, "[{");
  nrd_buf_puts(&b, "\\\\\",\"n\":1}");
  j = nrd_json_parse(b.data, b.len);
  assert_non_null(j);
  int64_t n = 0;
  assert_true(nrd_json_i64(j, "n", &n));
  assert_int_equal(n, 1);
  cJSON_Delete(j);
  nrd_buf_cleanup(&b);
}

static void test_parse_with_length(void **state)
{
  /* Not NUL-terminated: only len bytes count. */
  const char buf[] = "{\"a\":1}garbage";
  cJSON *j = nrd_json_parse(buf, 7);
  assert_non_null(j);
  cJSON_Delete(j);
  assert_null(nrd_json_parse("{\"a\":", 5));
  assert_null(nrd_json_parse("", 0));
  assert_null(nrd_json_parse(NULL, 3));
  assert_null(parse("<html>502</html>"));
}

static void test_getters(void **state)
{
  cJSON *j = parse("{\"s\":\"text\",\"e\":\"\",\"n\":8080,\"f\":2.5,\"ns\":\"42\",\"fs\":\"0.25\","
                   "\"bad\":\"12abc\",\"t\":true,\"z\":null,\"o\":{},\"a\":[1],\"big\":1e300,"
                   "\"neg\":-3,\"frac\":1.5}");
  assert_non_null(j);

  assert_string_equal(nrd_json_str(j, "s"), "text");
  assert_string_equal(nrd_json_str(j, "e"), "");
  assert_null(nrd_json_str(j, "n"));
  assert_null(nrd_json_str(j, "missing"));
  assert_null(nrd_json_str(j, "z"));
  assert_null(nrd_json_str_nonempty(j, "e"));
  assert_string_equal(nrd_json_str_nonempty(j, "s"), "text");

  int64_t i = 0;
  assert_true(nrd_json_i64(j, "n", &i));
  assert_int_equal(i, 8080);
  assert_true(nrd_json_i64(j, "ns", &i));
  assert_int_equal(i, 42);
  assert_true(nrd_json_i64(j, "neg", &i));
  assert_int_equal(i, -3);
  i = 99;
  assert_false(nrd_json_i64(j, "frac", &i));
  assert_false(nrd_json_i64(j, "bad", &i));
  assert_false(nrd_json_i64(j, "big", &i));
  assert_false(nrd_json_i64(j, "t", &i));
  assert_false(nrd_json_i64(j, "z", &i));
  assert_false(nrd_json_i64(j, "missing", &i));
  assert_int_equal(i, 99);

  double d = 0;
  assert_true(nrd_json_double(j, "f", &d));
  assert_true(d == 2.5);
  assert_true(nrd_json_double(j, "fs", &d));
  assert_true(d == 0.25);
  assert_true(nrd_json_double(j, "n", &d));
  assert_true(d == 8080);
  assert_false(nrd_json_double(j, "bad", &d));
  assert_false(nrd_json_double(j, "o", &d));

  bool b = false;
  assert_true(nrd_json_bool(j, "t", &b));
  assert_true(b);
  assert_false(nrd_json_bool(j, "n", &b));
  assert_false(nrd_json_bool(j, "s", &b));

  char *t = nrd_json_scalar_text(j, "n");
  assert_string_equal(t, "8080");
  free(t);
  t = nrd_json_scalar_text(j, "f");
  assert_string_equal(t, "2.5");
  free(t);
  t = nrd_json_scalar_text(j, "s");
  assert_string_equal(t, "text");
  free(t);
  t = nrd_json_scalar_text(j, "neg");
  assert_string_equal(t, "-3");
  free(t);
  assert_null(nrd_json_scalar_text(j, "t"));
  assert_null(nrd_json_scalar_text(j, "z"));
  assert_null(nrd_json_scalar_text(j, "o"));
  assert_null(nrd_json_scalar_text(j, "a"));
  assert_null(nrd_json_scalar_text(j, "missing"));
  cJSON_Delete(j);

  cJSON *one = parse("{\"g\":1,\"h\":0.1}");
  t = nrd_json_scalar_text(one, "g");
  assert_string_equal(t, "1");
  free(t);
  t = nrd_json_scalar_text(one, "h");
  assert_string_equal(t, "0.1");
  free(t);
  cJSON_Delete(one);
}

static void test_not_an_object(void **state)
{
  cJSON *arr = parse("[1,2]");
  int64_t i;
  bool b;
  double d;
  assert_null(nrd_json_str(NULL, "k"));
  assert_null(nrd_json_str(arr, "k"));
  assert_false(nrd_json_i64(NULL, "k", &i));
  assert_false(nrd_json_double(arr, "k", &d));
  assert_false(nrd_json_bool(NULL, "k", &b));
  assert_null(nrd_json_scalar_text(NULL, "k"));
  cJSON_Delete(arr);
}

static void test_build_and_print(void **state)
{
  cJSON *o = cJSON_CreateObject();
  nrd_json_add_str(o, "name", "a\"b");
  nrd_json_add_str(o, "skipped", NULL);
  nrd_json_add_num(o, "n", 3);
  nrd_json_add_bool(o, "ok", true);
  char *s = nrd_json_print(o);
  assert_string_equal(s, "{\"name\":\"a\\\"b\",\"n\":3,\"ok\":true}");
  free(s);
  cJSON_Delete(o);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_depth_limit),     cmocka_unit_test(test_parse_with_length),
    cmocka_unit_test(test_getters),         cmocka_unit_test(test_not_an_object),
    cmocka_unit_test(test_build_and_print),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
