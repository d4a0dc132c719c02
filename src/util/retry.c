/* Retry timing: Retry-After in both its forms, backoff with full jitter. */
#define _XOPEN_SOURCE 700 /* strptime */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "nrd/retry.h"
#include "nrd/util.h"

void nrd_retry_after_header(const char *line, size_t n, char value[64])
{
  static const char name[] = "Retry-After:";
  const size_t nlen = sizeof(name) - 1;
  if (n > 5 && !strncmp(line, "HTTP/", 5)) {
    value[0] = '\0'; /* a new response (after a 1xx) */
    return;
  }
  if (n <= nlen || strncasecmp(line, name, nlen))
    return;
  const char *v = line + nlen;
  const char *end = line + n;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  size_t len = (size_t)(end - v);
  if (len >= 64)
    len = 0; /* longer than any date or delay: ignore it */
  memcpy(value, v, len);
  value[len] = '\0';
}

/* An HTTP date in any of the three forms RFC 9110 names; -1 if none fits. */
static int64_t http_date_ms(const char *v)
{
  static const char *const forms[] = {
    "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate */
    "%A, %d-%b-%y %H:%M:%S GMT", /* RFC 850 */
    "%a %b %e %H:%M:%S %Y",      /* asctime */
  };
  for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(v, forms[i], &tm);
    if (end && *end == '\0')
      return (int64_t)timegm(&tm) * 1000;
  }
  return -1;
}

int64_t nrd_retry_after_ms(const char *value, int64_t now_ms, int64_t cap_ms)
{
  int64_t secs, ms;
  if (!value || !*value)
    return -1;
  if (nrd_parse_i64(value, 0, INT64_MAX, &secs)) {
    ms = secs > cap_ms / 1000 ? cap_ms : secs * 1000;
  } else {
    int64_t when = http_date_ms(value);
    if (when < 0)
      return -1;
    ms = when - now_ms;
  }
  if (ms < 0)
    ms = 0;
  return ms > cap_ms ? cap_ms : ms;
}

int64_t nrd_backoff_ms(unsigned exponent, int64_t base_ms, int64_t cap_ms)
{
  double ceiling = (double)base_ms;
  for (unsigned i = 0; i < exponent && ceiling < (double)cap_ms; i++)
    ceiling *= 2;
  if (ceiling > (double)cap_ms)
    ceiling = (double)cap_ms;
  return (int64_t)(nrd_random_unit() * (ceiling + 1));
}
