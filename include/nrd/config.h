#ifndef NRD_CONFIG_H
#define NRD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "nrd/log.h"

/* The service's configuration. One table (src/util/config.c) of
 * {env name, flag, type, default, bounds, secret, help} drives parsing,
 * validation, --help and the redacted start-up dump. Every variable is also a
 * flag: NOVITA_API_KEY <-> --novita-api-key; a flag beats the variable.
 * After nrd_config_load the struct is treated as immutable and passed by
 * const pointer. Strings are heap-owned (freed by nrd_config_cleanup); NULL
 * means unset. */

struct nrd_cidr {
  unsigned char addr[16]; /* IPv4 as v4-mapped IPv6 */
  unsigned prefix;        /* 0..128, over the 16 bytes */
};

/* RECOVERY_PLACEMENT: where a replacement may go when its own cluster has no
 * capacity for its product. */
enum nrd_placement {
  NRD_PLACE_SAME_CLUSTER = 0, /* same-cluster (default): never elsewhere */
  NRD_PLACE_SAME_REGION,      /* same-region: another cluster of its region */
  NRD_PLACE_ANY               /* any: any cluster offering the product */
};
/* RECOVERY_BILLING_FALLBACK. */
enum nrd_billing_fallback {
  NRD_BILLING_FALLBACK_NONE = 0, /* none (default): the snapshot's billing only */
  NRD_BILLING_FALLBACK_ON_DEMAND /* onDemand: a non-onDemand row may go onDemand */
};

struct nrd_config {
  unsigned port;                         /* PORT 3000; 0 picks a free port (tests) */
  char *host;                            /* HOST 127.0.0.1 */
  char *database_path;                   /* DATABASE_PATH ./data/recovery.db */
  char *database_url;                    /* DATABASE_URL (secret): PostgreSQL instead */
  char *database_url_file;               /* DATABASE_URL_FILE: read into database_url */
  char *novita_api_key;                  /* NOVITA_API_KEY (secret) */
  char *novita_api_key_file;             /* NOVITA_API_KEY_FILE: read into novita_api_key */
  char *novita_api_base_url;             /* NOVITA_API_BASE_URL */
  char *novita_internal_api_key;         /* NOVITA_INTERNAL_API_KEY (secret) */
  char *novita_internal_api_key_file;    /* NOVITA_INTERNAL_API_KEY_FILE */
  char *novita_internal_api_base_url;    /* NOVITA_INTERNAL_API_BASE_URL */
  double novita_rate_limit_rps;          /* NOVITA_RATE_LIMIT_RPS 20: the adaptive rate's start */
  double novita_rate_limit_max_rps;      /* NOVITA_RATE_LIMIT_MAX_RPS 50 */
  bool novita_rate_limit_adaptive;       /* NOVITA_RATE_LIMIT_ADAPTIVE true */
  unsigned novita_page_size;             /* NOVITA_PAGE_SIZE 100: page size we ask for */
  char *default_region;                  /* DEFAULT_REGION CN-HK-01 */
  bool migration_dry_run;                /* MIGRATION_DRY_RUN false */
  unsigned migration_interval_minutes;   /* MIGRATION_INTERVAL_MINUTES 15; 0 = off */
  unsigned watch_interval_seconds;       /* WATCH_INTERVAL_SECONDS 20; 0 = off */
  unsigned migration_max_concurrent;     /* MIGRATION_MAX_CONCURRENT 8 (1..256) */
  unsigned migration_job_lookback_hours; /* MIGRATION_JOB_LOOKBACK_HOURS 24 */
  unsigned max_recoveries_per_run;       /* MAX_RECOVERIES_PER_RUN 100 */
  unsigned max_retry_attempts;           /* MAX_RETRY_ATTEMPTS 3 */
  unsigned request_timeout_ms;           /* REQUEST_TIMEOUT 30000 */
  unsigned run_deadline_seconds;         /* RUN_DEADLINE_SECONDS 600 */
  unsigned recovery_lease_seconds;       /* RECOVERY_LEASE_SECONDS 30 */
  unsigned recovery_placement;           /* RECOVERY_PLACEMENT same-cluster (enum nrd_placement) */
  unsigned
      recovery_billing_fallback; /* RECOVERY_BILLING_FALLBACK none (enum nrd_billing_fallback) */
  unsigned recovery_start_poll_seconds;    /* RECOVERY_START_POLL_SECONDS 30 */
  unsigned recovery_start_timeout_seconds; /* RECOVERY_START_TIMEOUT_SECONDS 1800 */
  char *recover_statuses;                  /* RECOVER_STATUSES migrating (comma-separated) */
  unsigned circuit_failure_threshold;      /* CIRCUIT_FAILURE_THRESHOLD 5 */
  unsigned circuit_cooldown_seconds;       /* CIRCUIT_COOLDOWN_SECONDS 30 */
  char *api_token;                         /* API_TOKEN (secret); API_TOKEN_FILE is read into it */
  char *api_token_file;                    /* API_TOKEN_FILE */
  char *trusted_proxies;                   /* TRUSTED_PROXIES 127.0.0.1/8,::1 */
  struct nrd_cidr *proxies;                /* parsed TRUSTED_PROXIES */
  size_t n_proxies;
  size_t max_body_bytes;                 /* MAX_BODY_BYTES 65536 */
  unsigned http_request_timeout_seconds; /* HTTP_REQUEST_TIMEOUT_SECONDS 10 */
  unsigned http_max_connections;         /* HTTP_MAX_CONNECTIONS 1024 */
  unsigned http_max_connections_per_ip;  /* HTTP_MAX_CONNECTIONS_PER_IP 128 */
  char *webhook_url;                     /* WEBHOOK_URL */
  char *webhook_secret;                  /* WEBHOOK_SECRET (secret) */
  char *webhook_secret_file;             /* WEBHOOK_SECRET_FILE */
  unsigned webhook_max_age_hours;        /* WEBHOOK_MAX_AGE_HOURS 24 */
  unsigned retention_days;               /* RETENTION_DAYS 30 */
  enum nrd_log_level log_level;          /* LOG_LEVEL info */
};

