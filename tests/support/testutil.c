/* Helpers shared by the tests: temp dirs, one-shot libcurl requests, the
 * CreateInstanceRequest check (the simulator's, so both agree). */

#define _XOPEN_SOURCE 700 /* nftw */

#include <ctype.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "nrd/sim.h"
#include "nrd/util.h"
#include "testutil.h"

/* A request whose answer takes longer than this fails: tests stay bounded. */
#define TU_HTTP_TIMEOUT_MS 30000L

char *tu_tempdir(void)
{
  const char *base = getenv("TMPDIR");
  struct nrd_buf b;

  if (!base || !*base)
    base = P_tmpdir;
  nrd_buf_init(&b);
  nrd_buf_printf(&b, "%s/nrd-test-XXXXXX", base);
  if (!mkdtemp(b.data)) {
    perror("mkdtemp");
    abort();
  }
  return nrd_buf_steal(&b);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  if (remove(path) != 0)
    perror(path);
  return 0;
}

void tu_rmrf(const char *path)
{
  if (path)
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    abort();
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
  nrd_buf_append(ud, p, size * n);
  return size * n;
}

static bool has_header(const char *const *headers, const char *name)
{
  size_t len = strlen(name);
  for (size_t i = 0; headers && headers[i]; i++) {
    if (strncasecmp(headers[i], name, len) == 0 && headers[i][len] == ':')
      return true;
  }
  return false;
}

/* A body without a Content-Type header in headers is sent as
 * application/json; pass "Content-Type:" to send none at all. */
int tu_http(const char *method, const char *url, const char *const *headers, const char *body,
            struct tu_resp *out)
{
  CURL *h = NULL;
  struct curl_slist *list = NULL;
  struct nrd_buf rbody, rhead;
  CURLcode rc = CURLE_FAILED_INIT;

  memset(out, 0, sizeof *out);
  nrd_buf_init(&rbody);
  nrd_buf_init(&rhead);
  pthread_once(&curl_once, curl_init_once);
  h = curl_easy_init();
  if (!h)
    goto out;
  for (size_t i = 0; headers && headers[i]; i++)
    list = curl_slist_append(list, headers[i]);
  list = curl_slist_append(list, "Expect:");
  if (body && !has_header(headers, "Content-Type"))
    list = curl_slist_append(list, "Content-Type: application/json");
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TU_HTTP_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &rbody);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &rhead);
  if (strcmp(method, "GET") == 0 && !body) {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else {
    if (strcmp(method, "POST") != 0 || !body)
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
  }
  rc = curl_easy_perform(h);
  if (rc == CURLE_OK)
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
out:
  out->body_len = rbody.len;
  out->body = nrd_buf_steal(&rbody);
  out->headers = nrd_buf_steal(&rhead);
  curl_slist_free_all(list);
  if (h)
    curl_easy_cleanup(h);
  return rc == CURLE_OK ? 0 : -1;
}

void tu_resp_cleanup(struct tu_resp *r)
{
  if (!r)
    return;
  free(r->body);
  free(r->headers);
  memset(r, 0, sizeof *r);
}

/* The last occurrence wins: after a 100 Continue the final answer's headers
 * come last. */
char *tu_header(const struct tu_resp *r, const char *name)
{
  size_t nlen = strlen(name);
  const char *line = r && r->headers ? r->headers : "";
  char *found = NULL;

  while (*line) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    if (len > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
      const char *v = line + nlen + 1;
      const char *end = line + len;
      while (v < end && (*v == ' ' || *v == '\t'))
        v++;
      while (end > v && isspace((unsigned char)end[-1]))
        end--;
      free(found);
      found = nrd_xstrndup(v, (size_t)(end - v));
    }
    if (!eol)
      break;
    line = eol + 1;
  }
  return found;
}

bool tu_check_create_request(const cJSON *req, char *why, size_t whylen)
{
  return nrd_sim_check_create_request(req, why, whylen);
}

/* The path as openapi.yaml spells it: query dropped, ids replaced by their
 * template names. */
static void path_template(const char *path, char *out, size_t outlen)
{
  static const struct {
    const char *prefix, *param;
  } ids[] = {
    { "/api/instances/migration/runs/", "{runId}" },
    { "/api/instances/migration/recoveries/", "{jobId}" },
  };
  size_t len = strcspn(path, "?");
  snprintf(out, outlen, "%.*s", (int)len, path);
  for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    size_t plen = strlen(ids[i].prefix);
    if (len <= plen || strncmp(path, ids[i].prefix, plen))
      continue;
    const char *rest = path + plen;
    size_t idlen = strcspn(rest, "/?");
    if (idlen == 0)
      continue;
    snprintf(out, outlen, "%s%s%.*s", ids[i].prefix, ids[i].param, (int)strcspn(rest + idlen, "?"),
             rest + idlen);
  }
}

void tu_record_response(const char *method, const char *path, const struct tu_resp *r)
{
  const char *file = getenv("NRD_RESPONSE_LOG");
  char tpl[1100];
  if (!file || !*file || r->status == 0)
    return;
  path_template(path, tpl, sizeof(tpl));
  char *ctype = tu_header(r, "Content-Type");
  cJSON *rec = cJSON_CreateObject();
  cJSON_AddStringToObject(rec, "method", method);
  cJSON_AddStringToObject(rec, "path", tpl);
  cJSON_AddNumberToObject(rec, "status", (double)r->status);
  if (ctype)
    cJSON_AddStringToObject(rec, "contentType", ctype);
  cJSON *body = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
  if (body)
    cJSON_AddItemToObject(rec, "body", body);
  else
    cJSON_AddStringToObject(rec, "body", r->body ? r->body : "");
  char *line = cJSON_PrintUnformatted(rec);
  size_t n = strlen(line);
  /* One write with O_APPEND: lines of parallel tests never interleave. */
  int fd = open(file, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (fd >= 0) {
    char *buf = malloc(n + 1);
    if (buf) {
      memcpy(buf, line, n);
      buf[n] = '\n';
      if (write(fd, buf, n + 1) < 0)
        perror("tu_record_response");
      free(buf);
    }
    close(fd);
  }
  cJSON_free(line);
  cJSON_Delete(rec);
  free(ctype);
}
