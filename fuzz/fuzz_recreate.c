/* The recreation rule on an instance decoded from arbitrary JSON (as the
 * snapshot store decodes it): check, name, region, build, redact.
 * Invariants: a refusal carries a reason ending in "; instance left
 * untouched"; a buildable snapshot gives a request that passes the
 * CreateInstanceRequest check of Novita's schema (the simulator's), with
 * envs byte for byte; the redacted copy equals the request except that every
 * env value and imageAuthId is "***"; env values and image auth never show up
 * in a reason or a redacted request. */

#include <stddef.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "nrd/json.h"
#include "nrd/model.h"
#include "nrd/novita.h"
#include "nrd/recreate.h"
#include "nrd/sim.h"
#include "nrd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MS 1764345600123LL
#define TAIL "-recreated-1764345600123"
#define LEFT_ALONE "; instance left untouched"
#define ENV_MARK "zqxENVSECRETzqx"
#define AUTH_MARK "zqxAUTHSECRETzqx"

static int absent(const char *s)
{
  return !s || !*s;
}

static int ends_with(const char *s, const char *tail)
{
  size_t a = strlen(s), b = strlen(tail);
  return a >= b && memcmp(s + a - b, tail, b) == 0;
}

static void check_name(const struct nrd_instance *snap)
{
  char name[NRD_NAME_MAX + 1];

  nrd_recreate_name(snap->name, snap->id, MS, name);
  FUZZ_CHECK(strlen(name) <= NRD_NAME_MAX, "name of %zu bytes", strlen(name));
  FUZZ_CHECK(ends_with(name, TAIL), "name without the suffix: %.300s", name);
}

static void check_region(const struct nrd_instance *snap)
{
  char region[64];

  nrd_recreate_region(snap, "CN-HK-01", region);
  FUZZ_CHECK(memchr(region, '\0', sizeof region) != NULL, "region not terminated");
  FUZZ_CHECK(strchr(region, ' ') == NULL, "region with a space: %s", region);
}

/* The request with env values and image auth masked, built independently of
 * nrd_recreate_redact. */
static cJSON *expected_redaction(const cJSON *req)
{
  cJSON *copy = cJSON_Duplicate(req, 1);
  cJSON *env;

  FUZZ_CHECK(copy != NULL, "out of memory");
  if (cJSON_GetObjectItemCaseSensitive(copy, "imageAuthId"))
    cJSON_ReplaceItemInObjectCaseSensitive(copy, "imageAuthId", cJSON_CreateString("***"));
  cJSON_ArrayForEach(env, cJSON_GetObjectItemCaseSensitive(copy, "envs")) {
    if (cJSON_GetObjectItemCaseSensitive(env, "value"))
      cJSON_ReplaceItemInObjectCaseSensitive(env, "value", cJSON_CreateString("***"));
  }
  return copy;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static int utf8_ok(const unsigned char *s, size_t n)
{
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len = c < 0x80             ? 1
                 : (c & 0xE0) == 0xC0 ? 2
                 : (c & 0xF0) == 0xE0 ? 3
                 : (c & 0xF8) == 0xF0 ? 4
                                      : 0;
    uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1Fu : len == 3 ? c & 0x0Fu : c & 0x07u;
    if (len == 0 || i + len > n)
      return 0;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + k] & 0x3Fu);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

/* schema: check against Novita's schema too. Novita's lengths count
 * characters and the rule's count bytes, which agree only on well-formed
 * UTF-8 (cJSON passes any bytes through); Novita's own listings are UTF-8. */
