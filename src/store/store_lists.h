#ifndef NRD_STORE_LISTS_H
#define NRD_STORE_LISTS_H

/* An instance's list fields (ports, envs, volume mounts, tools) as the JSON
 * text both store backends keep in a column, and read back. Shared by
 * src/store (SQLite) and src/store/pg. */

#include <stdbool.h>

#include "nrd/model.h"
#include "nrd/util.h"

/* The lists of an instance. */
enum store_list { STORE_LIST_PORTS, STORE_LIST_ENVS, STORE_LIST_MOUNTS, STORE_LIST_TOOLS };

/* The list as JSON text written into b (reset here); the text, borrowed from
 * b, or NULL when the instance did not carry the list. */
const char *store_list_json(const struct nrd_instance *in, enum store_list which,
                            struct nrd_buf *b);

/* Reads a stored column into out (the list marked present); false when the
 * text is not a JSON array: a broken database. */
bool store_list_read(const char *text, enum store_list which, struct nrd_instance *out);

#endif
