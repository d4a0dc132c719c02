/* Configuration: one table drives defaults, environment and flag parsing,
 * validation, --help and the redacted start-up dump. */

#include "nrd/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nrd/util.h"

enum opt_type {
  OPT_STRING,   /* char *, non-empty when it has a default */
  OPT_URL,      /* char *, http:// or https://, trailing slash stripped */
  OPT_UINT,     /* unsigned within [min, max] */
  OPT_SIZE,     /* size_t within [min, max] */
  OPT_DOUBLE,   /* double within [min, max] */
  OPT_BOOL,     /* bool: true/false/1/0/yes/no */
  OPT_LOGLEVEL, /* enum nrd_log_level */
  OPT_CIDRLIST, /* char * text, parsed into cfg->proxies */
  OPT_CHOICE,   /* unsigned: the index of one of the names in choices[] */
  OPT_WORDLIST, /* char *, comma-separated words of letters, e.g. migrating,exited */
};

struct opt {
  const char *env;
  const char *flag;
  enum opt_type type;
  const char *def; /* default as text; NULL = unset */
  double min, max; /* for numbers */
  bool secret;
  const char *help;
  size_t offset;
};

#define OFF(field) offsetof(struct nrd_config, field)

static const struct opt opts[] = {
  { "PORT", "--port", OPT_UINT, "3000", 0, 65535, false, "listen port (0 picks a free one)",
    OFF(port) },
  { "HOST", "--host", OPT_STRING, "127.0.0.1", 0, 0, false, "listen address", OFF(host) },
  { "DATABASE_PATH", "--database-path", OPT_STRING, "./data/recovery.db", 0, 0, false,
    "SQLite file (folder created 0700, file 0600); unused when DATABASE_URL is set",
    OFF(database_path) },
  { "DATABASE_URL", "--database-url", OPT_STRING, NULL, 0, 0, true,
    "PostgreSQL instead of SQLite: postgres://user:password@host:port/db?sslmode=... (libpq's"
    " URI; replicas on several hosts share it)",
    OFF(database_url) },
  { "DATABASE_URL_FILE", "--database-url-file", OPT_STRING, NULL, 0, 0, false,
    "file holding DATABASE_URL", OFF(database_url_file) },
  { "NOVITA_API_KEY", "--novita-api-key", OPT_STRING, NULL, 0, 0, true,
    "Novita API key (required by serve)", OFF(novita_api_key) },
  { "NOVITA_API_KEY_FILE", "--novita-api-key-file", OPT_STRING, NULL, 0, 0, false,
    "file holding NOVITA_API_KEY", OFF(novita_api_key_file) },
  { "NOVITA_API_BASE_URL", "--novita-api-base-url", OPT_URL,
    "https://api.novita.ai/gpu-instance/openapi", 0, 0, false, "Novita public API base URL",
    OFF(novita_api_base_url) },
  { "NOVITA_INTERNAL_API_KEY", "--novita-internal-api-key", OPT_STRING, NULL, 0, 0, true,
    "key for the optional internal jobs host", OFF(novita_internal_api_key) },
  { "NOVITA_INTERNAL_API_KEY_FILE", "--novita-internal-api-key-file", OPT_STRING, NULL, 0, 0, false,
    "file holding NOVITA_INTERNAL_API_KEY", OFF(novita_internal_api_key_file) },
  { "NOVITA_INTERNAL_API_BASE_URL", "--novita-internal-api-base-url", OPT_URL, NULL, 0, 0, false,
    "optional internal jobs host (used when its key is set too)",
    OFF(novita_internal_api_base_url) },
  { "NOVITA_RATE_LIMIT_RPS", "--novita-rate-limit-rps", OPT_DOUBLE, "20", 0, 10000, false,
    "requests per second to Novita, all calls together (0 = unlimited); the start of the "
    "adaptive rate",
    OFF(novita_rate_limit_rps) },
  { "NOVITA_RATE_LIMIT_MAX_RPS", "--novita-rate-limit-max-rps", OPT_DOUBLE, "50", 0.5, 10000, false,
    "the adaptive rate's top, requests per second", OFF(novita_rate_limit_max_rps) },
  { "NOVITA_RATE_LIMIT_ADAPTIVE", "--novita-rate-limit-adaptive", OPT_BOOL, "true", 0, 0, false,
    "raise the rate while calls succeed, cut it on a 429 (false: a fixed rate)",
    OFF(novita_rate_limit_adaptive) },
  { "NOVITA_PAGE_SIZE", "--novita-page-size", OPT_UINT, "100", 1, 1000, false,
    "page size asked of Novita list calls", OFF(novita_page_size) },
  { "DEFAULT_REGION", "--default-region", OPT_STRING, "CN-HK-01", 0, 0, false,
    "product region when the instance's is unknown", OFF(default_region) },
  { "MIGRATION_DRY_RUN", "--migration-dry-run", OPT_BOOL, "false", 0, 0, false,
    "when true no run deletes or creates", OFF(migration_dry_run) },
  { "MIGRATION_INTERVAL_MINUTES", "--migration-interval-minutes", OPT_UINT, "15", 0, 10080, false,
    "scheduler period in minutes (0 = off)", OFF(migration_interval_minutes) },
  { "WATCH_INTERVAL_SECONDS", "--watch-interval-seconds", OPT_UINT, "20", 0, 3600, false,
    "watch loop period in seconds: failed migration jobs (0 = off)", OFF(watch_interval_seconds) },
  { "MIGRATION_MAX_CONCURRENT", "--migration-max-concurrent", OPT_UINT, "8", 1, 256, false,
    "worker pool size", OFF(migration_max_concurrent) },
  { "MIGRATION_JOB_LOOKBACK_HOURS", "--migration-job-lookback-hours", OPT_UINT, "24", 1, 8760,
    false, "window for migration jobs, hours", OFF(migration_job_lookback_hours) },
  { "MAX_RECOVERIES_PER_RUN", "--max-recoveries-per-run", OPT_UINT, "100", 1, 100000, false,
    "rows recovered per run at most; the rest wait", OFF(max_recoveries_per_run) },
  { "MAX_RETRY_ATTEMPTS", "--max-retry-attempts", OPT_UINT, "3", 0, 10, false,
    "retries after the first attempt of one Novita call", OFF(max_retry_attempts) },
  { "REQUEST_TIMEOUT", "--request-timeout", OPT_UINT, "30000", 100, 600000, false,
    "per-attempt Novita timeout, ms", OFF(request_timeout_ms) },
  { "RUN_DEADLINE_SECONDS", "--run-deadline-seconds", OPT_UINT, "600", 1, 86400, false,
    "a run starts no new work after this", OFF(run_deadline_seconds) },
  { "RECOVERY_LEASE_SECONDS", "--recovery-lease-seconds", OPT_UINT, "30", 2, 3600, false,
    "lease on a claimed ledger row; on PostgreSQL also the bound of a leader's failover",
    OFF(recovery_lease_seconds) },
  { "RECOVERY_PLACEMENT", "--recovery-placement", OPT_CHOICE, "same-cluster", 0, 0, false,
    "where a replacement may go when its cluster has no capacity: same-cluster, same-region "
    "or any (network storage keeps a row in its cluster)",
    OFF(recovery_placement) },
  { "RECOVERY_BILLING_FALLBACK", "--recovery-billing-fallback", OPT_CHOICE, "none", 0, 0, false,
    "none, or onDemand: a spot (or other) replacement with no capacity may go onDemand",
    OFF(recovery_billing_fallback) },
  { "RECOVERY_START_POLL_SECONDS", "--recovery-start-poll-seconds", OPT_UINT, "30", 1, 3600, false,
    "between runs, how often replacements not yet running are looked at",
    OFF(recovery_start_poll_seconds) },
  { "RECOVERY_START_TIMEOUT_SECONDS", "--recovery-start-timeout-seconds", OPT_UINT, "1800", 1,
    604800, false, "a replacement not running this long after its create is start_failed",
    OFF(recovery_start_timeout_seconds) },
  { "RECOVER_STATUSES", "--recover-statuses", OPT_WORDLIST, "migrating", 0, 0, false,
    "statuses in which an instance whose newest migration job failed is recovered",
    OFF(recover_statuses) },
  { "CIRCUIT_FAILURE_THRESHOLD", "--circuit-failure-threshold", OPT_UINT, "5", 0, 1000, false,
    "consecutive Novita failures that open the circuit (0 = never)",
    OFF(circuit_failure_threshold) },
  { "CIRCUIT_COOLDOWN_SECONDS", "--circuit-cooldown-seconds", OPT_UINT, "30", 1, 3600, false,
    "seconds the circuit stays open before a trial call", OFF(circuit_cooldown_seconds) },
  { "API_TOKEN", "--api-token", OPT_STRING, NULL, 0, 0, true,
    "bearer token required on /api/* when set", OFF(api_token) },
  { "API_TOKEN_FILE", "--api-token-file", OPT_STRING, NULL, 0, 0, false, "file holding API_TOKEN",
    OFF(api_token_file) },
  { "TRUSTED_PROXIES", "--trusted-proxies", OPT_CIDRLIST, "127.0.0.1/8,::1", 0, 0, false,
    "peers whose X-Forwarded-For is believed (IPs or CIDRs, comma-separated)",
    OFF(trusted_proxies) },
  { "MAX_BODY_BYTES", "--max-body-bytes", OPT_SIZE, "65536", 1, 10485760, false,
    "request body limit, bytes", OFF(max_body_bytes) },
  { "HTTP_REQUEST_TIMEOUT_SECONDS", "--http-request-timeout-seconds", OPT_UINT, "10", 1, 600, false,
    "a connection's request head must arrive whole within this, however it trickles",
    OFF(http_request_timeout_seconds) },
  { "HTTP_MAX_CONNECTIONS", "--http-max-connections", OPT_UINT, "1024", 8, 65536, false,
    "open client connections at most", OFF(http_max_connections) },
  { "HTTP_MAX_CONNECTIONS_PER_IP", "--http-max-connections-per-ip", OPT_UINT, "128", 1, 65536,
    false, "open connections per client address at most (keep it well under the total)",
    OFF(http_max_connections_per_ip) },
  { "WEBHOOK_URL", "--webhook-url", OPT_URL, NULL, 0, 0, false, "where events are POSTed",
    OFF(webhook_url) },
  { "WEBHOOK_SECRET", "--webhook-secret", OPT_STRING, NULL, 0, 0, true,
    "HMAC-SHA256 signing secret for webhooks", OFF(webhook_secret) },
  { "WEBHOOK_SECRET_FILE", "--webhook-secret-file", OPT_STRING, NULL, 0, 0, false,
    "file holding WEBHOOK_SECRET", OFF(webhook_secret_file) },
  { "WEBHOOK_MAX_AGE_HOURS", "--webhook-max-age-hours", OPT_UINT, "24", 1, 720, false,
    "an undelivered event is given up after this", OFF(webhook_max_age_hours) },
  { "RETENTION_DAYS", "--retention-days", OPT_UINT, "30", 1, 3650, false,
    "finished records older than this are pruned", OFF(retention_days) },
  { "LOG_LEVEL", "--log-level", OPT_LOGLEVEL, "info", 0, 0, false, "error, warn, info or debug",
    OFF(log_level) },
};

