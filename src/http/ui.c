/* The operator console: GET /, /ui and /ui/ answer its page, /ui/{file} its
 * stylesheet, script and icon, /openapi.yaml the API description. Static
 * files embedded at build time (cmake/embed_ui.cmake); no token (the page
 * holds no data: it asks the API, with the token, from the browser). */

#include <string.h>

#include "http_internal.h"
#include "nrd/util.h"
#include "ui_files.h"

/* A strict policy: the page's own script and stylesheet only, API calls to
 * this origin only, no inline script or style, no framing, no plugins. */
static const char *const ui_headers[] = {
  "Content-Security-Policy",
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
  "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
  "frame-ancestors 'none'",
  "X-Content-Type-Options",
  "nosniff",
  "Referrer-Policy",
  "no-referrer",
  "X-Frame-Options",
  "DENY",
  "Cross-Origin-Opener-Policy",
  "same-origin",
  NULL
};

static const struct nrd_ui_file *ui_find(const char *path)
{
  for (unsigned i = 0; i < nrd_ui_files_count; i++) {
    if (strcmp(nrd_ui_files[i].path, path) == 0)
      return &nrd_ui_files[i];
  }
  return NULL;
}

static enum http_handler_rc serve_file(const char *path, struct http_reply *out)
{
  const struct nrd_ui_file *f = ui_find(path);

  if (!f) {
    http_error(out, HTTP_E_NOT_FOUND, NULL, NULL);
    return HTTP_REPLY;
  }
  http_reply_json(out, 200, nrd_xstrndup(f->data, f->len));
  out->content_type = f->content_type;
  out->headers = ui_headers;
  return HTTP_REPLY;
}

enum http_handler_rc http_h_ui_index(struct http_ctx *c, struct http_reply *out)
{
  return serve_file("/ui/index.html", out);
}

enum http_handler_rc http_h_ui_file(struct http_ctx *c, struct http_reply *out)
{
  char path[HTTP_MAX_PATH + 8];

  if (strlen(c->params[0]) > HTTP_MAX_PATH) {
    http_error(out, HTTP_E_NOT_FOUND, NULL, NULL);
    return HTTP_REPLY;
  }
  memcpy(path, "/ui/", 4);
  memcpy(path + 4, c->params[0], strlen(c->params[0]) + 1);
  return serve_file(path, out);
}

enum http_handler_rc http_h_openapi(struct http_ctx *c, struct http_reply *out)
{
  return serve_file("/openapi.yaml", out);
}
