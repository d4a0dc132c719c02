/* Framing refusals, decided from the request head before any body is read:
 * a request whose length is not known for sure (a header name with a space
 * before its colon, a folded header line, Content-Length together with
 * Transfer-Encoding, Content-Length values that disagree or are not a
 * number) is refused with 400 BAD_FRAMING; a Transfer-Encoding other than
 * chunked with 501; an HTTP/1.0 request that carries a body without
 * Content-Length with 411; two Authorization headers with 401. Each of these
 * answers closes the connection, so what follows on it is never read as a
 * request of its own. libmicrohttpd (0.9.75) accepts every one of these
 * shapes itself, whatever its strict level. */

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "http_internal.h"

struct head_scan {
  unsigned n_cl, n_te, n_auth;
  bool cl_differ, cl_bad, name_space, folded;
  const char *cl, *te;
};

static bool all_digits(const char *s)
{
  if (!*s)
    return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return false;
  return true;
}

static bool has_space(const char *s)
{
  return strpbrk(s, " \t") != NULL;
}

/* A name that starts like a framing header but goes on: libmicrohttpd
 * (0.9.75) appends a folded line to the header's name ("Content-Length:\r\n
 * 15" reads as "Content-Length15" with an empty value). */
static bool extends(const char *key, const char *name)
{
  size_t n = strlen(name);
  return strlen(key) > n && strncasecmp(key, name, n) == 0;
}

/* The name and the value stand in libmicrohttpd's read buffer with the colon
 * between them. A folded line is appended to the name: written over the
 * colon, the name reaches into the value; longer, the name is moved
 * elsewhere in the connection's memory and no longer precedes its value. */
static bool name_not_before_value(const char *key, const char *value)
{
  uintptr_t k = (uintptr_t)key, v = (uintptr_t)value;
  return v <= k + strlen(key);
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
  struct head_scan *h = cls;
  const char *v = value ? value : "";

  (void)kind;
  if (has_space(key))
    h->name_space = true;
  if (strchr(v, '\r') || strchr(v, '\n') || name_not_before_value(key, v) ||
      extends(key, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
      extends(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) ||
      extends(key, MHD_HTTP_HEADER_AUTHORIZATION))
    h->folded = true;
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
    if (!all_digits(v))
      h->cl_bad = true;
    if (h->cl && strcmp(h->cl, v) != 0)
      h->cl_differ = true;
    h->cl = v;
    h->n_cl++;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
    h->te = v;
    h->n_te++;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0) {
    h->n_auth++;
  }
  return MHD_YES;
}

/* "chunked", any case, spaces around allowed; nothing else. */
static bool te_is_chunked(const char *te)
{
  size_t n;

  te += strspn(te, " \t");
  if (strncasecmp(te, "chunked", 7) != 0)
    return false;
  te += 7;
  n = strspn(te, " \t");
  return te[n] == '\0';
}

static bool method_has_body(const char *method)
{
  return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
}

bool http_framing_refusal(struct MHD_Connection *conn, const char *method, const char *version,
                          bool token_checked, struct http_reply *out)
{
  struct head_scan h = { 0 };

  MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_header, &h);
  if (h.name_space || h.folded) {
    http_error(out, HTTP_E_BAD_FRAMING,
               "a header name with a space before its colon, or a folded header line", NULL);
  } else if (h.n_cl > 0 && h.n_te > 0) {
    http_error(out, HTTP_E_BAD_FRAMING, "both Content-Length and Transfer-Encoding", NULL);
  } else if (h.cl_differ || h.cl_bad) {
    http_error(out, HTTP_E_BAD_FRAMING, "Content-Length values disagree or are not a number", NULL);
  } else if (h.n_te > 1 || (h.n_te == 1 && !te_is_chunked(h.te))) {
    http_error(out, HTTP_E_NOT_IMPLEMENTED, NULL, NULL);
  } else if (strcmp(version, MHD_HTTP_VERSION_1_0) == 0 && method_has_body(method) && h.n_cl == 0) {
    http_error(out, HTTP_E_LENGTH_REQUIRED, NULL, NULL);
  } else if (token_checked && h.n_auth > 1) {
    http_error(out, HTTP_E_UNAUTHORIZED, "more than one Authorization header", NULL);
  } else {
    return false;
  }
  return true;
}
