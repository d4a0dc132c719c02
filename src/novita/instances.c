/* The decoder of instance pages: one pass over the body, no tree.
 *
 * Parsing a page into a cJSON tree, cutting the secrets out of the tree and
 * printing each instance back cost many times the instructions, and a tree
 * several times the size of the page (the figures: BENCHMARKS.md, "Figures
 * behind the code"); this reader validates the body once, reads the fields
 * of nrd_instance as it goes, and writes each instance's raw JSON (compact,
 * secrets cut at any depth) while it reads it.
 *
 * Untrusted input: the reader accepts a subset of what cJSON accepts (the
 * grammar cJSON implements, with strict \u escapes and NRD_JSON_MAX_DEPTH),
 * decodes strings and numbers exactly as cJSON does (strtod on the same
 * characters, C strings cut at an escaped NUL), and reads the first
 * occurrence of a key as cJSON_GetObjectItemCaseSensitive does. So the raw
 * JSON it writes parses back with cJSON, and a key seen as a secret here is
 * the key cJSON sees there. Raw control bytes inside strings, which cJSON
 * tolerates, are written escaped. */

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "nrd/json.h"
#include "nrd/novita.h"
#include "nrd/util.h"

/* Timestamps above this are taken as milliseconds (seconds would be past
 * the year 5000), and brought back to seconds. */
#define NV_MS_THRESHOLD 100000000000LL

struct scan {
  const char *p, *end;
  int depth;
  struct nrd_buf *out;    /* raw JSON written here when not NULL */
  const char *flush;      /* with out: the input up to here is written */
  const char *key;        /* the current member's key, as cJSON sees it: */
  size_t key_len;         /* cut at a NUL; in the body or in key_buf */
  struct nrd_buf key_buf; /* the decoded key, when it has escapes */
  struct nrd_buf text;    /* the decoded text of the last escaped string */
  struct nrd_buf raw;     /* the raw JSON of the instance being read */
  bool in_instance;       /* reading an instance: its strings go to strs */
  struct nrd_buf strs;    /* the instance's strings, NUL-terminated, one after
                              another; its fields hold offsets + 1 until the
                              instance is read (then they point into one block) */
};

enum vtype { V_OTHER, V_NULL, V_NUM, V_STR };

/* What a value was, for the fields read. */
struct capture {
  enum vtype type;
  double num;
  const char *raw; /* V_STR without escapes: its text in the body */
  size_t raw_len;
  bool escaped; /* V_STR with escapes: decoded in scan.text */
};

/* Fields read from an object: the first member of each name counts, as
 * cJSON_GetObjectItemCaseSensitive finds it. */
enum field_kind {
  F_STR,
  F_SCALAR,
  F_EPOCH,
  F_PORTS,
  F_ENVS,
  F_MOUNTS,
  F_TOOLS,
  F_NETWORK,
  F_INSTANCES,
  F_TOTAL
};
struct field {
  const char *name;
  size_t len; /* strlen(name) */
  enum field_kind kind;
  size_t off; /* of the char * (or int64_t) in the struct read into */
};

/* The page being read. With a run function, the items are handed over
 * every run_max of them, and the list starts again. */
struct page {
  struct nrd_instance *items;
  size_t n, cap;
  bool instances_ok; /* "instances" was an array or null */
  int64_t total;
  nrd_nv_run_fn run;
  void *ud;
  size_t run_max;
  bool stopped; /* run asked to stop */
};

static bool value(struct scan *s, struct capture *cap);
static bool object(struct scan *s, const struct field *fields, size_t n_fields, void *dst);

/* The raw JSON is the input itself, written in runs: whitespace, secret
 * members and raw control bytes are where a run ends. Writes the input from
 * s->flush up to q. */
static void emit(struct scan *s, const char *q)
{
  if (s->out && q > s->flush) {
    nrd_buf_append(s->out, s->flush, (size_t)(q - s->flush));
    s->flush = q;
  }
}

/* Skips whitespace (any byte up to 0x20, as cJSON does), left out of the
 * raw JSON. */
static void ws(struct scan *s)
{
  const char *start = s->p;
  while (s->p < s->end && (unsigned char)*s->p <= 0x20)
    s->p++;
  if (s->out && s->p != start) {
    emit(s, start);
    s->flush = s->p;
  }
}

