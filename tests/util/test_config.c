/* Unit tests for the configuration table: defaults, environment and flags,
 * validation messages, secrets, API_TOKEN_FILE, trusted-proxy CIDRs. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "nrd/config.h"
#include "nrd/util.h"
#include "testutil.h"

static const char *const all_vars[] = {
  "PORT",
  "HOST",
  "DATABASE_PATH",
  "DATABASE_URL",
  "DATABASE_URL_FILE",
  "NOVITA_API_KEY",
  "NOVITA_API_BASE_URL",
  "NOVITA_INTERNAL_API_KEY",
  "NOVITA_INTERNAL_API_BASE_URL",
  "NOVITA_RATE_LIMIT_RPS",
  "NOVITA_RATE_LIMIT_MAX_RPS",
  "NOVITA_RATE_LIMIT_ADAPTIVE",
  "NOVITA_PAGE_SIZE",
  "DEFAULT_REGION",
  "MIGRATION_DRY_RUN",
  "MIGRATION_INTERVAL_MINUTES",
  "WATCH_INTERVAL_SECONDS",
  "MIGRATION_MAX_CONCURRENT",
  "MIGRATION_JOB_LOOKBACK_HOURS",
  "MAX_RECOVERIES_PER_RUN",
  "MAX_RETRY_ATTEMPTS",
  "REQUEST_TIMEOUT",
  "RUN_DEADLINE_SECONDS",
  "RECOVERY_LEASE_SECONDS",
  "RECOVERY_START_POLL_SECONDS",
  "RECOVERY_START_TIMEOUT_SECONDS",
  "RECOVER_STATUSES",
  "CIRCUIT_FAILURE_THRESHOLD",
  "CIRCUIT_COOLDOWN_SECONDS",
  "API_TOKEN",
  "API_TOKEN_FILE",
  "TRUSTED_PROXIES",
  "MAX_BODY_BYTES",
  "HTTP_REQUEST_TIMEOUT_SECONDS",
  "HTTP_MAX_CONNECTIONS",
  "HTTP_MAX_CONNECTIONS_PER_IP",
  "WEBHOOK_URL",
  "WEBHOOK_SECRET",
  "WEBHOOK_MAX_AGE_HOURS",
  "RETENTION_DAYS",
  "LOG_LEVEL",
  "NOVITA_API_KEY_FILE",
  "NOVITA_INTERNAL_API_KEY_FILE",
  "WEBHOOK_SECRET_FILE",
  "RECOVERY_PLACEMENT",
  "RECOVERY_BILLING_FALLBACK",
};

static int clear_env(void **state)
{
  for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++)
    unsetenv(all_vars[i]);
  unsetenv("CREDENTIALS_DIRECTORY");
  return 0;
}

/* Loads with argv (NULL-terminated list) and returns the status. */
static int load(struct nrd_config *cfg, const char *const *args, char *err, size_t errlen)
{
  char *argv[16] = { 0 };
  int argc = 0;
  while (args && args[argc]) {
    argv[argc] = (char *)args[argc];
    argc++;
  }
  return nrd_config_load(cfg, argc, argv, err, errlen);
}