#define N_OPTS (sizeof opts / sizeof opts[0])

/* The names an OPT_CHOICE field accepts, in enum order, found by its offset. */
static const char *const placement_names[] = { "same-cluster", "same-region", "any", NULL };
static const char *const billing_fallback_names[] = { "none", "onDemand", NULL };
static const struct choice_set {
  size_t offset;
  const char *const *names;
} choice_sets[] = {
  { OFF(recovery_placement), placement_names },
  { OFF(recovery_billing_fallback), billing_fallback_names },
};

static const char *const *choices_of(const struct opt *o)
{
  for (size_t k = 0; k < sizeof choice_sets / sizeof choice_sets[0]; k++)
    if (choice_sets[k].offset == o->offset)
      return choice_sets[k].names;
  return NULL;
}
#define SECRET_MAX_BYTES 4096

/* Secrets that can come from a file: the value, its _FILE variable, or a
 * systemd credential named like the variable. */
static const struct secret_src {
  const char *env, *file_env;
  size_t value, file;
} secrets[] = {
  { "API_TOKEN", "API_TOKEN_FILE", OFF(api_token), OFF(api_token_file) },
  { "NOVITA_API_KEY", "NOVITA_API_KEY_FILE", OFF(novita_api_key), OFF(novita_api_key_file) },
  { "NOVITA_INTERNAL_API_KEY", "NOVITA_INTERNAL_API_KEY_FILE", OFF(novita_internal_api_key),
    OFF(novita_internal_api_key_file) },
  { "WEBHOOK_SECRET", "WEBHOOK_SECRET_FILE", OFF(webhook_secret), OFF(webhook_secret_file) },
  { "DATABASE_URL", "DATABASE_URL_FILE", OFF(database_url), OFF(database_url_file) },
};

