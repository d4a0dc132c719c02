/* JSON-lines logger: one object per line, one write(2) per line. */

#include "nrd/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "nrd/util.h"

static atomic_int g_level = NRD_LOG_INFO;
static atomic_int g_fd = 1;

/* Per-thread context, copied into fixed slots (set and cleared around every
 * HTTP request: no allocation). Longer values are cut. */
#define LOG_ID_MAX 160
static _Thread_local char t_request_id[LOG_ID_MAX];
static _Thread_local char t_run_id[LOG_ID_MAX];

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void nrd_log_set_level(enum nrd_log_level level)
{
  atomic_store(&g_level, (int)level);
}

bool nrd_log_enabled(enum nrd_log_level level)
{
  return (int)level <= atomic_load(&g_level);
}

bool nrd_log_level_parse(const char *s, enum nrd_log_level *out)
{
  if (!s)
    return false;
  for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (enum nrd_log_level)i;
      return true;
    }
  }
  return false;
}

void nrd_log_set_fd(int fd)
{
  atomic_store(&g_fd, fd);
}

static void set_slot(char slot[LOG_ID_MAX], const char *value)
{
  size_t n = value ? strnlen(value, LOG_ID_MAX - 1) : 0;
  memcpy(slot, value ? value : "", n);
  slot[n] = '\0';
}

void nrd_log_set_request_id(const char *request_id)
{
  set_slot(t_request_id, request_id);
}

void nrd_log_set_run_id(const char *run_id)
{
  set_slot(t_run_id, run_id);
}

static void add_field(struct nrd_buf *b, const char *key, const char *value, bool raw)
{
  nrd_buf_append(b, ",", 1);
  nrd_buf_json_str(b, key);
  nrd_buf_append(b, ":", 1);
  if (!value)
    nrd_buf_puts(b, "null");
  else if (raw)
    nrd_buf_puts(b, value);
  else
    nrd_buf_json_str(b, value);
}

static void write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return;  /* nowhere to report a failing log sink */
    }
    p += w;
    n -= (size_t)w;
  }
}

void nrd_log_write(enum nrd_log_level level, const char *msg, ...)
{
  struct nrd_buf b;
  char ts[32];
  int lv = (int)level;
  if (lv < 0 || lv > NRD_LOG_DEBUG)
    lv = NRD_LOG_ERROR;

  nrd_buf_init(&b);
  nrd_buf_reserve(&b, 512);  /* one allocation for a usual line */
  nrd_iso8601(nrd_now_ms(), ts);
  nrd_buf_puts(&b, "{\"ts\":");
  nrd_buf_json_str(&b, ts);
  nrd_buf_puts(&b, ",\"level\":");
  nrd_buf_json_str(&b, level_names[lv]);
  nrd_buf_puts(&b, ",\"msg\":");
  nrd_buf_json_str(&b, msg ? msg : "");
  if (t_request_id[0])
    add_field(&b, "requestId", t_request_id, false);
  if (t_run_id[0])
    add_field(&b, "runId", t_run_id, false);

  va_list ap;
  va_start(ap, msg);
  for (;;) {
    const char *key = va_arg(ap, const char *);
    if (!key)
      break;
    const char *value = va_arg(ap, const char *);
    bool raw = key[0] == '#';
    /* A raw value must be a non-empty token; anything else is quoted so the
     * line stays valid JSON. */
    if (raw && value && (!*value || strpbrk(value, "\r\n")))
      add_field(&b, key + 1, value, false);
    else
      add_field(&b, raw ? key + 1 : key, value, raw);
  }
  va_end(ap);
  nrd_buf_puts(&b, "}\n");

  write_all(atomic_load(&g_fd), b.data, b.len);
  nrd_buf_cleanup(&b);
}

const char *nrd_log_i64(char buf[24], long long v)
{
  /* Digits from the end, without printf (several per access line). */
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  char *p = buf + 23;
  *p = '\0';
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    *--p = '-';
  return p;
}