static void check_defaults(const struct nrd_config *c)
{
  assert_int_equal(c->port, 3000);
  assert_string_equal(c->host, "127.0.0.1");
  assert_string_equal(c->database_path, "./data/recovery.db");
  assert_null(c->novita_api_key);
  assert_string_equal(c->novita_api_base_url, "https://api.novita.ai/gpu-instance/openapi");
  assert_null(c->novita_internal_api_key);
  assert_null(c->novita_internal_api_base_url);
  assert_true(c->novita_rate_limit_rps == 20.0);
  assert_true(c->novita_rate_limit_max_rps == 50.0);
  assert_true(c->novita_rate_limit_adaptive);
  assert_int_equal(c->novita_page_size, 100);
  assert_string_equal(c->default_region, "CN-HK-01");
  assert_false(c->migration_dry_run);
  assert_int_equal(c->migration_interval_minutes, 15);
  assert_int_equal(c->migration_max_concurrent, 8);
  assert_int_equal(c->migration_job_lookback_hours, 24);
  assert_int_equal(c->max_recoveries_per_run, 100);
  assert_int_equal(c->max_retry_attempts, 3);
  assert_int_equal(c->request_timeout_ms, 30000);
  assert_int_equal(c->run_deadline_seconds, 600);
  assert_int_equal(c->recovery_lease_seconds, 30);
  assert_int_equal(c->recovery_start_poll_seconds, 30);
  assert_int_equal(c->recovery_start_timeout_seconds, 1800);
  assert_string_equal(c->recover_statuses, "migrating");
  assert_int_equal(c->circuit_failure_threshold, 5);
  assert_int_equal(c->circuit_cooldown_seconds, 30);
  assert_null(c->api_token);
  assert_null(c->api_token_file);
  assert_string_equal(c->trusted_proxies, "127.0.0.1/8,::1");
  assert_int_equal(c->n_proxies, 2);
  assert_int_equal(c->max_body_bytes, 65536);
  assert_null(c->webhook_url);
  assert_null(c->webhook_secret);
  assert_int_equal(c->webhook_max_age_hours, 24);
  assert_int_equal(c->retention_days, 30);
  assert_int_equal(c->log_level, NRD_LOG_INFO);
}

static void test_defaults(void **state)
{
  struct nrd_config c;
  nrd_config_defaults(&c);
  check_defaults(&c);
  nrd_config_cleanup(&c);

  char err[256];
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  check_defaults(&c);
  nrd_config_cleanup(&c);
}

