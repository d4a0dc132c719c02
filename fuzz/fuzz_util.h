#ifndef NRD_FUZZ_UTIL_H
#define NRD_FUZZ_UTIL_H

/* Shared by the fuzz targets: an invariant check that aborts (libFuzzer then
 * saves the input as a crash) and a few tree helpers. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define FUZZ_CHECK(cond, ...)                                                        \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "invariant broken at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                  \
      fputc('\n', stderr);                                                           \
      abort();                                                                       \
    }                                                                                \
  } while (0)

/* Nesting depth of a parsed tree: a scalar is 0, [] is 1. Recursive: cJSON
 * itself refuses nesting over 1000 levels, so this stays shallow enough. */
static inline int fuzz_tree_depth(const cJSON *node)
{
  int max = 0;
  const cJSON *it;

  if (!cJSON_IsArray(node) && !cJSON_IsObject(node))
    return 0;
  cJSON_ArrayForEach(it, node) {
    int d = fuzz_tree_depth(it);
    if (d > max)
      max = d;
  }
  return max + 1;
}

/* True when any object member at any depth has a key for which bad(key) holds. */
static inline int fuzz_any_key(const cJSON *node, int (*bad)(const char *key))
{
  const cJSON *it;

  cJSON_ArrayForEach(it, node) {
    if (cJSON_IsObject(node) && it->string && bad(it->string))
      return 1;
    if (fuzz_any_key(it, bad))
      return 1;
  }
  return 0;
}

#endif
