/* JSON-lines logger: one object per line. Every line is written under one
 * mutex, so lines never mix and keep their order; access lines may wait in a
 * bounded buffer (below), every other line is written at once. */

#include "nrd/log.h"
#include "nrd/thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "nrd/util.h"

static atomic_int g_level = NRD_LOG_INFO;
static int g_fd = 1; /* under g_out_mu */

/* Held access lines. Why: the access line's own write(2) was one of three
 * syscalls per keep-alive request of /health (strace: recvfrom, sendmsg,
 * write), against a bare libmicrohttpd server's two; held, a busy server
 * writes ~100 access lines per write. Bounds: at most NRD_LOG_BUFFER_BYTES
 * are held, and a line waits at most flush_ms (NRD_LOG_FLUSH_MS, 100 ms, for
 * the server) plus a thread wake-up: the flusher sleeps until a line arrives
 * in an empty buffer, then until that deadline (no wake-ups while idle).
 * Every write happens under g_out_mu, which orders every line of the
 * process. */
static pthread_mutex_t g_out_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_held[NRD_LOG_BUFFER_BYTES];
static size_t g_held_len;
static bool g_holding;      /* a flusher runs: access lines may be held */
static bool g_flusher_idle; /* it waits for a line, without a deadline */
static bool g_flusher_quit;
static int g_flush_ms;
static pthread_cond_t g_flush_cv; /* CLOCK_MONOTONIC */
static pthread_t g_flusher;

/* Serializes start and stop (and the join); never taken under g_out_mu. */
static pthread_mutex_t g_life_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned g_starts;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

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

static void write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return; /* nowhere to report a failing log sink */
    }
    p += w;
    n -= (size_t)w;
  }
}

/* Under g_out_mu. */
static void flush_locked(void)
{
  if (g_held_len == 0)
    return;
  write_all(g_fd, g_held, g_held_len);
  g_held_len = 0;
}

void nrd_log_flush(void)
{
  pthread_mutex_lock(&g_out_mu);
  flush_locked();
  pthread_mutex_unlock(&g_out_mu);
}

void nrd_log_set_fd(int fd)
{
  pthread_mutex_lock(&g_out_mu);
  flush_locked(); /* held lines go where they were meant to go */
  g_fd = fd;
  pthread_mutex_unlock(&g_out_mu);
}

/* Writes one finished line, or holds it (access lines while a flusher
 * runs). Any other line first writes what is held: in one write with it
 * when both fit in the buffer. */
static void emit(const char *line, size_t n, bool access)
{
  pthread_mutex_lock(&g_out_mu);
  if (access && g_holding) {
    if (g_held_len + n > sizeof g_held)
      flush_locked();
    if (n <= sizeof g_held) {
      memcpy(g_held + g_held_len, line, n);
      g_held_len += n;
      if (g_flusher_idle) {
        g_flusher_idle = false;
        pthread_cond_signal(&g_flush_cv);
      }
      pthread_mutex_unlock(&g_out_mu);
      return;
    }
  }
  if (g_held_len > 0 && g_held_len + n <= sizeof g_held) {
    memcpy(g_held + g_held_len, line, n);
    g_held_len += n;
    flush_locked();
  } else {
    flush_locked();
    write_all(g_fd, line, n);
  }
  pthread_mutex_unlock(&g_out_mu);
}

static void deadline_after(struct timespec *ts, int ms)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Sleeps until a line is held, then writes the buffer flush_ms later (or
 * sooner, when it is asked to quit). */
static void *flusher_main(void *arg)
{
  pthread_mutex_lock(&g_out_mu);
  while (!g_flusher_quit) {
    if (g_held_len == 0) {
      g_flusher_idle = true;
      pthread_cond_wait(&g_flush_cv, &g_out_mu);
      continue;
    }
    /* The oldest held line arrived at most a wake-up ago. A buffer written
     * and filled again meanwhile keeps this deadline: earlier, never later. */
    struct timespec deadline;
    deadline_after(&deadline, g_flush_ms);
    while (!g_flusher_quit && g_held_len > 0 &&
           pthread_cond_timedwait(&g_flush_cv, &g_out_mu, &deadline) != ETIMEDOUT) {
    }
    flush_locked();
  }
  g_flusher_idle = false;
  pthread_mutex_unlock(&g_out_mu);
  return NULL;
}

/* Under g_life_mu: ends the flusher, if one runs; from then on access
 * lines are written at once. What is held stays held. */
static void end_flusher(void)
{
  bool join;

  pthread_mutex_lock(&g_out_mu);
  join = g_holding;
  g_holding = false;
  g_flusher_quit = true;
  pthread_cond_signal(&g_flush_cv);
  pthread_mutex_unlock(&g_out_mu);
  if (join)
    pthread_join(g_flusher, NULL);
}

/* A process that exits with a flusher running: the thread ends (no thread
 * left behind at exit) and what is held is written. */