/* Fills cfg from the environment and then from argv (flags of the form
 * --name=value or --name value; a boolean flag alone means true).
 * argv holds only flags (the subcommand already taken off). Unknown flags are
 * an error; unknown environment variables are ignored.
 * Every secret (API_TOKEN, NOVITA_API_KEY, NOVITA_INTERNAL_API_KEY,
 * WEBHOOK_SECRET) can also come from a file: its _FILE variable, or, under
 * systemd, a credential of the same name in $CREDENTIALS_DIRECTORY
 * (LoadCredential=NOVITA_API_KEY:/etc/...). Two sources for one secret are
 * refused with an error naming both.
 * Returns 0; NRD_CONFIG_EINVAL (-1) with one line in err naming the variable
 * and what it accepts, e.g. "PORT: 'abc' is not valid; expected an integer
 * 0-65535"; or NRD_CONFIG_EUSAGE (-2) for a command line that cannot be read
 * (an unknown flag, a flag without its value, a stray argument).
 * cfg is left initialised either way: always call nrd_config_cleanup. */
#define NRD_CONFIG_EINVAL (-1)
#define NRD_CONFIG_EUSAGE (-2)
int nrd_config_load(struct nrd_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* The name an OPT_CHOICE setting holds ("same-cluster", "onDemand", ...), by
 * its environment name; "?" for an unknown one. */
const char *nrd_config_choice_name(const struct nrd_config *cfg, const char *env);

/* Defaults only (no environment, no flags). For tests and embedding. */
void nrd_config_defaults(struct nrd_config *cfg);

void nrd_config_cleanup(struct nrd_config *cfg);
/* A deep copy of src into dst (every string and the parsed proxies owned
 * anew): for a command that serves with settings of its own (demo). */
void nrd_config_copy(struct nrd_config *dst, const struct nrd_config *src);

/* The options as a --help section: flag, variable, default, meaning. */
void nrd_config_print_help(FILE *out);

/* Logs the effective configuration at info, secrets printed as "***". */
void nrd_config_log(const struct nrd_config *cfg);

/* True when addr (16 bytes, v4-mapped for IPv4) is within one of cfg's proxies. */
bool nrd_config_is_trusted_proxy(const struct nrd_config *cfg, const unsigned char addr[16]);

/* Parses "1.2.3.4" or "::1" into 16 bytes (IPv4 as v4-mapped). */
bool nrd_parse_ip(const char *s, unsigned char out[16]);

#endif