static void *field(struct nrd_config *cfg, const struct opt *o)
{
  return (char *)cfg + o->offset;
}

static const void *cfield(const struct nrd_config *cfg, const struct opt *o)
{
  return (const char *)cfg + o->offset;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
  if (!err || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Per type: what it accepts, for error messages (followed by its bounds
 * when it has a range; OPT_CHOICE's names say it instead), and whether the
 * field is text kept on the heap. */
enum opt_range { RANGE_NONE, RANGE_INT, RANGE_NUM };
static const struct {
  const char *accepts;
  enum opt_range range;
  bool text;
} types[] = {
  [OPT_STRING] = { "a non-empty value", RANGE_NONE, true },
  [OPT_URL] = { "an http:// or https:// URL", RANGE_NONE, true },
  [OPT_UINT] = { "an integer", RANGE_INT, false },
  [OPT_SIZE] = { "a byte count", RANGE_INT, false },
  [OPT_DOUBLE] = { "a number", RANGE_NUM, false },
  [OPT_BOOL] = { "true/false/1/0/yes/no", RANGE_NONE, false },
  [OPT_LOGLEVEL] = { "error, warn, info or debug", RANGE_NONE, false },
  [OPT_CIDRLIST] = { "comma-separated IP addresses or CIDRs, e.g. 10.0.0.0/8,::1", RANGE_NONE,
                     true },
  [OPT_CHOICE] = { NULL, RANGE_NONE, false },
  [OPT_WORDLIST] = { "comma-separated instance statuses, e.g. migrating,exited", RANGE_NONE, true },
};

/* An OPT_CHOICE's names: "a, b or c". */
static void describe_choices(const struct opt *o, char *out, size_t outlen)
{
  const char *const *names = choices_of(o);
  size_t used = 0;
  out[0] = '\0';
  for (size_t k = 0; names && names[k] && used < outlen; k++) {
    const char *sep = k == 0 ? "" : names[k + 1] ? ", " : " or ";
    int n = snprintf(out + used, outlen - used, "%s%s", sep, names[k]);
    if (n < 0)
      break;
    used += (size_t)n;
  }
}

/* What the option accepts, for error messages. */
static void describe(const struct opt *o, char *out, size_t outlen)
{
  const char *what = types[o->type].accepts;
  if (o->type == OPT_CHOICE)
    describe_choices(o, out, outlen);
  else if (types[o->type].range == RANGE_INT)
    snprintf(out, outlen, "%s %.0f-%.0f", what, o->min, o->max);
  else if (types[o->type].range == RANGE_NUM)
    snprintf(out, outlen, "%s %g-%g", what, o->min, o->max);
  else
    snprintf(out, outlen, "%s", what);
}

bool nrd_parse_ip(const char *s, unsigned char out[16])
{
  unsigned char v4[4];
  if (!s)
    return false;
  if (inet_pton(AF_INET, s, v4) == 1) {
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, v4, 4);
    return true;
  }
  return inet_pton(AF_INET6, s, out) == 1;
}

/* Parses one "addr" or "addr/prefix" item of len bytes at s. */
static bool parse_cidr(const char *s, size_t len, struct nrd_cidr *out)
{
  char item[64];
  if (len == 0 || len >= sizeof item)
    return false;
  memcpy(item, s, len);
  item[len] = '\0';

  char *slash = strchr(item, '/');
  if (slash)
    *slash = '\0';
  bool v4 = strchr(item, ':') == NULL;
  if (!nrd_parse_ip(item, out->addr))
    return false;
  unsigned max = v4 ? 32u : 128u, prefix = max;
  if (slash) {
    const char *digits = slash + 1;
    size_t nd = strlen(digits);
    if (nd == 0 || nd > 3 || strspn(digits, "0123456789") != nd)
      return false;
    prefix = (unsigned)atoi(digits);
    if (prefix > max)
      return false;
  }
  out->prefix = prefix + (v4 ? 96u : 0u);
  return true;
}

/* Parses a comma-separated list (spaces around items allowed); "" is an
 * empty list. On success the caller frees *out. */
static bool parse_cidr_list(const char *s, struct nrd_cidr **out, size_t *n_out)
{
  size_t cap = 1;
  for (const char *p = s; *p; p++)
    cap += *p == ',';
  if (strspn(s, " ") == strlen(s)) {
    *out = NULL;
    *n_out = 0;
    return true;
  }
  struct nrd_cidr *list = nrd_xcalloc(cap, sizeof *list);
  size_t n = 0;
  const char *p = s;
  for (;;) {
    const char *end = strchr(p, ',');
    const char *stop = end ? end : p + strlen(p);
    while (p < stop && *p == ' ')
      p++;
    while (stop > p && stop[-1] == ' ')
      stop--;
    if (!parse_cidr(p, (size_t)(stop - p), &list[n])) {
      free(list);
      return false;
    }
    n++;
    if (!end)
      break;
    p = end + 1;
  }
  *out = list;
  *n_out = n;
  return true;
}

static bool valid_url(const char *s)
{
  size_t scheme;
  if (strncmp(s, "https://", 8) == 0)
    scheme = 8;
  else if (strncmp(s, "http://", 7) == 0)
    scheme = 7;
  else
    return false;
  return s[scheme] != '\0' && s[scheme] != '/' && !strpbrk(s, " \t\r\n");
}

/* Stores text into o's field. Returns false when the text is not valid. */
/* Words of letters separated by single commas: "migrating,exited". */
static bool valid_wordlist(const char *s)
{
  bool word = false;
  for (; *s; s++) {
    if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))
      word = true;
    else if (*s == ',' && word)
      word = false;
    else
      return false;
  }
  return word;
}