static int hex4(const char *p)
{
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return -1;
    v = v * 16 + d;
  }
  return v;
}

static void put_utf8(struct nrd_buf *b, unsigned cp)
{
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  nrd_buf_append(b, u, n);
}

static bool simple_escape(char c, char *out)
{
  static const char from[] = "bfnrt\"\\/";
  static const char to[] = "\b\f\n\r\t\"\\/";
  const char *hit = c ? strchr(from, c) : NULL;
  if (!hit)
    return false;
  *out = to[hit - from];
  return true;
}

/* Decodes the string body [p, end), which holds escapes, into dec as cJSON
 * does (a backslash is never the last byte: the caller checked). false on an
 * escape cJSON refuses, or a \u escape without four hex digits. */
static bool unescape(const char *p, const char *end, struct nrd_buf *dec)
{
  nrd_buf_reset(dec);
  while (p < end) {
    const char *run = p;
    while (p < end && *p != '\\')
      p++;
    nrd_buf_append(dec, run, (size_t)(p - run));
    if (p == end)
      break;
    char c;
    if (p[1] != 'u') {
      if (!simple_escape(p[1], &c))
        return false;
      nrd_buf_append(dec, &c, 1);
      p += 2;
      continue;
    }
    if (end - p < 6)
      return false;
    int first = hex4(p + 2);
    unsigned cp;
    if (first < 0 || (first >= 0xDC00 && first <= 0xDFFF))
      return false;
    if (first >= 0xD800 && first <= 0xDBFF) {
      int second = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
      if (second < 0xDC00 || second > 0xDFFF)
        return false;
      cp = 0x10000 + ((((unsigned)first & 0x3FF) << 10) | ((unsigned)second & 0x3FF));
      p += 12;
    } else {
      cp = (unsigned)first;
      p += 6;
    }
    put_utf8(dec, cp);
  }
  return true;
}

/* Bytes that end a plain run inside a string: the quote, the backslash and
 * raw control bytes. */
static bool string_special(unsigned char c)
{
  return c == '"' || c == '\\' || c < 0x20;
}

/* The same test on eight bytes at once (most of a page is plain string
 * text): non-zero when one of them is special. */
static uint64_t word_special(uint64_t x)
{
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  uint64_t quote = x ^ (ones * '"'), slash = x ^ (ones * '\\');
  uint64_t zero_quote = (quote - ones) & ~quote;
  uint64_t zero_slash = (slash - ones) & ~slash;
  uint64_t below_space = (x - ones * 0x20) & ~x;
  return (zero_quote | zero_slash | below_space) & highs;
}

/* Skips plain string bytes from p (at most to end). */
static const char *plain_run(const char *p, const char *end)
{
  uint64_t x;
  while (end - p >= 8) {
    memcpy(&x, p, 8);
    if (word_special(x))
      break;
    p += 8;
  }
  while (p < end && !string_special((unsigned char)*p))
    p++;
  return p;
}

/* A string at s->p (its opening quote); escapes are decoded into dec, raw
 * control bytes are written escaped. cap (may be NULL) says where its text
 * is. */
static bool string(struct scan *s, struct nrd_buf *dec, struct capture *cap)
{
  const char *start = ++s->p;
  bool escaped = false, control = false;
  for (;;) {
    s->p = plain_run(s->p, s->end);
    if (s->p >= s->end || *s->p == '"')
      break;
    if (*s->p == '\\') {
      if (s->p + 1 >= s->end)
        return false;
      escaped = true;
      s->p++;
    } else {
      control = true;
    }
    s->p++;
  }
  if (s->p >= s->end)
    return false;
  const char *end = s->p++;
  if (escaped && !unescape(start, end, dec))
    return false;
  if (cap) {
    cap->type = V_STR;
    cap->raw = start;
    cap->raw_len = (size_t)(end - start);
    cap->escaped = escaped;
  }
  for (const char *q = start; control && s->out && q < end; q++) {
    if ((unsigned char)*q < 0x20) {
      emit(s, q);
      nrd_buf_printf(s->out, "\\u%04x", (unsigned)(unsigned char)*q);
      s->flush = q + 1;
    }
  }
  return true;
}

static bool number_char(char c)
{
  return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' || c == 'E' || c == '.';
}

/* A number, read as cJSON reads one: strtod over the whole run of number
 * characters, consuming what strtod took. */