static void check_request(const struct nrd_instance *snap, const cJSON *req, int schema)
{
  char why[256] = "";
  const cJSON *envs = cJSON_GetObjectItemCaseSensitive(req, "envs");

  FUZZ_CHECK(!schema || nrd_sim_check_create_request(req, why, sizeof why),
             "a request that passed nrd_recreate_check breaks Novita's schema: %s", why);
  FUZZ_CHECK((size_t)cJSON_GetArraySize(envs) == snap->n_envs, "env count %d, want %zu",
             cJSON_GetArraySize(envs), snap->n_envs);
  for (size_t i = 0; i < snap->n_envs; i++) {
    const cJSON *e = cJSON_GetArrayItem(envs, (int)i);
    const char *want = snap->envs[i].value ? snap->envs[i].value : "";
    FUZZ_CHECK(strcmp(nrd_json_str(e, "key"), snap->envs[i].key) == 0, "env key %zu", i);
    FUZZ_CHECK(strcmp(nrd_json_str(e, "value"), want) == 0, "env value %zu", i);
  }
  FUZZ_CHECK(!cJSON_GetObjectItemCaseSensitive(req, "imageAuthId") ||
                 strcmp(nrd_json_str(req, "imageAuthId"), snap->image_auth_id) == 0,
             "imageAuthId changed");
  cJSON *redacted = nrd_recreate_redact(req);
  cJSON *expected = expected_redaction(req);
  FUZZ_CHECK(cJSON_Compare(redacted, expected, 1), "redaction differs from the request");
  cJSON_Delete(expected);
  cJSON_Delete(redacted);
}

/* One pass of the rule (utf8: the input was well-formed UTF-8); marked: env values and image auth are the markers,
 * which must then appear nowhere in a reason or a redacted request. */
static void run_rule(const struct nrd_instance *snap, int marked, int utf8)
{
  char reason[NRD_REASON_MAX];
  char name[NRD_NAME_MAX + 1];
  bool needs = false;
  bool ok = nrd_recreate_check(snap, &needs, reason);

  FUZZ_CHECK(ok == nrd_recreate_check(snap, NULL, NULL), "answer depends on out-params");
  FUZZ_CHECK(needs == absent(snap->product_id), "needs_product %d", needs);
  FUZZ_CHECK(memchr(reason, '\0', sizeof reason) != NULL, "reason not terminated");
  if (!ok) {
    FUZZ_CHECK(ends_with(reason, LEFT_ALONE), "reason: %s", reason);
    FUZZ_CHECK(!marked || (!strstr(reason, ENV_MARK) && !strstr(reason, AUTH_MARK)),
               "a secret in the reason: %s", reason);
    return;
  }
  FUZZ_CHECK(reason[0] == '\0', "a reason on success: %s", reason);
  nrd_recreate_name(snap->name, snap->id, MS, name);
  cJSON *req = nrd_recreate_build(snap, needs ? "fallback-product" : snap->product_id, name);
  check_request(snap, req, utf8);
  if (marked) {
    cJSON *redacted = nrd_recreate_redact(req);
    char *text = nrd_json_print(redacted);
    FUZZ_CHECK(!strstr(text, ENV_MARK) && !strstr(text, AUTH_MARK),
               "a secret in the redacted request: %.300s", text);
    free(text);
    cJSON_Delete(redacted);
  }
  cJSON_Delete(req);
}

/* Replaces every env value and the image auth with the markers. */
static void mark_secrets(struct nrd_instance *snap)
{
  for (size_t i = 0; i < snap->n_envs; i++)
    nrd_instance_set_str(snap, &snap->envs[i].value, ENV_MARK);
  if (snap->image_auth_id)
    nrd_instance_set_str(snap, &snap->image_auth_id, AUTH_MARK);
}

/* True when the n bytes at s contain "zqx", the markers' common part. */
static int holds_marker(const char *s, size_t n)
{
  for (size_t i = 0; s && i + 3 <= n; i++) {
    if (memcmp(s + i, "zqx", 3) == 0)
      return 1;
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct nrd_instance snap;
  cJSON *obj = nrd_json_parse((const char *)data, size);

  if (!obj)
    return 0;
  nrd_nv_decode_instance(obj, &snap);
  cJSON_Delete(obj);

  check_name(&snap);
  check_region(&snap);
  int utf8 = utf8_ok(data, size);
  run_rule(&snap, 0, utf8);
  /* The markers prove absence only when the input cannot spell them. */
  if (!holds_marker((const char *)data, size) &&
      !holds_marker(snap.raw_json, snap.raw_json ? strlen(snap.raw_json) : 0)) {
    mark_secrets(&snap);
    run_rule(&snap, 1, utf8);
  }
  nrd_instance_cleanup(&snap);
  return 0;
}