/* The value types: true when text was read into the field f. */
static bool apply_value(void *f, const struct opt *o, const char *text)
{
  int64_t i;
  double d;
  bool b;
  enum nrd_log_level lv;

  switch (o->type) {
  case OPT_UINT:
    if (!nrd_parse_i64(text, (int64_t)o->min, (int64_t)o->max, &i))
      return false;
    *(unsigned *)f = (unsigned)i;
    return true;
  case OPT_SIZE:
    if (!nrd_parse_i64(text, (int64_t)o->min, (int64_t)o->max, &i))
      return false;
    *(size_t *)f = (size_t)i;
    return true;
  case OPT_DOUBLE:
    if (!nrd_parse_double(text, o->min, o->max, &d))
      return false;
    *(double *)f = d;
    return true;
  case OPT_BOOL:
    if (!nrd_parse_bool(text, &b))
      return false;
    *(bool *)f = b;
    return true;
  case OPT_LOGLEVEL:
    if (!nrd_log_level_parse(text, &lv))
      return false;
    *(enum nrd_log_level *)f = lv;
    return true;
  case OPT_CHOICE: {
    const char *const *names = choices_of(o);
    for (unsigned k = 0; names && names[k]; k++) {
      if (strcmp(names[k], text) == 0) {
        *(unsigned *)f = k;
        return true;
      }
    }
    return false;
  }
  default:
    return false;
  }
}