static bool number(struct scan *s, struct capture *cap)
{
  char small[64];
  size_t n = 0;
  while (s->p + n < s->end && number_char(s->p[n]))
    n++;
  char *text = n < sizeof small ? small : nrd_xmalloc(n + 1);
  memcpy(text, s->p, n);
  text[n] = '\0';
  char *after = NULL;
  double v = strtod(text, &after);
  size_t used = (size_t)(after - text);
  if (text != small)
    free(text);
  if (used == 0)
    return false;
  s->p += used;
  if (cap) {
    cap->type = V_NUM;
    cap->num = v;
  }
  return true;
}

static bool literal(struct scan *s, const char *word, struct capture *cap, enum vtype type)
{
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
    return false;
  s->p += n;
  if (cap)
    cap->type = type;
  return true;
}

/* True when a member with this key (len bytes, no NUL) is cut from raw
 * JSON: it starts with "connect" or holds "password", in any case. */
static bool secret_key(const char *k, size_t len)
{
  if (len >= 7 && (k[0] == 'c' || k[0] == 'C') && strncasecmp(k, "connect", 7) == 0)
    return true;
  for (size_t i = 0; i + 8 <= len; i++) {
    if ((k[i] == 'p' || k[i] == 'P') && strncasecmp(k + i, "password", 8) == 0)
      return true;
  }
  return false;
}

/* Reads a member's key (s->key) and its ':'; *secret when the member is
 * left out of the raw JSON. */
static bool member_key(struct scan *s, bool *secret)
{
  struct capture k;

  ws(s);
  if (s->p >= s->end || *s->p != '"')
    return false;
  if (!string(s, &s->key_buf, &k))
    return false;
  s->key = k.escaped ? s->key_buf.data : k.raw;
  s->key_len = strnlen(s->key, k.escaped ? s->key_buf.len : k.raw_len);
  *secret = s->out && secret_key(s->key, s->key_len);
  ws(s);
  if (s->p >= s->end || *s->p != ':')
    return false;
  s->p++;
  return true;
}

/* ---- the fields read ---- */

#define FIELD(name, kind, type, member)                  \
  {                                                      \
    name, sizeof(name) - 1, kind, offsetof(type, member) \
  }

static const struct field instance_fields[] = {
  FIELD("id", F_SCALAR, struct nrd_instance, id),
  FIELD("name", F_STR, struct nrd_instance, name),
  FIELD("status", F_STR, struct nrd_instance, status),
  FIELD("clusterId", F_SCALAR, struct nrd_instance, cluster_id),
  FIELD("clusterName", F_STR, struct nrd_instance, cluster_name),
  FIELD("productId", F_SCALAR, struct nrd_instance, product_id),
  FIELD("productName", F_STR, struct nrd_instance, product_name),
  FIELD("imageUrl", F_STR, struct nrd_instance, image_url),
  FIELD("imageAuthId", F_SCALAR, struct nrd_instance, image_auth_id),
  FIELD("command", F_STR, struct nrd_instance, command),
  FIELD("gpuNum", F_SCALAR, struct nrd_instance, gpu_num),
  FIELD("rootfsSize", F_SCALAR, struct nrd_instance, rootfs_size),
  FIELD("kind", F_STR, struct nrd_instance, kind),
  FIELD("billingMode", F_STR, struct nrd_instance, billing_mode),
  FIELD("createdAt", F_EPOCH, struct nrd_instance, created_at),
  FIELD("portMappings", F_PORTS, struct nrd_instance, ports),
  FIELD("envs", F_ENVS, struct nrd_instance, envs),
  FIELD("volumeMounts", F_MOUNTS, struct nrd_instance, mounts),
  FIELD("entrypoint", F_STR, struct nrd_instance, entrypoint),
  FIELD("network", F_NETWORK, struct nrd_instance, network_id),
  FIELD("minCudaVersion", F_STR, struct nrd_instance, min_cuda_version),
  FIELD("tools", F_TOOLS, struct nrd_instance, tools),
};

/* network {id, ip}: its id is read into the instance. */
static const struct field network_fields[] = {
  FIELD("id", F_SCALAR, struct nrd_instance, network_id),
};

static const struct field port_fields[] = {
  FIELD("port", F_SCALAR, struct nrd_port, port),
  FIELD("type", F_STR, struct nrd_port, type),
};

