/* nrd_json_parse's guards on arbitrary bytes: whatever it accepts is nested
 * at most NRD_JSON_MAX_DEPTH deep and is exactly one JSON value (only
 * whitespace after it); and it accepts every input that cJSON parses whole
 * within that depth (measured here on cJSON's own tree). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "nrd/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool only_space(const char *p, const char *end)
{
  for (; p < end; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
      return false;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* An exact-size copy, so ASan sees any read past the end. */
  char *buf = malloc(size ? size : 1);
  const char *end = NULL;
  FUZZ_CHECK(buf != NULL, "out of memory");
  memcpy(buf, data, size);

  cJSON *ours = nrd_json_parse(buf, size);
  cJSON *plain = cJSON_ParseWithLengthOpts(buf, size, &end, false);
  bool whole = plain && only_space(end, buf + size);
  int depth = plain ? fuzz_tree_depth(plain) : 0;

  if (ours) {
    FUZZ_CHECK(fuzz_tree_depth(ours) <= NRD_JSON_MAX_DEPTH, "accepted depth %d",
               fuzz_tree_depth(ours));
    FUZZ_CHECK(whole, "accepted trailing bytes or what cJSON refuses");
    /* printed, not cJSON_Compare: that one is exponential in the depth */
    char *a = cJSON_PrintUnformatted(ours), *b = cJSON_PrintUnformatted(plain);
    FUZZ_CHECK(a && b && strcmp(a, b) == 0, "differs from cJSON's tree");
    cJSON_free(a);
    cJSON_free(b);
  } else {
    FUZZ_CHECK(!whole || depth > NRD_JSON_MAX_DEPTH, "refused a whole document of depth %d", depth);
  }
  cJSON_Delete(plain);
  cJSON_Delete(ours);
  free(buf);
  return 0;
}
