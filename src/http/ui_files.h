#ifndef NRD_HTTP_UI_FILES_H
#define NRD_HTTP_UI_FILES_H

/* The operator console's static files and openapi.yaml, embedded at build
 * time from ui/ and openapi.yaml by cmake/embed_ui.cmake. Private to
 * src/http. */

#include <stddef.h>

struct nrd_ui_file {
  const char *path;         /* "/ui/app.js", "/openapi.yaml" */
  const char *content_type; /* "text/javascript; charset=utf-8", ... */
  const char *data;         /* the whole file, NUL-terminated */
  size_t len;
};

extern const struct nrd_ui_file nrd_ui_files[];
extern const unsigned nrd_ui_files_count;

#endif
