/* Small helpers: aborting allocators, a growable buffer, clocks, randomness,
 * identifiers, strict number parsers, constant-time comparison. */

#include "nrd/util.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

static void oom(size_t n)
{
  fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
  abort();
}

void *nrd_xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p)
    oom(n);
  return p;
}

void *nrd_xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p)
    oom(n * size);
  return p;
}

void *nrd_xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (!q)
    oom(n);
  return q;
}

void nrd_memory_trim(void)
{
  malloc_trim(0);
}

char *nrd_xstrdup(const char *s)
{
  if (!s)
    return NULL;
  return nrd_xstrndup(s, strlen(s));
}

char *nrd_xstrndup(const char *s, size_t n)
{
  if (!s)
    return NULL;
  size_t len = strnlen(s, n);
  char *p = nrd_xmalloc(len + 1);
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

/* ---- growable buffer ---- */

void nrd_buf_init(struct nrd_buf *b)
{
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

void nrd_buf_cleanup(struct nrd_buf *b)
{
  free(b->data);
  nrd_buf_init(b);
}

void nrd_buf_reset(struct nrd_buf *b)
{
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

/* Makes room for extra more bytes plus the terminating NUL. */
void nrd_buf_reserve(struct nrd_buf *b, size_t extra)
{
  if (extra > SIZE_MAX - b->len - 1)
    oom(SIZE_MAX);
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  b->data = nrd_xrealloc(b->data, cap);
  b->cap = cap;
}

void nrd_buf_append(struct nrd_buf *b, const void *p, size_t n)
{
  nrd_buf_reserve(b, n);
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void nrd_buf_puts(struct nrd_buf *b, const char *s)
{
  nrd_buf_append(b, s, strlen(s));
}

void nrd_buf_printf(struct nrd_buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    va_end(ap2);
    return;
  }
  nrd_buf_reserve(b, (size_t)n);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (at most avail bytes), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
  unsigned char c = s[0];
  size_t len;
  unsigned cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1Fu;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0Fu;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (avail < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3Fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF)
    return 0;
  return len;
}

/* 1 for a byte a JSON string carries as it is: printable ASCII other than
 * '"' (0x22) and '\\' (0x5C). Bytes from 0x80 are 0 (UTF-8 is checked). */
static const unsigned char json_plain[256] = {
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
  1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, /* 0x70 */
};

/* The same test on eight bytes at once: zero when all eight are plain
 * (non-zero may also mean a plain byte next to one that is not). Bytes
 * below 0x20 wrap past 0x7F in the subtraction; 0x80 and up are caught by
 * their own high bit; '"', '\\' and DEL by the zero-byte test of x ^ c. */
static uint64_t json_word_special(uint64_t x)
{
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  uint64_t quote = x ^ (ones * '"'), slash = x ^ (ones * '\\'), del = x ^ (ones * 0x7F);
  uint64_t zero = ((quote - ones) & ~quote) | ((slash - ones) & ~slash) | ((del - ones) & ~del);
  return (zero | (x - ones * 0x20) | x) & highs;
}

/* Copies the run of plain bytes from p[i] (at most to end) to *o; returns
 * where it stops. Most of what is logged and sent is plain: it goes eight
 * bytes at a time, the rest byte by byte (no call for a short run). */
static size_t json_plain_copy(const unsigned char *p, size_t i, size_t end, char **o)
{
  char *w = *o;
  uint64_t x;
  while (end - i >= 8) {
    memcpy(&x, p + i, 8);
    if (json_word_special(x))
      break;
    memcpy(w, &x, 8);
    w += 8;
    i += 8;
  }
  while (i < end && json_plain[p[i]])
    *w++ = (char)p[i++];
  *o = w;
  return i;
}

/* Writes the escape of the byte (or UTF-8 sequence) at p[i] that is not
 * plain to o; returns how many input bytes it took. */
static size_t json_escape_at(const unsigned char *p, size_t i, size_t n, char **o)
{
  static const char hex[] = "0123456789abcdef";
  unsigned char c = p[i];
  size_t used = 1;
  char *w = *o;

  if (c == '"' || c == '\\') {
    *w++ = '\\';
    *w++ = (char)c;
  } else if (c < 0x20 || c == 0x7F) {
    const char *short_esc = NULL;
    switch (c) {
    case '\n':
      short_esc = "\\n";
      break;
    case '\r':
      short_esc = "\\r";
      break;
    case '\t':
      short_esc = "\\t";
      break;
    case '\b':
      short_esc = "\\b";
      break;
    case '\f':
      short_esc = "\\f";
      break;
    default:
      break;
    }
    if (short_esc) {
      memcpy(w, short_esc, 2);
      w += 2;
    } else {
      char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF] };
      memcpy(w, esc, 6);
      w += 6;
    }
  } else {
    used = utf8_seq_len(p + i, n - i);
    if (used == 0) {
      memcpy(w, "\\ufffd", 6); /* invalid byte: replacement character */
      w += 6;
      used = 1;
    } else {
      memcpy(w, p + i, used);
      w += used;
    }
  }
  *o = w;
  return used;
}

void nrd_buf_json_str(struct nrd_buf *b, const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s), i = 0;
  /* Up to 256 input bytes at a time, written straight into room for their
   * worst case (6 output bytes each; a UTF-8 sequence that runs past the
   * chunk is copied as it is, fewer bytes than that), and the quotes. */
  nrd_buf_reserve(b, (n < 256 ? n : 256) * 6 + 2);
  char *o = b->data + b->len;
  *o++ = '"';
  while (i < n) {
    size_t end = n - i > 256 ? i + 256 : n;
    if (i > 0) {
      b->len = (size_t)(o - b->data);
      nrd_buf_reserve(b, (end - i) * 6 + 1);
      o = b->data + b->len;
    }
    while (i < end) {
      i = json_plain_copy(p, i, end, &o);
      if (i < end)
        i += json_escape_at(p, i, n, &o);
    }
  }
  *o++ = '"';
  *o = '\0';
  b->len = (size_t)(o - b->data);
}

