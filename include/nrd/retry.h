#ifndef NRD_RETRY_H
#define NRD_RETRY_H

#include <stddef.h>
#include <stdint.h>

/* Retry timing shared by the outbound HTTP callers (Novita, webhooks). */

/* For a curl HEADERFUNCTION: a status line ("HTTP/...") clears value, a
 * Retry-After line stores its trimmed value (ignored when longer than fits). */
void nrd_retry_after_header(const char *line, size_t n, char value[64]);

/* Milliseconds to wait for a Retry-After value: delay-seconds, or an HTTP
 * date (IMF-fixdate, RFC 850 or asctime form) measured from now_ms; capped at
 * cap_ms, never negative. -1 when value is empty or unusable. */
int64_t nrd_retry_after_ms(const char *value, int64_t now_ms, int64_t cap_ms);

/* Exponential backoff with full jitter: uniform in
 * [0, min(cap_ms, base_ms * 2^exponent)]. */
int64_t nrd_backoff_ms(unsigned exponent, int64_t base_ms, int64_t cap_ms);

#endif
