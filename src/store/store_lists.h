#ifndef NRD_STORE_LISTS_H
#define NRD_STORE_LISTS_H

/* An instance's list fields (ports, envs, volume mounts, tools) as the JSON
 * text both store backends keep in a column, and read back. Shared by
 * src/store (SQLite) and src/store/pg. */

#include <stdbool.h>

#include "nrd/model.h"
#include "nrd/util.h"

/* The list as JSON text written into b (reset here); the text, borrowed from
 * b, or NULL when the instance did not carry the list. */
const char *store_list_ports_json(const struct nrd_instance *in, struct nrd_buf *b);
const char *store_list_envs_json(const struct nrd_instance *in, struct nrd_buf *b);
const char *store_list_mounts_json(const struct nrd_instance *in, struct nrd_buf *b);
const char *store_list_tools_json(const struct nrd_instance *in, struct nrd_buf *b);

/* Reads a stored column into out (the list marked present); false when the
 * text is not a JSON array: a broken database. */
bool store_list_read_ports(const char *text, struct nrd_instance *out);
bool store_list_read_envs(const char *text, struct nrd_instance *out);
bool store_list_read_mounts(const char *text, struct nrd_instance *out);
bool store_list_read_tools(const char *text, struct nrd_instance *out);

#endif
