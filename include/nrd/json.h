#ifndef NRD_JSON_H
#define NRD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Type-checked readers over untrusted cJSON trees. None of them crash on a
 * NULL object, a missing key, null, or a value of another type. */

#define NRD_JSON_MAX_DEPTH 64

/* Parses at most len bytes (not NUL-terminated). Refuses nesting deeper than
 * NRD_JSON_MAX_DEPTH before cJSON sees it (cJSON recurses). NULL on error. */
cJSON *nrd_json_parse(const char *buf, size_t len);

/* The string at key, or NULL if missing or not a string. Borrowed. */
const char *nrd_json_str(const cJSON *obj, const char *key);
/* Like nrd_json_str, but "" counts as missing too. */
const char *nrd_json_str_nonempty(const cJSON *obj, const char *key);
/* A string, or a number printed as text (integers without ".0"), heap-owned;
 * NULL for missing, null, bools, objects, arrays. */
char *nrd_json_scalar_text(const cJSON *obj, const char *key);
/* A number printed as short as it round-trips, integers without a fraction
 * (as nrd_json_scalar_text prints one), heap-owned; NULL when not finite. */
char *nrd_json_number_text(double v);
/* An integer from a number or a numeric string; false otherwise. */
bool nrd_json_i64(const cJSON *obj, const char *key, int64_t *out);
/* A double from a number or a numeric string; false otherwise. */
bool nrd_json_double(const cJSON *obj, const char *key, double *out);
/* true/false only; false when missing or another type. */
bool nrd_json_bool(const cJSON *obj, const char *key, bool *out);

/* A new empty object or array; like every allocator here they abort when
 * memory is out (nrd_xcalloc), so callers never test for NULL. */
cJSON *nrd_json_object(void);
cJSON *nrd_json_array(void);
/* item, or abort when it is NULL (a cJSON constructor out of memory). */
cJSON *nrd_json_checked(cJSON *item);

/* Prints unformatted; caller frees with free(). Aborts on allocation failure. */
char *nrd_json_print(const cJSON *item);

/* Adds, aborting on allocation failure; a NULL string adds nothing. */
void nrd_json_add_str(cJSON *obj, const char *key, const char *s);
void nrd_json_add_num(cJSON *obj, const char *key, double v);
void nrd_json_add_bool(cJSON *obj, const char *key, bool v);

#endif