char *nrd_buf_steal(struct nrd_buf *b)
{
  char *p = b->data ? b->data : nrd_xstrdup("");
  nrd_buf_init(b);
  return p;
}

/* ---- time ---- */

static int64_t clock_ms(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t nrd_now_ms(void)
{
  return clock_ms(CLOCK_REALTIME);
}

int64_t nrd_mono_ms(void)
{
  return clock_ms(CLOCK_MONOTONIC);
}

void nrd_sleep_ms(int64_t ms)
{
  if (ms <= 0)
    return;
  struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* The second last formatted by this thread: every log line has a time, and
 * most lines fall in the same second as the one before. */
static _Thread_local int64_t t_iso_secs = INT64_MIN;
static _Thread_local char t_iso_text[26]; /* leaves room for ".mmmZ" in 32 */
static _Thread_local size_t t_iso_len;

void nrd_iso8601(int64_t epoch_ms, char out[32])
{
  int64_t secs = epoch_ms / 1000;
  int64_t ms = epoch_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  if (secs != t_iso_secs) {
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
      snprintf(out, 32, "1970-01-01T00:00:00.000Z");
      return;
    }
    t_iso_len = strftime(t_iso_text, sizeof t_iso_text, "%Y-%m-%dT%H:%M:%S", &tm);
    t_iso_secs = secs;
  }
  memcpy(out, t_iso_text, t_iso_len);
  char *p = out + t_iso_len;
  p[0] = '.';
  p[1] = (char)('0' + ms / 100);
  p[2] = (char)('0' + ms / 10 % 10);
  p[3] = (char)('0' + ms % 10);
  p[4] = 'Z';
  p[5] = '\0';
}

/* ---- randomness ---- */

void nrd_random_bytes(void *out, size_t n)
{
  unsigned char *p = out;
  while (n > 0) {
    ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR)
        continue;
      fprintf(stderr, "fatal: getrandom failed\n");
      abort();
    }
    p += got;
    n -= (size_t)got;
  }
}

