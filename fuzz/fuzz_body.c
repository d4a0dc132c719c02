/* The request-body checks of src/http (body.c) as check-failed and abandon
 * use them. Input: the first line is the Content-Type header ("" when the
 * header is absent; an input without a newline has no header), the rest is
 * the body. Invariants: a refusal is 400 or 415 with the JSON error shape; an
 * acceptance is an object (or nothing for an empty body) whose members are
 * exactly the allowed fields with their types. */

#include <stddef.h>
#include <stdint.h>

#include "fuzz_util.h"
#include "http_internal.h"
#include "nrd/json.h"

/* An accepted body has one meaning: no member repeated at any depth. */
static void check_no_repeats(const cJSON *node)
{
  for (const cJSON *a = node ? node->child : NULL; a; a = a->next) {
    if (cJSON_IsObject(node))
      for (const cJSON *b = a->next; b; b = b->next)
        FUZZ_CHECK(strcmp(a->string, b->string) != 0, "accepted a repeated member %s", a->string);
    check_no_repeats(a);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The tables of check-failed and of the abandon route. */
static const struct http_field check_failed_fields[] = {
  { "immediate", HTTP_FIELD_BOOL },
  { "dryRun", HTTP_FIELD_BOOL },
};
static const struct http_field abandon_fields[] = {
  { "reason", HTTP_FIELD_STRING },
};

static void check_error_reply(const struct http_reply *r, const char *const *codes)
{
  cJSON *j;
  const cJSON *err;
  const char *code;
  int known = 0;

  FUZZ_CHECK(r->body != NULL, "refusal without a body");
  j = nrd_json_parse(r->body, strlen(r->body));
  FUZZ_CHECK(cJSON_IsObject(j), "error body is not JSON: %.200s", r->body);
  FUZZ_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "success")), "success not false");
  err = cJSON_GetObjectItem(j, "error");
  code = nrd_json_str(err, "code");
  FUZZ_CHECK(code != NULL, "no error code");
  FUZZ_CHECK(nrd_json_str(err, "message") != NULL, "no error message");
  for (const char *const *c = codes; *c; c++)
    known |= strcmp(code, *c) == 0;
  FUZZ_CHECK(known, "unexpected code %s", code);
  cJSON_Delete(j);
}

static void check_fields(const cJSON *obj, const struct http_field *fields, size_t n)
{
  static const char *const codes[] = { "UNKNOWN_FIELD", "INVALID_FIELD", NULL };
  struct http_reply r = { 0 };
  const cJSON *item;
  int expect_ok = 1;

  cJSON_ArrayForEach(item, obj) {
    int found = 0;
    for (size_t i = 0; i < n; i++) {
      if (item->string && strcmp(item->string, fields[i].name) == 0) {
        found = 1;
        if (fields[i].type == HTTP_FIELD_BOOL ? !cJSON_IsBool(item) : !cJSON_IsString(item))
          expect_ok = 0;
      }
    }
    if (!found)
      expect_ok = 0;
  }
  if (http_body_fields(obj, fields, n, &r) == 0) {
    FUZZ_CHECK(expect_ok, "a body with a wrong or unknown field was accepted");
    FUZZ_CHECK(r.body == NULL && r.status == 0, "acceptance filled a reply");
  } else {
    FUZZ_CHECK(!expect_ok, "a good body was refused: %.200s", r.body ? r.body : "");
    FUZZ_CHECK(r.status == 400, "status %u", r.status);
    check_error_reply(&r, codes);
  }
  http_reply_cleanup(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *const parse_codes[] = { "UNSUPPORTED_MEDIA_TYPE", "INVALID_JSON",
                                             "INVALID_BODY", "DUPLICATE_FIELD", NULL };
  const char *nl = memchr(data, '\n', size);
  char *ctype = NULL;
  const char *body = (const char *)data;
  size_t len = size;
  struct http_reply r = { 0 };
  cJSON *json = NULL;

  if (nl) {
    size_t clen = (size_t)(nl - (const char *)data);
    ctype = malloc(clen + 1);
    FUZZ_CHECK(ctype != NULL, "out of memory");
    memcpy(ctype, data, clen);
    ctype[clen] = '\0';
    body = nl + 1;
    len = size - clen - 1;
  }
  /* The body buffer as the server holds it: exactly len bytes, no NUL. */
  char *copy = malloc(len ? len : 1);
  FUZZ_CHECK(copy != NULL, "out of memory");
  memcpy(copy, body, len);

  if (http_body_parse(ctype, copy, len, &json, &r) == 0) {
    FUZZ_CHECK(r.body == NULL && r.status == 0, "acceptance filled a reply");
    FUZZ_CHECK(len > 0 || json == NULL, "an empty body gave an object");
    FUZZ_CHECK(len == 0 || cJSON_IsObject(json), "accepted a non-object");
    FUZZ_CHECK(len == 0 || http_content_type_ok(ctype), "accepted a bad media type");
    check_no_repeats(json);
    check_fields(json, check_failed_fields,
                 sizeof check_failed_fields / sizeof check_failed_fields[0]);
    check_fields(json, abandon_fields, sizeof abandon_fields / sizeof abandon_fields[0]);
  } else {
    FUZZ_CHECK(json == NULL, "refusal left an object");
    FUZZ_CHECK(len > 0, "an empty body was refused");
    FUZZ_CHECK(r.status == (http_content_type_ok(ctype) ? 400u : 415u), "status %u", r.status);
    check_error_reply(&r, parse_codes);
  }
  http_reply_cleanup(&r);
  cJSON_Delete(json);
  free(copy);
  free(ctype);
  return 0;
}
