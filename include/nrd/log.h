#ifndef NRD_LOG_H
#define NRD_LOG_H

#include <stdbool.h>

/* One JSON object per line on stdout:
 *   {"ts":"2026-...Z","level":"info","msg":"recreated","requestId":"...","k":"v",...}
 * Fields are NULL-terminated key/value pairs of strings. A key starting with
 * '#' carries a value that is already JSON (a number, true/false), written raw
 * under the key without the '#'. A NULL value is written as null.
 * Never pass secrets (API keys, env values, image auth): there is no filter
 * here, the callers own that rule. Level is checked before the arguments are
 * evaluated (the macros). Thread-safe: a line is written whole, never mixed
 * with another thread's, and lines are written in the order they were made. */

enum nrd_log_level { NRD_LOG_ERROR = 0, NRD_LOG_WARN, NRD_LOG_INFO, NRD_LOG_DEBUG };

void nrd_log_set_level(enum nrd_log_level level);
bool nrd_log_enabled(enum nrd_log_level level);
/* Parses "error", "warn", "info", "debug"; false if unknown. */
bool nrd_log_level_parse(const char *s, enum nrd_log_level *out);
/* Where lines go (default fd 1). For tests. */
void nrd_log_set_fd(int fd);

/* Thread-local context added to each line of this thread: requestId and runId. */
void nrd_log_set_request_id(const char *request_id); /* NULL clears; copied */
void nrd_log_set_run_id(const char *run_id);         /* NULL clears; copied */

void nrd_log_write(enum nrd_log_level level, const char *msg, ...);

/* Whose fault a warn or error line is, written as its "fault" field right
 * after msg: an operator reads at once whether to fix our code, wait for
 * Novita, tell the client, or look at the disk. Lines without it are
 * notices, not faults. */
enum nrd_fault {
  NRD_FAULT_OURS = 0, /* "ours": a bug, or a limit of this service */
  NRD_FAULT_NOVITA,   /* "novita": Novita's API failed or answered nonsense */
  NRD_FAULT_CLIENT,   /* "client": a caller or the webhook receiver */
  NRD_FAULT_DISK      /* "disk": the database or its file system */
};
const char *nrd_fault_name(enum nrd_fault fault);
void nrd_log_write_fault(enum nrd_log_level level, enum nrd_fault fault, const char *msg, ...);

/* Access lines (the HTTP server's one info line per request) may be held
 * back, so a request costs no write(2) of its own. Between
 * nrd_log_buffer_start and nrd_log_buffer_stop, nrd_log_write_access keeps
 * its line in a buffer of NRD_LOG_BUFFER_BYTES, written out: when the next
 * access line would not fit; before any other line (which is then written at
 * once, so the order holds and nothing else waits); at most flush_ms after
 * the oldest held line was logged (a flusher thread); by nrd_log_flush,
 * nrd_log_set_fd, the last nrd_log_buffer_stop and at process exit. Outside
 * that window an access line is written at once, like any other.
 * Starts and stops are counted: the first start's flush_ms holds until the
 * last stop. A kill -9 loses at most flush_ms of access lines. */
#define NRD_LOG_BUFFER_BYTES ((size_t)32 * 1024)
#define NRD_LOG_FLUSH_MS 100
void nrd_log_buffer_start(int flush_ms);
void nrd_log_buffer_stop(void);
void nrd_log_flush(void);
/* An info line that may be held back (see above). */
void nrd_log_write_access(const char *msg, ...);

#define NRD_LOG(level, ...)                               \
  do {                                                    \
    if (nrd_log_enabled(level))                           \
      nrd_log_write(level, __VA_ARGS__, (const char *)0); \
  } while (0)
#define NRD_LOG_FAULT(level, fault, ...)                               \
  do {                                                                 \
    if (nrd_log_enabled(level))                                        \
      nrd_log_write_fault(level, fault, __VA_ARGS__, (const char *)0); \
  } while (0)
/* LOG_ERROR_AT(NRD_FAULT_DISK, "store: sqlite error", ...): a line with its fault. */
#define LOG_ERROR_AT(fault, ...) NRD_LOG_FAULT(NRD_LOG_ERROR, fault, __VA_ARGS__)
#define LOG_WARN_AT(fault, ...) NRD_LOG_FAULT(NRD_LOG_WARN, fault, __VA_ARGS__)
#define LOG_ERROR(...) NRD_LOG(NRD_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) NRD_LOG(NRD_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) NRD_LOG(NRD_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) NRD_LOG(NRD_LOG_DEBUG, __VA_ARGS__)
#define LOG_ACCESS(...)                                   \
  do {                                                    \
    if (nrd_log_enabled(NRD_LOG_INFO))                    \
      nrd_log_write_access(__VA_ARGS__, (const char *)0); \
  } while (0)

/* Formats an integer for a '#' field: NRD_I64(n) is a char * valid in the
 * enclosing block (compound literal). */
const char *nrd_log_i64(char buf[24], long long v);
#define NRD_I64(v) nrd_log_i64((char[24]){ 0 }, (long long)(v))
#define NRD_BOOL(v) ((v) ? "true" : "false")

#endif