/* The string types: checked, then kept (heap) in the field. */
static bool apply_string(struct nrd_config *cfg, const struct opt *o, const char *text)
{
  char **sp = field(cfg, o);

  if (o->type == OPT_CIDRLIST) {
    struct nrd_cidr *list = NULL;
    size_t n = 0;
    if (!parse_cidr_list(text, &list, &n))
      return false;
    free(cfg->proxies);
    cfg->proxies = list;
    cfg->n_proxies = n;
  }
  if (*text && ((o->type == OPT_URL && !valid_url(text)) ||
                (o->type == OPT_WORDLIST && !valid_wordlist(text))))
    return false;
  /* "" unsets an optional value and is refused otherwise. */
  if (*text == '\0' && o->type != OPT_CIDRLIST) {
    if (o->def)
      return false;
    free(*sp);
    *sp = NULL;
    return true;
  }
  free(*sp);
  *sp = nrd_xstrdup(text);
  if (o->type == OPT_URL) {
    size_t len = strlen(*sp);
    /* valid_url checked for a scheme and at least one host byte */
    size_t keep = (strncmp(*sp, "https://", 8) == 0 ? 8u : 7u) + 1u;
    while (len > keep && (*sp)[len - 1] == '/')
      (*sp)[--len] = '\0';
  }
  return true;
}

