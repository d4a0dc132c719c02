/* nrd_webhook_sign against known HMAC-SHA256 vectors (RFC 4231). */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nrd/webhook.h"

static void test_rfc4231_case2(void **state)
{
  (void)state;
  static const char body[] = "what do ya want for nothing?";
  char sig[72];
  memset(sig, 'x', sizeof sig);
  nrd_webhook_sign("Jefe", body, strlen(body), sig);
  assert_string_equal(sig,
                      "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_empty_key_and_body(void **state)
{
  (void)state;
  char sig[72];
  nrd_webhook_sign("", "", 0, sig);
  assert_string_equal(sig,
                      "sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* The length is what is signed, not the string up to a NUL. */
static void test_length_counts(void **state)
{
  (void)state;
  char whole[72], part[72], again[72];
  static const char body[] = "{\"id\":\"evt_1\"}";
  nrd_webhook_sign("k", body, strlen(body), whole);
  nrd_webhook_sign("k", body, strlen(body) - 1, part);
  nrd_webhook_sign("k", body, strlen(body), again);
  assert_string_not_equal(whole, part);
  assert_string_equal(whole, again);
  assert_int_equal(strlen(whole), 71);
  for (size_t i = 7; i < 71; i++)
    assert_true((whole[i] >= '0' && whole[i] <= '9') || (whole[i] >= 'a' && whole[i] <= 'f'));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_rfc4231_case2),
    cmocka_unit_test(test_empty_key_and_body),
    cmocka_unit_test(test_length_counts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