static void flush_at_exit(void)
{
  pthread_mutex_lock(&g_life_mu);
  end_flusher();
  pthread_mutex_unlock(&g_life_mu);
  nrd_log_flush();
}

static void init_once(void)
{
  nrd_cond_init_mono(&g_flush_cv);
  atexit(flush_at_exit);
}

void nrd_log_buffer_start(int flush_ms)
{
  pthread_once(&g_once, init_once);
  pthread_mutex_lock(&g_life_mu);
  if (g_starts++ == 0) {
    pthread_mutex_lock(&g_out_mu);
    g_flush_ms = flush_ms > 0 ? flush_ms : 1;
    g_flusher_quit = false;
    g_flusher_idle = false;
    g_holding = pthread_create(&g_flusher, NULL, flusher_main, NULL) == 0;
    pthread_mutex_unlock(&g_out_mu); /* without a flusher nothing is held */
  }
  pthread_mutex_unlock(&g_life_mu);
}

void nrd_log_buffer_stop(void)
{
  pthread_mutex_lock(&g_life_mu);
  if (g_starts > 0 && --g_starts == 0)
    end_flusher();
  pthread_mutex_unlock(&g_life_mu);
  nrd_log_flush();
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

/* Appends n bytes. A usual line fits the room reserved for it at the
 * start, so a piece is a copy without a call (a line has some twenty). */
static void put(struct nrd_buf *b, const char *s, size_t n)
{
  if (b->cap - b->len <= n)
    nrd_buf_reserve(b, n);
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}
#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

static void add_field(struct nrd_buf *b, const char *key, const char *value, bool raw)
{
  PUT_LIT(b, ",");
  nrd_buf_json_str(b, key);
  PUT_LIT(b, ":");
  if (!value)
    PUT_LIT(b, "null");
  else if (raw)
    put(b, value, strlen(value));
  else
    nrd_buf_json_str(b, value);
}

/* Formats one line into b (empty, caller-owned). */
static void format_line(struct nrd_buf *b, enum nrd_log_level level, const char *fault,
                        const char *msg, va_list ap)
{
  char ts[32];
  int lv = (int)level;
  if (lv < 0 || lv > NRD_LOG_DEBUG)
    lv = NRD_LOG_ERROR;

  nrd_buf_reserve(b, 512); /* one allocation for a usual line */
  nrd_iso8601(nrd_now_ms(), ts);
  /* The time, the level and the context keys are plain text: written
   * without escaping. */
  PUT_LIT(b, "{\"ts\":\"");
  put(b, ts, strlen(ts));
  PUT_LIT(b, "\",\"level\":\"");
  put(b, level_names[lv], strlen(level_names[lv]));
  PUT_LIT(b, "\",\"msg\":");
  nrd_buf_json_str(b, msg ? msg : "");
  if (fault) {
    PUT_LIT(b, ",\"fault\":\"");
    put(b, fault, strlen(fault));
    PUT_LIT(b, "\"");
  }
  if (t_request_id[0]) {
    PUT_LIT(b, ",\"requestId\":");
    nrd_buf_json_str(b, t_request_id);
  }
  if (t_run_id[0]) {
    PUT_LIT(b, ",\"runId\":");
    nrd_buf_json_str(b, t_run_id);
  }

  for (;;) {
    const char *key = va_arg(ap, const char *);
    if (!key)
      break;
    const char *value = va_arg(ap, const char *);
    bool raw = key[0] == '#';
    /* A raw value must be a non-empty token; anything else is quoted so the
     * line stays valid JSON. */
    if (raw && value && (!*value || strpbrk(value, "\r\n")))
      add_field(b, key + 1, value, false);
    else
      add_field(b, raw ? key + 1 : key, value, raw);
  }
  PUT_LIT(b, "}\n");
}

/* Formats one line and writes it (access: it may be held back). */
static void write_line(enum nrd_log_level level, const char *fault, bool access, const char *msg,
                       va_list ap)
{
  struct nrd_buf b;

  nrd_buf_init(&b);
  format_line(&b, level, fault, msg, ap);
  emit(b.data, b.len, access);
  nrd_buf_cleanup(&b);
}

void nrd_log_write(enum nrd_log_level level, const char *msg, ...)
{
  va_list ap;

  va_start(ap, msg);
  write_line(level, NULL, false, msg, ap);
  va_end(ap);
}

const char *nrd_fault_name(enum nrd_fault fault)
{
  static const char *const names[] = { "ours", "novita", "client", "disk" };
  unsigned f = (unsigned)fault;
  return f < sizeof names / sizeof names[0] ? names[f] : "ours";
}

void nrd_log_write_fault(enum nrd_log_level level, enum nrd_fault fault, const char *msg, ...)
{
  va_list ap;

  va_start(ap, msg);
  write_line(level, nrd_fault_name(fault), false, msg, ap);
  va_end(ap);
}

void nrd_log_write_access(const char *msg, ...)
{
  va_list ap;

  va_start(ap, msg);
  write_line(NRD_LOG_INFO, NULL, true, msg, ap);
  va_end(ap);
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