static bool apply(struct nrd_config *cfg, const struct opt *o, const char *text)
{
  if (types[o->type].text)
    return apply_string(cfg, o, text);
  return apply_value(field(cfg, o), o, text);
}

void nrd_config_defaults(struct nrd_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  for (size_t k = 0; k < N_OPTS; k++) {
    if (opts[k].def && !apply(cfg, &opts[k], opts[k].def)) {
      fprintf(stderr, "fatal: bad built-in default for %s\n", opts[k].env);
      abort();
    }
  }
}

void nrd_config_cleanup(struct nrd_config *cfg)
{
  if (!cfg)
    return;
  for (size_t k = 0; k < N_OPTS; k++) {
    enum opt_type t = opts[k].type;
    if (t == OPT_STRING || t == OPT_URL || t == OPT_CIDRLIST || t == OPT_WORDLIST)
      free(*(char **)field(cfg, &opts[k]));
  }
  free(cfg->proxies);
  memset(cfg, 0, sizeof *cfg);
}

void nrd_config_copy(struct nrd_config *dst, const struct nrd_config *src)
{
  *dst = *src;
  for (size_t k = 0; k < N_OPTS; k++) {
    enum opt_type t = opts[k].type;
    char **f = (char **)field(dst, &opts[k]);
    if ((t == OPT_STRING || t == OPT_URL || t == OPT_CIDRLIST || t == OPT_WORDLIST) && *f)
      *f = nrd_xstrdup(*f);
  }
  dst->proxies = NULL;
  if (src->n_proxies) {
    dst->proxies = nrd_xcalloc(src->n_proxies, sizeof *dst->proxies);
    memcpy(dst->proxies, src->proxies, src->n_proxies * sizeof *dst->proxies);
  }
}

static const struct opt *find_flag(const char *name, size_t len)
{
  for (size_t k = 0; k < N_OPTS; k++) {
    if (strlen(opts[k].flag) == len && strncmp(opts[k].flag, name, len) == 0)
      return &opts[k];
  }
  return NULL;
}

/* Reads the secret in path (what names it in errors) into *out: at most
 * SECRET_MAX_BYTES, trailing newlines dropped, not empty, no NUL. */