static void test_env_and_flags(void **state)
{
  struct nrd_config c;
  char err[256];
  setenv("PORT", "8081", 1);
  setenv("HOST", "0.0.0.0", 1);
  setenv("MIGRATION_DRY_RUN", "YES", 1);
  setenv("NOVITA_RATE_LIMIT_RPS", "2.5", 1);
  setenv("LOG_LEVEL", "debug", 1);
  setenv("NOVITA_API_BASE_URL", "http://127.0.0.1:9/base/", 1);
  setenv("MAX_BODY_BYTES", "1024", 1);
  setenv("RECOVER_STATUSES", "migrating,exited", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_string_equal(c.recover_statuses, "migrating,exited");
  assert_int_equal(c.port, 8081);
  assert_string_equal(c.host, "0.0.0.0");
  assert_true(c.migration_dry_run);
  assert_true(c.novita_rate_limit_rps == 2.5);
  assert_int_equal(c.log_level, NRD_LOG_DEBUG);
  assert_string_equal(c.novita_api_base_url, "http://127.0.0.1:9/base"); /* slash stripped */
  assert_int_equal(c.max_body_bytes, 1024);
  assert_int_equal(c.recovery_placement, NRD_PLACE_SAME_CLUSTER); /* defaults */
  assert_int_equal(c.recovery_billing_fallback, NRD_BILLING_FALLBACK_NONE);
  nrd_config_cleanup(&c);

  setenv("RECOVERY_PLACEMENT", "same-region", 1);
  setenv("RECOVERY_BILLING_FALLBACK", "onDemand", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_int_equal(c.recovery_placement, NRD_PLACE_SAME_REGION);
  assert_int_equal(c.recovery_billing_fallback, NRD_BILLING_FALLBACK_ON_DEMAND);
  assert_string_equal(nrd_config_choice_name(&c, "RECOVERY_PLACEMENT"), "same-region");
  nrd_config_cleanup(&c);
  const char *place_any[] = { "--recovery-placement=any", NULL };
  assert_int_equal(load(&c, place_any, err, sizeof err), 0);
  assert_int_equal(c.recovery_placement, NRD_PLACE_ANY);
  nrd_config_cleanup(&c);
  unsetenv("RECOVERY_PLACEMENT");
  unsetenv("RECOVERY_BILLING_FALLBACK");

  /* Flags beat the environment; both flag forms; a bare boolean flag is true. */
  setenv("MIGRATION_DRY_RUN", "false", 1);
  const char *args[] = {
    "--port=0",           "--host", "::1", "--migration-dry-run", "--database-path", "/x/y.db",
    "--novita-api-key=k", NULL
  };
  assert_int_equal(load(&c, args, err, sizeof err), 0);
  assert_int_equal(c.port, 0);
  assert_string_equal(c.host, "::1");
  assert_true(c.migration_dry_run);
  assert_string_equal(c.database_path, "/x/y.db");
  assert_string_equal(c.novita_api_key, "k");
  assert_int_equal(c.log_level, NRD_LOG_DEBUG); /* env still applies where no flag */
  nrd_config_cleanup(&c);

  const char *off[] = { "--migration-dry-run=no", NULL };
  setenv("MIGRATION_DRY_RUN", "true", 1);
  assert_int_equal(load(&c, off, err, sizeof err), 0);
  assert_false(c.migration_dry_run);
  nrd_config_cleanup(&c);

  /* A bad variable overridden by a good flag is fine. */
  setenv("PORT", "abc", 1);
  const char *fix[] = { "--port", "9", NULL };
  assert_int_equal(load(&c, fix, err, sizeof err), 0);
  assert_int_equal(c.port, 9);
  nrd_config_cleanup(&c);
}

struct bad_case {
  const char *var, *value, *expect;
};

static void test_bad_values(void **state)
{
  const struct bad_case cases[] = {
    { "PORT", "abc", "PORT: 'abc' is not valid; expected an integer 0-65535" },
    { "PORT", "70000", "PORT: '70000' is not valid; expected an integer 0-65535" },
    { "PORT", "-1", "PORT: '-1'" },
    { "PORT", "", "PORT: ''" },
    { "MIGRATION_MAX_CONCURRENT", "0",
      "MIGRATION_MAX_CONCURRENT: '0' is not valid; expected an integer 1-256" },
    { "NOVITA_API_BASE_URL", "ftp://x",
      "NOVITA_API_BASE_URL: 'ftp://x' is not valid; expected an http" },
    { "WEBHOOK_URL", "example.com/hook", "WEBHOOK_URL: 'example.com/hook'" },
    { "LOG_LEVEL", "loud", "LOG_LEVEL: 'loud' is not valid; expected error, warn, info or debug" },
    { "MIGRATION_DRY_RUN", "maybe",
      "MIGRATION_DRY_RUN: 'maybe' is not valid; expected true/false/1/0/yes/no" },
    { "TRUSTED_PROXIES", "1.2.3.4/33", "TRUSTED_PROXIES: '1.2.3.4/33' is not valid" },
    { "RECOVER_STATUSES", "migrating,,exited",
      "RECOVER_STATUSES: 'migrating,,exited' is not valid; expected comma-separated instance "
      "statuses" },
    { "RECOVER_STATUSES", "exited ", "RECOVER_STATUSES: 'exited ' is not valid" },
    { "TRUSTED_PROXIES", "10.0.0.0/8,,::1", "TRUSTED_PROXIES:" },
    { "TRUSTED_PROXIES", "::1/129", "TRUSTED_PROXIES:" },
    { "TRUSTED_PROXIES", "localhost", "TRUSTED_PROXIES:" },
    { "NOVITA_RATE_LIMIT_RPS", "fast",
      "NOVITA_RATE_LIMIT_RPS: 'fast' is not valid; expected a number 0-10000" },
    { "REQUEST_TIMEOUT", "99", "REQUEST_TIMEOUT: '99'" },
    { "MAX_BODY_BYTES", "0", "MAX_BODY_BYTES: '0'" },
    { "MAX_RETRY_ATTEMPTS", "11", "MAX_RETRY_ATTEMPTS: '11'" },
    { "NOVITA_PAGE_SIZE", "1001", "NOVITA_PAGE_SIZE: '1001'" },
    { "HOST", "", "HOST: ''" },
    { "RECOVERY_PLACEMENT", "anywhere",
      "RECOVERY_PLACEMENT: 'anywhere' is not valid; expected same-cluster, same-region or any" },
    { "RECOVERY_BILLING_FALLBACK", "spot",
      "RECOVERY_BILLING_FALLBACK: 'spot' is not valid; expected none or onDemand" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct nrd_config c;
    char err[256] = "";
    clear_env(NULL);
    setenv(cases[i].var, cases[i].value, 1);
    assert_int_equal(load(&c, NULL, err, sizeof err), -1);
    if (strncmp(err, cases[i].expect, strlen(cases[i].expect)) != 0)
      fail_msg("%s=%s gave \"%s\", expected \"%s...\"", cases[i].var, cases[i].value, err,
               cases[i].expect);
    nrd_config_cleanup(&c);

    /* The same value given as a flag names the same variable. */
    char flag[128];
    snprintf(flag, sizeof flag, "--%s=%s", cases[i].var, cases[i].value);
    for (char *p = flag + 2; *p && *p != '='; p++)
      *p = *p == '_' ? '-' : (char)(*p - 'A' + 'a');
    clear_env(NULL);
    const char *args[] = { flag, NULL };
    assert_int_equal(load(&c, args, err, sizeof err), -1);
    if (strncmp(err, cases[i].expect, strlen(cases[i].expect)) != 0)
      fail_msg("%s gave \"%s\"", flag, err);
    nrd_config_cleanup(&c);
  }
}

static void test_flag_errors(void **state)
{
  struct nrd_config c;
  char err[256];
  const char *unknown[] = { "--foo=1", NULL };
  assert_int_equal(load(&c, unknown, err, sizeof err), NRD_CONFIG_EUSAGE);
  assert_string_equal(err, "unknown option --foo (see --help)");
  nrd_config_cleanup(&c);

  const char *missing[] = { "--port", NULL };
  assert_int_equal(load(&c, missing, err, sizeof err), NRD_CONFIG_EUSAGE);
  assert_non_null(strstr(err, "PORT"));
  nrd_config_cleanup(&c);

  const char *stray[] = { "serve", NULL };
  assert_int_equal(load(&c, stray, err, sizeof err), NRD_CONFIG_EUSAGE);
  nrd_config_cleanup(&c);
}

static void test_secrets_not_echoed(void **state)
{
  struct nrd_config c;
  char err[256];
  /* Secrets are free-form strings, so they fail only through the rules around
   * them: API_TOKEN together with API_TOKEN_FILE, a mistyped flag name. */
  setenv("API_TOKEN", "hunter2-secret", 1);
  setenv("API_TOKEN_FILE", "/nonexistent/token", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), -1);
  assert_null(strstr(err, "hunter2"));
  assert_non_null(strstr(err, "API_TOKEN"));
  nrd_config_cleanup(&c);
  clear_env(NULL);

  /* The error for a secret given as an unknown-looking flag never shows the value. */
  const char *typo[] = { "--novita-api-kye=sk_live_secret", NULL };
  assert_int_equal(load(&c, typo, err, sizeof err), NRD_CONFIG_EUSAGE);
  assert_null(strstr(err, "sk_live_secret"));
  nrd_config_cleanup(&c);
}

/* The configuration's log line (nrd_config_log) into buf. */
static void config_log_text(const struct nrd_config *c, char *buf, size_t len)
{
  FILE *fp = tmpfile();
  assert_non_null(fp);
  nrd_log_set_fd(fileno(fp));
  nrd_config_log(c);
  nrd_log_set_fd(1);
  ssize_t n = pread(fileno(fp), buf, len - 1, 0);
  assert_true(n > 0);
  buf[n] = '\0';
  fclose(fp);
}

static void test_log_redacts(void **state)
{
  struct nrd_config c;
  char err[256];
  setenv("NOVITA_API_KEY", "sk_live_secret", 1);
  setenv("WEBHOOK_SECRET", "whsec_secret", 1);
  setenv("API_TOKEN", "tok_secret", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);

  char buf[8192];
  config_log_text(&c, buf, sizeof buf);
  assert_null(strstr(buf, "secret"));
  cJSON *line = cJSON_Parse(buf);
  assert_non_null(line);
  assert_string_equal(cJSON_GetObjectItem(line, "msg")->valuestring, "configuration");
  cJSON *cfgj = cJSON_GetObjectItem(line, "config");
  assert_string_equal(cJSON_GetObjectItem(cfgj, "NOVITA_API_KEY")->valuestring, "***");
  assert_string_equal(cJSON_GetObjectItem(cfgj, "WEBHOOK_SECRET")->valuestring, "***");
  assert_true(cJSON_IsNull(cJSON_GetObjectItem(cfgj, "NOVITA_INTERNAL_API_KEY")));
  assert_int_equal(cJSON_GetObjectItem(cfgj, "PORT")->valueint, 3000);
  assert_int_equal(cJSON_GetArraySize(cfgj), (int)(sizeof all_vars / sizeof all_vars[0]));
  cJSON_Delete(line);
  nrd_config_cleanup(&c);
}

/* A temporary file holding content; caller unlinks and frees the path. */
static char *temp_file(const char *content)
{
  const char *dir = getenv("TMPDIR");
  struct nrd_buf b;
  nrd_buf_init(&b);
  nrd_buf_printf(&b, "%s/nrd-token-XXXXXX", dir && *dir ? dir : P_tmpdir);
  int fd = mkstemp(b.data);
  assert_true(fd >= 0);
  size_t len = strlen(content);
  assert_int_equal(write(fd, content, len), (ssize_t)len);
  close(fd);
  return nrd_buf_steal(&b);
}

static void test_api_token_file(void **state)
{
  struct nrd_config c;
  char err[256];
  char *path = temp_file("s3cret-token\n");
  setenv("API_TOKEN_FILE", path, 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_string_equal(c.api_token, "s3cret-token");
  nrd_config_cleanup(&c);
  unlink(path);
  free(path);

  path = temp_file("\n");
  const char *args[] = { "--api-token-file", path, NULL };
  clear_env(NULL);
  assert_int_equal(load(&c, args, err, sizeof err), -1);
  assert_non_null(strstr(err, "API_TOKEN_FILE"));
  assert_non_null(strstr(err, "empty"));
  nrd_config_cleanup(&c);
  unlink(path);
  free(path);

  setenv("API_TOKEN_FILE", "/nonexistent/dir/token", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), -1);
  assert_non_null(strstr(err, "API_TOKEN_FILE"));
  nrd_config_cleanup(&c);
}

/* Each secret from its _FILE; a value and its _FILE together are refused
 * with both named; flags count as a source too. */
static void test_secret_files(void **state)
{
  static const struct {
    const char *env, *file_env, *flag;
    size_t off;
  } cases[] = {
    { "NOVITA_API_KEY", "NOVITA_API_KEY_FILE", "--novita-api-key-file",
      offsetof(struct nrd_config, novita_api_key) },
    { "NOVITA_INTERNAL_API_KEY", "NOVITA_INTERNAL_API_KEY_FILE", "--novita-internal-api-key-file",
      offsetof(struct nrd_config, novita_internal_api_key) },
    { "WEBHOOK_SECRET", "WEBHOOK_SECRET_FILE", "--webhook-secret-file",
      offsetof(struct nrd_config, webhook_secret) },
    { "API_TOKEN", "API_TOKEN_FILE", "--api-token-file", offsetof(struct nrd_config, api_token) },
  };
  struct nrd_config c;
  char err[256];
  char *path = temp_file("from-a-file\r\n");

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    clear_env(NULL);
    setenv(cases[i].file_env, path, 1);
    assert_int_equal(load(&c, NULL, err, sizeof err), 0);
    assert_string_equal(*(char **)((char *)&c + cases[i].off), "from-a-file");
    nrd_config_cleanup(&c);

    setenv(cases[i].env, "also-a-value", 1);
    assert_int_equal(load(&c, NULL, err, sizeof err), NRD_CONFIG_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%s and %s are both set", cases[i].env, cases[i].file_env);
    assert_non_null(strstr(err, want));
    assert_null(strstr(err, "also-a-value"));
    nrd_config_cleanup(&c);

    unsetenv(cases[i].file_env);
    const char *args[] = { cases[i].flag, "/nonexistent/secret", NULL };
    assert_int_equal(load(&c, args, err, sizeof err), NRD_CONFIG_EINVAL);
    assert_non_null(strstr(err, cases[i].env));
    nrd_config_cleanup(&c);
  }
  clear_env(NULL);
  unlink(path);
  free(path);
}

/* DATABASE_URL selects PostgreSQL: from the variable or DATABASE_URL_FILE
 * (not both), only postgres:// or postgresql://, never shown in an error or
 * in the configuration's dump. */
static void test_database_url(void **state)
{
  struct nrd_config c;
  char err[256];
  char *path = temp_file("postgresql://app:hunter2@db.example/recovery\n");
  clear_env(NULL);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_null(c.database_url); /* unset: SQLite at DATABASE_PATH */
  nrd_config_cleanup(&c);

  setenv("DATABASE_URL_FILE", path, 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_string_equal(c.database_url, "postgresql://app:hunter2@db.example/recovery");
  char buf[8192];
  config_log_text(&c, buf, sizeof buf);
  assert_null(strstr(buf, "hunter2"));
  assert_non_null(strstr(buf, "\"DATABASE_URL\":\"***\""));
  nrd_config_cleanup(&c);

  setenv("DATABASE_URL", "postgres://app:hunter2@db/x", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), NRD_CONFIG_EINVAL);
  assert_non_null(strstr(err, "DATABASE_URL and DATABASE_URL_FILE are both set"));
  assert_null(strstr(err, "hunter2"));
  nrd_config_cleanup(&c);

  unsetenv("DATABASE_URL_FILE");
  setenv("DATABASE_URL", "mysql://app:hunter2@db/x", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), NRD_CONFIG_EINVAL);
  assert_non_null(strstr(err, "postgres://"));
  assert_null(strstr(err, "hunter2"));
  nrd_config_cleanup(&c);
  clear_env(NULL);
  unlink(path);
  free(path);
  (void)state;
}

/* Under systemd: $CREDENTIALS_DIRECTORY/NAME is read; a credential together
 * with the value or its _FILE is refused; a credential not passed is not an
 * error. */
static void test_credentials_directory(void **state)
{
  struct nrd_config c;
  char err[512], file[600];
  char *dir = tu_tempdir();
  snprintf(file, sizeof file, "%s/NOVITA_API_KEY", dir);
  FILE *fp = fopen(file, "w");
  assert_non_null(fp);
  fputs("cred-key\n", fp);
  fclose(fp);

  setenv("CREDENTIALS_DIRECTORY", dir, 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_string_equal(c.novita_api_key, "cred-key");
  assert_null(c.webhook_secret);
  nrd_config_cleanup(&c);

  setenv("NOVITA_API_KEY", "env-key", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), NRD_CONFIG_EINVAL);
  assert_non_null(strstr(err, "systemd credential NOVITA_API_KEY"));
  assert_null(strstr(err, "env-key"));
  nrd_config_cleanup(&c);

  unsetenv("NOVITA_API_KEY");
  setenv("NOVITA_API_KEY_FILE", file, 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), NRD_CONFIG_EINVAL);
  assert_non_null(strstr(err, "NOVITA_API_KEY_FILE"));
  nrd_config_cleanup(&c);
  clear_env(NULL);
  unlink(file);
  rmdir(dir);
  free(dir);
}

