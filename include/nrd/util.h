#ifndef NRD_UTIL_H
#define NRD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Small helpers every layer uses. Allocation failure of small internal buffers
 * aborts the process (xmalloc and friends): there is no sane way on. */

/* Result codes: one convention for every prototype (STYLE, habit 5: return
 * a status, hand results back through out-parameters).
 *   - A question or a conversion (parse, check, compare) returns bool: true
 *     when the answer is yes or the value was read (nrd_parse_i64).
 *   - An action returns 0 when it was done and -1 when it was refused or
 *     failed (nrd_pool_submit, nrd_sim_load, the Novita decoders). 0 always
 *     means "done", never "no row" or "nothing happened".
 *   - An action whose caller must tell its outcomes apart returns a named
 *     enum whose 0 is "done" (enum nrd_store_rc: NRD_OK, NRD_NONE for no
 *     such row, NRD_BUSY, NRD_ERR; enum nrd_nv_rc). Other outcomes that are
 *     not failures are positive and named in the prototype's comment
 *     (nrd_nv_decode_instance_runs: 1 when its callback stopped it).
 *   - A constructor returns the object, or NULL with err (errlen bytes) saying
 *     why; objects that cannot fail but for memory abort instead.
 *   - Process exit statuses (sysexits.h) belong to src/main.c alone.
 * Error details travel in an err buffer or struct, never in the code. */

void *nrd_xmalloc(size_t n);
void *nrd_xcalloc(size_t n, size_t size);
void *nrd_xrealloc(void *p, size_t n);
/* Gives the allocator's free pages back to the system (after a phase that
 * freed much: the peak RSS of what follows starts lower). */
void nrd_memory_trim(void);
char *nrd_xstrdup(const char *s); /* NULL in, NULL out */
char *nrd_xstrndup(const char *s, size_t n);

/* Growable byte buffer, always NUL-terminated. init/cleanup: caller-owned struct. */
struct nrd_buf {
  char *data;
  size_t len, cap;
};
void nrd_buf_init(struct nrd_buf *b);
void nrd_buf_cleanup(struct nrd_buf *b);
void nrd_buf_reset(struct nrd_buf *b);
void nrd_buf_append(struct nrd_buf *b, const void *p, size_t n);
/* Makes room for extra more bytes, so that many small appends allocate once. */
void nrd_buf_reserve(struct nrd_buf *b, size_t extra);
void nrd_buf_puts(struct nrd_buf *b, const char *s);
void nrd_buf_printf(struct nrd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal with quotes and escapes. */
void nrd_buf_json_str(struct nrd_buf *b, const char *s);
/* Hands the data over (caller frees with free); leaves b empty. */
char *nrd_buf_steal(struct nrd_buf *b);

int64_t nrd_now_ms(void);  /* wall clock, Unix epoch milliseconds */
int64_t nrd_mono_ms(void); /* monotonic milliseconds */
void nrd_sleep_ms(int64_t ms);
/* "2026-11-28T15:20:00.123Z" into out (at least 25 bytes). */
void nrd_iso8601(int64_t epoch_ms, char out[32]);

/* Random bytes from the OS (getrandom); aborts if none can be had. */
void nrd_random_bytes(void *out, size_t n);
/* Uniform double in [0, 1). Thread-safe. */
double nrd_random_unit(void);
/* "<prefix>_<epoch ms>_<6 chars [a-z0-9]>", e.g. "run_1764345600123_k3j9x2". */
void nrd_make_id(const char *prefix, char out[64]);

/* Strict parsers: whole string, no sign surprises, range checked. */
bool nrd_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
bool nrd_parse_double(const char *s, double min, double max, double *out);
/* true/false/1/0/yes/no, case-insensitive. */
bool nrd_parse_bool(const char *s, bool *out);

/* The name of enum value v in names (n entries, indexed by value): "unknown"
 * when v is out of range or has no name. NRD_ENUM_NAME takes n from the array. */
const char *nrd_enum_name(const char *const *names, size_t n, unsigned v);
#define NRD_ENUM_NAME(names, v) \
  nrd_enum_name((names), sizeof(names) / sizeof((names)[0]), (unsigned)(v))

/* Constant-time comparison of two byte strings (length differences leak only length). */
bool nrd_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