static int read_secret_file(const char *what, const char *path, char **out, char *err,
                            size_t errlen)
{
  int rc = -1;
  char *data = nrd_xmalloc(SECRET_MAX_BYTES + 1);
  FILE *fp = fopen(path, "r");
  if (!fp) {
    seterr(err, errlen, "%s: cannot read '%s': %s", what, path, strerror(errno));
    goto out;
  }
  size_t n = fread(data, 1, SECRET_MAX_BYTES + 1, fp);
  if (ferror(fp) || n > SECRET_MAX_BYTES) {
    seterr(err, errlen, "%s: cannot read '%s'; expected a file of at most %d bytes", what, path,
           SECRET_MAX_BYTES);
    goto out;
  }
  while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
    n--;
  data[n] = '\0';
  if (n == 0 || memchr(data, '\0', n)) {
    seterr(err, errlen, "%s: '%s' is empty or not text; expected a file holding the secret", what,
           path);
    goto out;
  }
  free(*out);
  *out = nrd_xstrdup(data);
  rc = 0;
out:
  if (fp)
    fclose(fp);
  free(data);
  return rc;
}

/* Fills each secret from its _FILE, or from $CREDENTIALS_DIRECTORY/<NAME>
 * when systemd passed that credential; two sources for one secret are refused. */
static int load_secret_files(struct nrd_config *cfg, char *err, size_t errlen)
{
  const char *creds = getenv("CREDENTIALS_DIRECTORY");
  for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
    const struct secret_src *s = &secrets[i];
    char **value = (char **)((char *)cfg + s->value);
    const char *file = *(char **)((char *)cfg + s->file);
    char cred[4096], what[96];
    bool has_cred = false;
    if (creds && *creds) {
      snprintf(cred, sizeof cred, "%s/%s", creds, s->env);
      has_cred = access(cred, F_OK) == 0;
    }
    if (file && *value) {
      seterr(err, errlen, "%s and %s are both set; set one", s->env, s->file_env);
      return -1;
    }
    if (has_cred && (file || *value)) {
      seterr(err, errlen, "%s is set both as %s and as the systemd credential %s; set one", s->env,
             file ? s->file_env : s->env, s->env);
      return -1;
    }
    if (file && read_secret_file(s->file_env, file, value, err, errlen) != 0)
      return -1;
    snprintf(what, sizeof what, "credential %s", s->env);
    if (has_cred && read_secret_file(what, cred, value, err, errlen) != 0)
      return -1;
  }
  return 0;
}

int nrd_config_load(struct nrd_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
  const char *text[N_OPTS];
  nrd_config_defaults(cfg);
  if (err && errlen)
    err[0] = '\0';

  for (size_t k = 0; k < N_OPTS; k++)
    text[k] = getenv(opts[k].env);

  /* Flags come second: a flag beats the variable. */
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0) {
      seterr(err, errlen, "unexpected argument '%.64s' (see --help)", arg);
      return NRD_CONFIG_EUSAGE;
    }
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const struct opt *o = find_flag(arg, len);
    if (!o) {
      seterr(err, errlen, "unknown option %.*s (see --help)", (int)(len > 64 ? 64 : len), arg);
      return NRD_CONFIG_EUSAGE;
    }
    const char *value;
    if (eq) {
      value = eq + 1;
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      value = argv[++i];
    } else if (o->type == OPT_BOOL) {
      value = "true";
    } else {
      seterr(err, errlen, "%s (%s) needs a value", o->env, o->flag);
      return NRD_CONFIG_EUSAGE;
    }
    text[o - opts] = value;
  }

  for (size_t k = 0; k < N_OPTS; k++) {
    if (!text[k] || apply(cfg, &opts[k], text[k]))
      continue;
    char accepted[96];
    describe(&opts[k], accepted, sizeof accepted);
    seterr(err, errlen, "%s: '%.64s' is not valid; expected %s", opts[k].env,
           opts[k].secret ? "***" : text[k], accepted);
    return -1;
  }

  if (load_secret_files(cfg, err, errlen) != 0)
    return -1;
  const char *url = cfg->database_url;
  if (url && *url && strncmp(url, "postgres://", 11) != 0 &&
      strncmp(url, "postgresql://", 13) != 0) {
    /* Not echoed: it may hold a password. */
    seterr(err, errlen, "DATABASE_URL: expected a postgres:// or postgresql:// URL");
    return -1;
  }
  return 0;
}

