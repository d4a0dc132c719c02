#ifndef NRD_TESTUTIL_H
#define NRD_TESTUTIL_H

/* Helpers shared by the tests. Include after <cmocka.h>'s prerequisites. */

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* A fresh directory under $TMPDIR (or /tmp); caller frees the string and may
 * remove the tree with tu_rmrf. Aborts on failure. */
char *tu_tempdir(void);
void tu_rmrf(const char *path);

/* One HTTP request with libcurl. headers: NULL-terminated "Name: value" list
 * (may be NULL). body may be NULL. Returns 0 when an HTTP answer came. */
struct tu_resp {
  long status;
  char *body; /* NUL-terminated */
  size_t body_len;
  char *headers; /* raw response headers */
};
int tu_http(const char *method, const char *url, const char *const *headers, const char *body,
            struct tu_resp *out);
void tu_resp_cleanup(struct tu_resp *r);
/* The value of a response header (case-insensitive name), heap, or NULL. */
char *tu_header(const struct tu_resp *r, const char *name);

/* When NRD_RESPONSE_LOG names a file, appends one JSON line for a response
 * of the service: {method, path (as openapi.yaml's template), status,
 * contentType, body}. The deploy suite validates the file against
 * openapi.yaml after the integration tests (tests/CMakeLists.txt). */
void tu_record_response(const char *method, const char *path, const struct tu_resp *r);

/* Checks a create request against CreateInstanceRequest of
 * ../shared/reference/novita-api.yaml (required fields, types, ranges,
 * enums, envs <= 100, ports a string, no unknown fields). */
bool tu_check_create_request(const cJSON *req, char *why, size_t whylen);

#endif