/* A command line that cannot be read is a usage error, a bad value a
 * configuration error (main maps them to 64 and 78). */
static void test_usage_vs_config(void **state)
{
  struct nrd_config c;
  char err[256];
  const char *unknown[] = { "--no-such-flag", NULL };
  assert_int_equal(load(&c, unknown, err, sizeof err), NRD_CONFIG_EUSAGE);
  nrd_config_cleanup(&c);
  const char *stray[] = { "stray", NULL };
  assert_int_equal(load(&c, stray, err, sizeof err), NRD_CONFIG_EUSAGE);
  nrd_config_cleanup(&c);
  const char *novalue[] = { "--port", NULL };
  assert_int_equal(load(&c, novalue, err, sizeof err), NRD_CONFIG_EUSAGE);
  nrd_config_cleanup(&c);
  const char *bad[] = { "--port", "abc", NULL };
  assert_int_equal(load(&c, bad, err, sizeof err), NRD_CONFIG_EINVAL);
  nrd_config_cleanup(&c);
}

static bool trusted(const struct nrd_config *c, const char *ip)
{
  unsigned char addr[16];
  assert_true(nrd_parse_ip(ip, addr));
  return nrd_config_is_trusted_proxy(c, addr);
}

static void test_cidr(void **state)
{
  struct nrd_config c;
  char err[256];
  unsigned char addr[16];
  assert_false(nrd_parse_ip("1.2.3", addr));
  assert_false(nrd_parse_ip("::g", addr));
  assert_false(nrd_parse_ip("", addr));
  assert_true(nrd_parse_ip("1.2.3.4", addr));
  const unsigned char mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4 };
  assert_memory_equal(addr, mapped, 16);

  /* Defaults: loopback v4 /8 and ::1. */
  nrd_config_defaults(&c);
  assert_true(trusted(&c, "127.0.0.1"));
  assert_true(trusted(&c, "127.255.0.9"));
  assert_true(trusted(&c, "::ffff:127.0.0.1"));
  assert_true(trusted(&c, "::1"));
  assert_false(trusted(&c, "128.0.0.1"));
  assert_false(trusted(&c, "::2"));
  assert_false(trusted(&c, "10.0.0.1"));
  nrd_config_cleanup(&c);

  setenv("TRUSTED_PROXIES", " 10.1.0.0/16 , 192.168.1.7, 2001:db8::/33, fe80::1/128, 172.16.0.0/12",
         1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_int_equal(c.n_proxies, 5);
  assert_true(trusted(&c, "10.1.200.3"));
  assert_false(trusted(&c, "10.2.0.1"));
  assert_true(trusted(&c, "192.168.1.7"));
  assert_false(trusted(&c, "192.168.1.8"));
  assert_true(trusted(&c, "2001:db8:7fff::1"));
  assert_false(trusted(&c, "2001:db8:8000::1")); /* bit 33 set */
  assert_true(trusted(&c, "fe80::1"));
  assert_false(trusted(&c, "fe80::2"));
  assert_true(trusted(&c, "172.31.255.255"));
  assert_false(trusted(&c, "172.32.0.0"));
  assert_false(trusted(&c, "127.0.0.1"));
  nrd_config_cleanup(&c);

  /* Empty list trusts nobody; /0 trusts everyone of that family. */
  setenv("TRUSTED_PROXIES", "", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_int_equal(c.n_proxies, 0);
  assert_false(trusted(&c, "127.0.0.1"));
  nrd_config_cleanup(&c);
  setenv("TRUSTED_PROXIES", "0.0.0.0/0", 1);
  assert_int_equal(load(&c, NULL, err, sizeof err), 0);
  assert_true(trusted(&c, "8.8.8.8"));
  assert_false(trusted(&c, "2001:db8::1"));
  nrd_config_cleanup(&c);
}

static void test_help(void **state)
{
  FILE *fp = tmpfile();
  assert_non_null(fp);
  nrd_config_print_help(fp);
  long size = ftell(fp);
  assert_true(size > 0);
  char *buf = nrd_xmalloc((size_t)size + 1);
  rewind(fp);
  assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
  buf[size] = '\0';
  fclose(fp);
  for (size_t i = 0; i < sizeof all_vars / sizeof all_vars[0]; i++)
    assert_non_null(strstr(buf, all_vars[i]));
  assert_non_null(strstr(buf, "--database-path"));
  assert_non_null(strstr(buf, "--migration-dry-run"));
  assert_non_null(strstr(buf, "./data/recovery.db"));
  free(buf);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_defaults, clear_env),
    cmocka_unit_test_setup(test_env_and_flags, clear_env),
    cmocka_unit_test_setup(test_bad_values, clear_env),
    cmocka_unit_test_setup(test_flag_errors, clear_env),
    cmocka_unit_test_setup(test_secrets_not_echoed, clear_env),
    cmocka_unit_test_setup(test_log_redacts, clear_env),
    cmocka_unit_test_setup(test_api_token_file, clear_env),
    cmocka_unit_test_setup(test_secret_files, clear_env),
    cmocka_unit_test_setup(test_database_url, clear_env),
    cmocka_unit_test_setup(test_credentials_directory, clear_env),
    cmocka_unit_test_setup(test_usage_vs_config, clear_env),
    cmocka_unit_test_setup(test_cidr, clear_env),
    cmocka_unit_test_setup(test_help, clear_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