double nrd_random_unit(void)
{
  uint64_t r;
  nrd_random_bytes(&r, sizeof r);
  return (double)(r >> 11) * (1.0 / 9007199254740992.0); /* 53 bits / 2^53 */
}

/* Ids need to be unique, not secret: a per-thread xorshift64 seeded once
 * from getrandom saves a system call per id (one per HTTP request). */
static _Thread_local uint64_t t_id_state;

void nrd_make_id(const char *prefix, char out[64])
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  char suffix[7];
  while (t_id_state == 0)
    nrd_random_bytes(&t_id_state, sizeof t_id_state);
  uint64_t x = t_id_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  t_id_state = x;
  for (size_t i = 0; i < 6; i++) {
    suffix[i] = alphabet[x % 36];
    x /= 36;
  }
  suffix[6] = '\0';
  /* prefix (at most 40 bytes) _ ms _ suffix, without printf (one per request) */
  const char *pre = prefix ? prefix : "id";
  size_t n = strnlen(pre, 40);
  char ms[24];
  char *digits = ms + sizeof ms;
  uint64_t now = (uint64_t)nrd_now_ms();
  do {
    *--digits = (char)('0' + now % 10);
    now /= 10;
  } while (now);
  size_t dn = (size_t)(ms + sizeof ms - digits);
  memcpy(out, pre, n);
  out[n] = '_';
  memcpy(out + n + 1, digits, dn);
  out[n + 1 + dn] = '_';
  memcpy(out + n + 2 + dn, suffix, 7);
}

/* ---- strict parsers ---- */

/* The number's first character after an optional sign, or NULL when there
 * is no number text at all. */
static const char *after_sign(const char *s)
{
  if (!s || !*s)
    return NULL;
  return *s == '-' || *s == '+' ? s + 1 : s;
}

bool nrd_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
  const char *p = after_sign(s);
  if (!p || *p < '0' || *p > '9')
    return false; /* rejects "", "-", leading spaces, "+-1" */
  errno = 0;
  char *end = NULL;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || !end || *end != '\0')
    return false;
  if (v < min || v > max)
    return false;
  *out = (int64_t)v;
  return true;
}

bool nrd_parse_double(const char *s, double min, double max, double *out)
{
  const char *p = after_sign(s);
  if (!p || ((*p < '0' || *p > '9') && *p != '.'))
    return false; /* rejects spaces, "inf", "nan", hex is caught below */
  if (strchr(s, 'x') || strchr(s, 'X'))
    return false;
  errno = 0;
  char *end = NULL;
  double v = strtod(s, &end);
  if (errno != 0 || !end || *end != '\0' || !isfinite(v))
    return false;
  if (v < min || v > max)
    return false;
  *out = v;
  return true;
}

bool nrd_parse_bool(const char *s, bool *out)
{
  static const struct {
    const char *text;
    bool value;
  } words[] = {
    { "true", true },   { "1", true },  { "yes", true },
    { "false", false }, { "0", false }, { "no", false },
  };
  if (!s)
    return false;
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
    if (strcasecmp(s, words[i].text) == 0) {
      *out = words[i].value;
      return true;
    }
  }
  return false;
}

const char *nrd_enum_name(const char *const *names, size_t n, unsigned v)
{
  return v < n && names[v] ? names[v] : "unknown";
}

bool nrd_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
  const volatile unsigned char *x = a;
  const volatile unsigned char *y = b;
  size_t n = alen < blen ? alen : blen;
  unsigned char diff = (unsigned char)(alen != blen);
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char)(x[i] ^ y[i]);
  return diff == 0;
}