static const struct field env_fields[] = {
  FIELD("key", F_STR, struct nrd_env, key),
  FIELD("value", F_SCALAR, struct nrd_env, value),
};

static const struct field mount_fields[] = {
  FIELD("type", F_STR, struct nrd_mount, type),
  FIELD("id", F_SCALAR, struct nrd_mount, id),
  FIELD("mountPath", F_STR, struct nrd_mount, mount_path),
};

static const struct field tool_fields[] = {
  FIELD("name", F_STR, struct nrd_tool, name),
  FIELD("port", F_SCALAR, struct nrd_tool, port),
  FIELD("type", F_STR, struct nrd_tool, type),
};

static const struct field page_fields[] = {
  { "instances", 9, F_INSTANCES, 0 },
  { "total", 5, F_TOTAL, 0 },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A field's string: outside an instance a heap copy; inside, appended to
 * s->strs and returned as its offset + 1 (instance_strings makes it a
 * pointer). An instance's ~25 strings were as many allocations, which a
 * page's reader and its writer (on another thread) then queued for in
 * malloc's one arena. */
static char *field_text(struct scan *s, const char *text, size_t len)
{
  if (!s->in_instance)
    return nrd_xstrndup(text, len);
  size_t off = s->strs.len;
  len = strnlen(text, len); /* cut at a NUL, as cJSON's strings are */
  nrd_buf_append(&s->strs, text, len);
  nrd_buf_append(&s->strs, "", 1);
  return (char *)(uintptr_t)(off + 1);
}

static char *captured_field(struct scan *s, const struct capture *c)
{
  if (c->escaped)
    return field_text(s, s->text.data ? s->text.data : "", s->text.len);
  return field_text(s, c->raw, c->raw_len);
}

static char *number_field(struct scan *s, double v)
{
  char *text = nrd_json_number_text(v);
  if (!text || !s->in_instance)
    return text;
  char *field = field_text(s, text, strlen(text));
  free(text);
  return field;
}

/* Turns an offset + 1 left by field_text into a pointer into the block. */
static void relocate(char **field, void *block)
{
  if (*field)
    *field = (char *)block + ((uintptr_t)*field - 1);
}

/* The instance is read: its strings and its raw JSON move into one block. */
static void instance_strings(struct scan *s, struct nrd_instance *in)
{
  char *block = nrd_xmalloc(s->strs.len + s->raw.len + 1);
  memcpy(block, s->strs.data ? s->strs.data : "", s->strs.len);
  memcpy(block + s->strs.len, s->raw.data ? s->raw.data : "", s->raw.len);
  block[s->strs.len + s->raw.len] = '\0';
  nrd_instance_each_string(in, false, relocate, block);
  in->raw_json = block + s->strs.len;
  in->strings = block;
}

/* An instance that could not be read whole: its fields hold offsets, not
 * strings, so only its lists are freed. */
static void instance_drop_offsets(struct nrd_instance *in)
{
  free(in->ports);
  free(in->envs);
  free(in->mounts);
  free(in->tools);
  memset(in, 0, sizeof *in);
}

/* nrd_json_i64 over a captured value. */
static bool captured_i64(const struct scan *s, const struct capture *c, int64_t *out)
{
  if (c->type == V_STR) {
    char small[32];
    const char *src = c->escaped ? (s->text.data ? s->text.data : "") : c->raw;
    size_t len = c->escaped ? s->text.len : c->raw_len;
    char *text = len < sizeof small ? small : nrd_xmalloc(len + 1);
    memcpy(text, src, len);
    text[len] = '\0'; /* an embedded NUL cuts it, as in cJSON */
    bool ok = nrd_parse_i64(text, INT64_MIN, INT64_MAX, out);
    if (text != small)
      free(text);
    return ok;
  }
  if (c->type != V_NUM)
    return false;
  double v = c->num;
  /* 2^63 is exactly representable; anything at or beyond it does not fit. */
  if (!isfinite(v) || v != floor(v) || v >= 9223372036854775808.0 || v < -9223372036854775808.0)
    return false;
  *out = (int64_t)v;
  return true;
}

/* ---- values ---- */

/* A list: growable array of elem-sized items, zeroed as they are added.
 * The page's list of instances has page set (its runs are handed over). */
struct list {
  void **items;
  size_t *n;
  size_t cap, elem;
  struct page *page;
};

static void *list_add(struct list *l)
{
  if (*l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    *l->items = nrd_xrealloc(*l->items, cap * l->elem);
    memset((char *)*l->items + l->cap * l->elem, 0, (cap - l->cap) * l->elem);
    l->cap = cap;
  }
  return (char *)*l->items + (*l->n)++ * l->elem;
}

/* Hands the instances read so far to the page's run function, then cleans
 * up what it left; false when it asked to stop. */
static bool page_flush(struct page *pg)
{
  bool go_on = pg->n == 0 || pg->run(pg->ud, pg->items, pg->n) == 0;
  for (size_t i = 0; i < pg->n; i++)
    nrd_instance_cleanup(&pg->items[i]);
  pg->n = 0;
  pg->stopped = !go_on;
  return go_on;
}

/* An array at s->p; its objects are read with fields into items added to
 * list (when list is not NULL), anything else is only checked. */
static bool array(struct scan *s, struct list *list, const struct field *fields, size_t n_fields)
{
  if (++s->depth > NRD_JSON_MAX_DEPTH)
    return false;
  s->p++;
  ws(s);
  if (s->p < s->end && *s->p == ']') {
    s->p++;
    s->depth--;
    return true;
  }
  for (;;) {
    ws(s);
    bool ok;
    if (list && s->p < s->end && *s->p == '{')
      ok = object(s, fields, n_fields, list_add(list));
    else
      ok = value(s, NULL);
    if (!ok)
      return false;
    struct page *pg = list ? list->page : NULL;
    if (pg && pg->run && pg->n >= pg->run_max && !page_flush(pg))
      return false;
    ws(s);
    if (s->p >= s->end)
      return false;
    if (*s->p == ']')
      break;
    if (*s->p != ',')
      return false;
    s->p++;
  }
  s->p++;
  s->depth--;
  return true;
}

/* Any value (after whitespace); cap (may be NULL) gets what it was. */
static bool value(struct scan *s, struct capture *cap)
{
  if (cap)
    cap->type = V_OTHER;
  ws(s);
  if (s->p >= s->end)
    return false;
  switch (*s->p) {
  case '"':
    return string(s, &s->text, cap);
  case '{':
    return object(s, NULL, 0, NULL);
  case '[':
    return array(s, NULL, NULL, 0);
  case 'n':
    return literal(s, "null", cap, V_NULL);
  case 't':
    return literal(s, "true", cap, V_OTHER);
  case 'f':
    return literal(s, "false", cap, V_OTHER);
  default:
    if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
      return number(s, cap);
    return false;
  }
}

/* The instance's lists, by field kind: where each list, its count and its
 * presence are in struct nrd_instance, and its items' fields. */
struct list_kind {
  size_t items, n, present, elem;
  const struct field *fields;
  size_t n_fields;
};
#define LIST_KIND(member, item_fields)                                                 \
  {                                                                                    \
    offsetof(struct nrd_instance, member), offsetof(struct nrd_instance, n_##member),  \
        offsetof(struct nrd_instance, member##_present),                               \
        sizeof *((struct nrd_instance *)NULL)->member, item_fields, COUNT(item_fields) \
  }
static const struct list_kind list_kinds[] = {
  [F_PORTS] = LIST_KIND(ports, port_fields),
  [F_ENVS] = LIST_KIND(envs, env_fields),
  [F_MOUNTS] = LIST_KIND(mounts, mount_fields),
  [F_TOOLS] = LIST_KIND(tools, tool_fields),
};

/* A list field of an instance: present when it is an array (even empty). */
static bool list_field(struct scan *s, const struct field *f, struct nrd_instance *in)
{
  const struct list_kind *k = &list_kinds[f->kind];
  char *base = (char *)in;
  ws(s);
  if (s->p >= s->end || *s->p != '[')
    return value(s, NULL); /* null or another type: not present */
  struct list l = { (void **)(void *)(base + k->items), (size_t *)(void *)(base + k->n), 0, k->elem,
                    NULL };
  *(bool *)(base + k->present) = true;
  *l.items = nrd_xcalloc(1, l.elem); /* a present empty list has an array too */
  l.cap = 1;
  return array(s, &l, k->fields, k->n_fields);
}

/* The value of a member whose field is read into dst. */
static bool field_value(struct scan *s, const struct field *f, void *dst)
{
  struct capture c;
  char **str = (char **)((char *)dst + f->off);
  int64_t v;

  switch (f->kind) {
  case F_PORTS:
  case F_ENVS:
  case F_MOUNTS:
  case F_TOOLS:
    return list_field(s, f, dst);
  case F_NETWORK:
    ws(s);
    if (s->p < s->end && *s->p == '{')
      return object(s, network_fields, COUNT(network_fields), dst);
    return value(s, NULL);
  case F_INSTANCES: {
    struct page *pg = dst;
    struct list l = { (void **)&pg->items, &pg->n, pg->cap, sizeof *pg->items, pg };
    ws(s);
    if (s->p < s->end && *s->p == '[') {
      pg->instances_ok = true;
      bool ok = array(s, &l, instance_fields, COUNT(instance_fields));
      pg->cap = l.cap;
      return ok;
    }
    if (!value(s, &c))
      return false;
    pg->instances_ok = c.type == V_NULL;
    return true;
  }
  default:
    break;
  }
  if (!value(s, &c))
    return false;
  switch (f->kind) {
  case F_STR:
    if (c.type == V_STR)
      *str = captured_field(s, &c);
    break;
  case F_SCALAR:
    if (c.type == V_STR)
      *str = captured_field(s, &c);
    else if (c.type == V_NUM)
      *str = number_field(s, c.num);
    break;
  case F_EPOCH:
    if (captured_i64(s, &c, &v) && v >= 0)
      *(int64_t *)((char *)dst + f->off) = v > NV_MS_THRESHOLD ? v / 1000 : v;
    break;
  case F_TOTAL:
    if (captured_i64(s, &c, &v) && v >= 0)
      ((struct page *)dst)->total = v;
    break;
  default:
    break;
  }
  return true;
}

static const struct field *find_field(const struct field *fields, size_t n, const char *key,
                                      size_t len)
{
  for (size_t i = 0; i < n; i++) {
    if (len == fields[i].len && memcmp(key, fields[i].name, len) == 0)
      return &fields[i];
  }
  return NULL;
}

/* The members of an object whose '{' and the space after it were read, up
 * to and with its '}'; the first member named as one of fields is read into
 * dst. Members whose keys are secrets are left out of s->out. */
static bool members(struct scan *s, const struct field *fields, size_t n_fields, void *dst)
{
  uint32_t seen = 0;
  bool written = false;    /* a member is in the raw JSON */
  bool drop_comma = false; /* the next ',' follows only left-out members */

  if (s->p < s->end && *s->p == '}') {
    s->p++;
    return true;
  }
  /* Where this member's output starts: its ',' (written with it), or its
   * key when it would be the first member written. */
  const char *start = s->p;
  for (;;) {
    bool secret = false;
    size_t mark = 0;
    if (s->out) {
      emit(s, start);
      mark = s->out->len;
    }
    if (!member_key(s, &secret))
      return false;
    const struct field *f = secret ? NULL : find_field(fields, n_fields, s->key, s->key_len);
    uint32_t bit = f ? 1u << (f - fields) : 0;
    bool vok;
    if (secret) {
      struct nrd_buf *out = s->out;
      s->out = NULL;
      vok = value(s, NULL);
      s->out = out;
      out->len = mark; /* the ',' and the key written so far go too */
      out->data[mark] = '\0';
      s->flush = s->p;
      drop_comma = drop_comma || !written;
    } else {
      vok = (f && !(seen & bit)) ? field_value(s, f, dst) : value(s, NULL);
      written = written || s->out;
    }
    seen |= bit;
    if (!vok)
      return false;
    ws(s);
    if (s->p >= s->end)
      return false;
    if (*s->p == '}')
      break;
    if (*s->p != ',')
      return false;
    start = s->p++;
    if (drop_comma && s->out) {
      emit(s, start);
      s->flush = s->p;
      drop_comma = false;
      ws(s);
      start = s->p;
    }
  }
  s->p++;
  return true;
}

/* An object at s->p, its members read by members(). An instance object (of
 * the page's list) gets its raw JSON: the object without whitespace and
 * without the members whose keys are secrets, at any depth. */
static bool object(struct scan *s, const struct field *fields, size_t n_fields, void *dst)
{
  struct nrd_buf *outer = s->out;
  bool ok = false;

  if (++s->depth > NRD_JSON_MAX_DEPTH)
    return false;
  if (fields == instance_fields) {
    nrd_buf_reset(&s->raw);
    nrd_buf_reset(&s->strs);
    s->out = &s->raw;
    s->flush = s->p;
    s->in_instance = true;
  }
  s->p++;
  ws(s);
  if (members(s, fields, n_fields, dst)) {
    if (fields == instance_fields) {
      emit(s, s->p);
      instance_strings(s, dst);
    }
    s->depth--;
    ok = true;
  }
  if (fields == instance_fields) {
    if (!ok)
      instance_drop_offsets(dst);
    s->in_instance = false;
  }
  s->out = outer;
  return ok;
}

/* ---- entry points ---- */

static void scan_init(struct scan *s, const char *body, size_t len)
{
  memset(s, 0, sizeof *s);
  s->p = body;
  s->end = body + len;
  nrd_buf_init(&s->key_buf);
  nrd_buf_init(&s->text);
  nrd_buf_init(&s->raw);
  nrd_buf_init(&s->strs);
}

static void scan_cleanup(struct scan *s)
{
  nrd_buf_cleanup(&s->key_buf);
  nrd_buf_cleanup(&s->text);
  nrd_buf_cleanup(&s->raw);
  nrd_buf_cleanup(&s->strs);
}

/* After the document's one value: only JSON whitespace (nrd_json_parse). */
static bool at_end(const struct scan *s)
{
  for (const char *p = s->p; p < s->end; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
      return false;
  }
  return true;
}

/* Skips a UTF-8 byte order mark and whitespace, as cJSON does; true when an
 * object starts there. */
static bool object_starts(struct scan *s)
{
  if (s->end - s->p >= 3 && memcmp(s->p, "\xEF\xBB\xBF", 3) == 0)
    s->p += 3;
  ws(s);
  return s->p < s->end && *s->p == '{';
}

/* Reads a page into pg (items handed over in runs when pg->run is set): 0,
 * 1 when a run asked to stop, -1 when the body is unusable. What is left in
 * pg->items is the caller's. */
static int decode_page(const char *body, size_t len, struct page *pg)
{
  struct scan s;
  int rc = -1;

  if (!body || len == 0)
    return -1;
  scan_init(&s, body, len);
  pg->items = nrd_xcalloc(1, sizeof *pg->items); /* an empty page has an array too */
  pg->cap = 1;
  if (object_starts(&s) && object(&s, page_fields, COUNT(page_fields), pg) && at_end(&s) &&
      pg->instances_ok)
    rc = 0;
  else if (pg->stopped)
    rc = 1;
  scan_cleanup(&s);
  return rc;
}

static void page_free(struct page *pg)
{
  for (size_t i = 0; i < pg->n; i++)
    nrd_instance_cleanup(&pg->items[i]);
  free(pg->items);
}

int nrd_nv_decode_instances(const char *body, size_t len, struct nrd_instance **items, size_t *n,
                            int64_t *total)
{
  struct page pg = { .total = -1 };

  *items = NULL;
  *n = 0;
  *total = -1;
  if (decode_page(body, len, &pg) != 0) {
    page_free(&pg);
    return -1;
  }
  *items = pg.items;
  *n = pg.n;
  *total = pg.total;
  return 0;
}

int nrd_nv_decode_instance_runs(const char *body, size_t len, size_t run_max, nrd_nv_run_fn run,
                                void *ud, int64_t *total)
{
  struct page pg = { .total = -1, .run = run, .ud = ud, .run_max = run_max ? run_max : 1 };

  *total = -1;
  int rc = decode_page(body, len, &pg);
  if (rc == 0 && !page_flush(&pg))
    rc = 1;
  page_free(&pg);
  if (rc == 0)
    *total = pg.total;
  return rc;
}

void nrd_nv_decode_instance(const cJSON *obj, struct nrd_instance *out)
{
  struct scan s;
  memset(out, 0, sizeof *out);
  if (!cJSON_IsObject(obj))
    return;
  char *text = nrd_json_print(obj);
  scan_init(&s, text, strlen(text));
  if (!object_starts(&s) || !object(&s, instance_fields, COUNT(instance_fields), out) ||
      !at_end(&s))
    nrd_instance_cleanup(out); /* nested deeper than NRD_JSON_MAX_DEPTH */
  scan_cleanup(&s);
  free(text);
}