/* The value of o in cfg as JSON text (secrets "***", unset null). */
static void value_json(const struct nrd_config *cfg, const struct opt *o, struct nrd_buf *b)
{
  const void *f = cfield(cfg, o);
  static const char *const level_names[] = { "error", "warn", "info", "debug" };
  switch (o->type) {
  case OPT_UINT:
    nrd_buf_printf(b, "%u", *(const unsigned *)f);
    return;
  case OPT_SIZE:
    nrd_buf_printf(b, "%zu", *(const size_t *)f);
    return;
  case OPT_DOUBLE:
    nrd_buf_printf(b, "%g", *(const double *)f);
    return;
  case OPT_BOOL:
    nrd_buf_puts(b, *(const bool *)f ? "true" : "false");
    return;
  case OPT_LOGLEVEL: {
    unsigned lv = (unsigned)*(const enum nrd_log_level *)f;
    nrd_buf_json_str(b, lv < 4 ? level_names[lv] : "?");
    return;
  }
  case OPT_CHOICE:
    nrd_buf_json_str(b, nrd_config_choice_name(cfg, o->env));
    return;
  case OPT_STRING:
  case OPT_URL:
  case OPT_WORDLIST:
  case OPT_CIDRLIST: {
    const char *s = *(char *const *)f;
    if (!s)
      nrd_buf_puts(b, "null");
    else
      nrd_buf_json_str(b, o->secret ? "***" : s);
    return;
  }
  }
}

void nrd_config_log(const struct nrd_config *cfg)
{
  if (!nrd_log_enabled(NRD_LOG_INFO))
    return;
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_puts(&b, "{");
  for (size_t k = 0; k < N_OPTS; k++) {
    if (k > 0)
      nrd_buf_puts(&b, ",");
    nrd_buf_json_str(&b, opts[k].env);
    nrd_buf_puts(&b, ":");
    value_json(cfg, &opts[k], &b);
  }
  nrd_buf_puts(&b, "}");
  LOG_INFO("configuration", "#config", b.data);
  nrd_buf_cleanup(&b);
}

const char *nrd_config_choice_name(const struct nrd_config *cfg, const char *env)
{
  for (size_t k = 0; k < N_OPTS; k++) {
    if (opts[k].type != OPT_CHOICE || strcmp(opts[k].env, env) != 0)
      continue;
    const char *const *names = choices_of(&opts[k]);
    unsigned v = *(const unsigned *)cfield(cfg, &opts[k]);
    for (unsigned i = 0; names && names[i]; i++)
      if (i == v)
        return names[i];
  }
  return "?";
}

void nrd_config_print_help(FILE *out)
{
  fprintf(out, "Options (each flag is also an environment variable; a flag beats the variable):\n");
  fprintf(out, "  %-32s %-30s %-20s %s\n", "flag", "variable", "default", "meaning");
  for (size_t k = 0; k < N_OPTS; k++) {
    const struct opt *o = &opts[k];
    fprintf(out, "  %-32s %-30s %-20s %s\n", o->flag, o->env, o->def ? o->def : "(unset)", o->help);
  }
}

bool nrd_config_is_trusted_proxy(const struct nrd_config *cfg, const unsigned char addr[16])
{
  for (size_t k = 0; k < cfg->n_proxies; k++) {
    const struct nrd_cidr *c = &cfg->proxies[k];
    unsigned full = c->prefix / 8, bits = c->prefix % 8;
    if (full > 16 || memcmp(c->addr, addr, full) != 0)
      continue;
    if (bits == 0)
      return true;
    unsigned char mask = (unsigned char)(0xFFu << (8 - bits));
    if ((c->addr[full] & mask) == (addr[full] & mask))
      return true;
  }
  return false;
}
