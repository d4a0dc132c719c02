/* novita-recoveryd: wiring, subcommands, signals. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <curl/curl.h>

#include "nrd/config.h"
#include "nrd/http.h"
#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/novita.h"
#include "nrd/run.h"
#include "nrd/service.h"
#include "nrd/sim.h"
#include "nrd/store.h"
#include "nrd/util.h"

#define DEFAULT_DB "./data/recovery.db"

/* The names a report uses: ledger states, outcome actions and fields, and
 * Novita's reasons by class (printed from the one table). */
static void print_report_names(FILE *out)
{
  size_t n = 0;
  const struct nrd_nv_reason *reasons = nrd_nv_reasons(&n);
  static const enum nrd_nv_class classes[] = { NRD_NV_CLASS_TRANSIENT, NRD_NV_CLASS_ACCOUNT,
                                               NRD_NV_CLASS_ROW, NRD_NV_CLASS_PREPAID,
                                               NRD_NV_CLASS_GONE };
  fprintf(out, "report (check-failed prints it; runs keep it):\n  ledger states:");
  for (int st = 0; st < NRD_ROW_STATE_COUNT; st++)
    fprintf(out, " %s", nrd_row_state_name((enum nrd_row_state)st));
  fprintf(
      out,
      "\n  outcome actions: recreated, adopted, planned, deferred, failed, abandoned, skipped,\n"
      "    running, start_failed (a replacement seen running, or that did not start),\n"
      "    ignored (a failed job on an instance whose status is not in RECOVER_STATUSES)\n"
      "  outcome fields: reason; brake (account | capacity) on deferred; novitaReason;\n"
      "    retriesSpent on failed (left between delete and create); placement\n"
      "    {clusterId, region, billingMode, fallback, reason} on recreated and adopted\n"
      "    (fallback: RECOVERY_PLACEMENT or RECOVERY_BILLING_FALLBACK placed it elsewhere)\n"
      "  Novita reasons:\n");
  for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++) {
    fprintf(out, "    %s:", nrd_nv_class_name(classes[c]));
    for (size_t i = 0; i < n; i++)
      if (reasons[i].cls == classes[c])
        fprintf(out, " %s", reasons[i].reason);
    fprintf(out, "\n");
  }
  fprintf(out, "\n");
}

static void usage(FILE *out)
{
  fprintf(
      out,
      "novita-recoveryd %s: puts Novita GPU instances back after a failed spot migration.\n\n"
      "usage: novita-recoveryd [command] [options]\n\n"
      "commands:\n"
      "  serve           run the HTTP service (default)\n"
      "  check-failed    one run now; prints the report JSON (add --dry-run to only plan)\n"
      "  migrate-db      apply pending database migrations and exit\n"
      "  migrate-store --from FILE\n"
      "                  copy the SQLite ledger FILE into the PostgreSQL database of\n"
      "                  DATABASE_URL (stop the service on FILE first); run again, it\n"
      "                  copies nothing twice; a different row already there refuses it\n"
      "  demo            serve against the bundled Novita simulator with a sample fleet;\n"
      "                  it fails one more migration every DEMO_FAIL_EVERY_SECONDS (60; 0 never)\n"
      "  healthcheck     exit 0 when the local /health answers (for Docker)\n"
      "  --help, --version\n\n"
      "exit status:\n"
      "  0   done (check-failed: the run completed and no row failed)\n"
      "  1   check-failed: a row failed (an operator is needed); or a runtime error\n"
      "  64  usage: an unknown command or option, an option without its value\n"
      "  75  check-failed: Novita unavailable, the run could not complete; try again\n"
      "  78  configuration: a bad value, a secret that cannot be read, two sources\n"
      "      for one secret, NOVITA_API_KEY missing\n\n"
      "Every secret (API_TOKEN, NOVITA_API_KEY, NOVITA_INTERNAL_API_KEY, WEBHOOK_SECRET)\n"
      "can come from a file: NAME_FILE=path, or under systemd LoadCredential=NAME:path.\n\n",
      NRD_VERSION);
  print_report_names(out);
  nrd_config_print_help(out);
}

/* SIGBUS: SQLite maps the WAL index (and may map the database); a file
 * truncated or a disk gone under the mapping faults here. One line on
 * stderr with write(2), which is async-signal-safe, then the default action
 * (the process ends; the supervisor restarts it). */
static void on_sigbus(int sig)
{
  static const char line[] =
      "{\"level\":\"error\",\"msg\":\"SIGBUS: a memory-mapped file of the database "
      "failed (truncated, or its disk is gone); exiting\"}\n";
  ssize_t w = write(STDERR_FILENO, line, sizeof line - 1);
  (void)w;
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Runs the service until SIGINT or SIGTERM (already blocked by main). */
static int serve(const struct nrd_config *cfg)
{
  char err[512];
  sigset_t set;
  int sig = 0;

  nrd_config_log(cfg); /* as served (demo's own points at the simulator) */
  struct nrd_service *svc = nrd_service_start(cfg, NULL, err, sizeof(err));
  if (!svc) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    return 1;
  }
  LOG_INFO("listening", "host", cfg->host, "#port", NRD_I64(nrd_http_port(nrd_service_http(svc))),
           "version", NRD_VERSION, "#dryRun", NRD_BOOL(cfg->migration_dry_run));

  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigwait(&set, &sig);
  LOG_INFO("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  nrd_service_stop(svc);
  LOG_INFO("stopped");
  return 0;
}

/* Writes compact JSON text to f with one member or item per line, indented
 * by tabs, without building a tree (a report of thousands of outcomes). */
struct indenter {
  FILE *f;
  int depth;
  bool in_string, escaped, opened;
};

static void indent_newline(struct indenter *in)
{
  putc('\n', in->f);
  for (int i = 0; i < in->depth; i++)
    putc('\t', in->f);
}

static void indent_feed(struct indenter *in, const char *s)
{
  for (; *s; s++) {
    char c = *s;
    if (in->in_string) {
      putc(c, in->f);
      if (in->escaped)
        in->escaped = false;
      else if (c == '\\')
        in->escaped = true;
      else if (c == '"')
        in->in_string = false;
      continue;
    }
    if (in->opened) { /* an empty {} or [] stays on its line */
      in->opened = false;
      if (c == '}' || c == ']') {
        in->depth--;
        putc(c, in->f);
        continue;
      }
      indent_newline(in);
    }
    switch (c) {
    case '{':
    case '[':
      putc(c, in->f);
      in->depth++;
      in->opened = true;
      break;
    case '}':
    case ']':
      in->depth--;
      indent_newline(in);
      putc(c, in->f);
      break;
    case ',':
      putc(c, in->f);
      indent_newline(in);
      break;
    case ':':
      fputs(": ", in->f);
      break;
    case '"':
      in->in_string = true;
      putc(c, in->f);
      break;
    default:
      putc(c, in->f);
    }
  }
}

static int check_failed(const struct nrd_config *cfg, bool dry_run)
{
  char err[512];
  char *result = NULL, *message = NULL;
  int status = 1;
  const struct nrd_service_options only = { .runner_only = true };
  struct nrd_service *svc = nrd_service_start(cfg, &only, err, sizeof(err));
  if (!svc) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    goto out;
  }
  status = nrd_runner_run_sync(nrd_service_runner(svc), NRD_TRIGGER_CLI,
                               dry_run || cfg->migration_dry_run, &result, &message);
  cJSON *body = nrd_json_object();
  nrd_json_add_bool(body, "success", status != 2);
  if (status == 2) {
    cJSON *e = cJSON_AddObjectToObject(body, "error");
    nrd_json_add_str(e, "code", "NOVITA_UNAVAILABLE");
    nrd_json_add_str(e, "message", message ? message : "the run could not complete");
  } else {
    nrd_json_add_str(body, "message", "Failed migration check completed");
  }
  /* The run's report goes in as the text it already is, never parsed. */
  char *head = nrd_json_print(body);
  head[strlen(head) - 1] = '\0'; /* its closing brace */
  struct indenter in = { .f = stdout };
  indent_feed(&in, head);
  indent_feed(&in, ",\"result\":");
  indent_feed(&in, result ? result : "{}");
  indent_feed(&in, "}");
  putc('\n', stdout);
  fflush(stdout);
  free(head);
  cJSON_Delete(body);
  if (status == 2)
    status = EX_TEMPFAIL; /* Novita unavailable: try again later */
out:
  free(result);
  free(message);
  nrd_service_stop(svc);
  return status;
}

static int migrate_db(const struct nrd_config *cfg)
{
  char err[512];
  struct nrd_store *st = NULL;
  unsigned applied = 0;
  int version = 0;
  char where[512];
  const struct nrd_store_target db = nrd_store_target_of(cfg);
  if (nrd_store_open(&db, &st, &applied, err, sizeof(err)) != NRD_OK) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    return 1;
  }
  nrd_store_schema_version(st, &version);
  nrd_store_close(st);
  nrd_store_target_describe(&db, where, sizeof where);
  printf("database %s: %u migration(s) applied, schema version %d\n", where, applied, version);
  return 0;
}

/* Copies the SQLite ledger at from into the PostgreSQL database of
 * DATABASE_URL (nrd_store_import_sqlite says what and how). */
static int migrate_store(const struct nrd_config *cfg, const char *from)
{
  char err[512], where[512];
  struct nrd_store *src = NULL, *dst = NULL;
  struct nrd_store_import got;
  const struct nrd_store_target db = nrd_store_target_of(cfg);
  if (!db.url) {
    fprintf(stderr, "novita-recoveryd: migrate-store: set DATABASE_URL (or DATABASE_URL_FILE) "
                    "to the PostgreSQL database to copy into\n");
    return EX_CONFIG;
  }
  if (access(from, R_OK) != 0) {
    fprintf(stderr, "novita-recoveryd: migrate-store: cannot read %s\n", from);
    return 1;
  }
  /* The file's own migrations first, so its tables are the current ones. */
  if (nrd_store_open_path(from, &src, NULL, err, sizeof err) != NRD_OK ||
      nrd_store_open(&db, &dst, NULL, err, sizeof err) != NRD_OK) {
    nrd_store_close(src);
    fprintf(stderr, "novita-recoveryd: migrate-store: %s\n", err);
    return 1;
  }
  nrd_store_close(src);
  int rc = nrd_store_import_sqlite(dst, from, nrd_now_ms(), &got, err, sizeof err);
  nrd_store_close(dst);
  nrd_store_target_describe(&db, where, sizeof where);
  if (rc != NRD_OK) {
    fprintf(stderr, "novita-recoveryd: migrate-store: %s\n", err);
    return 1;
  }
  printf("copied %s to %s: %lld ledger row(s), %lld snapshot(s), %lld run(s), %lld event(s), "
         "%lld brake(s); %lld row(s) were there already\n",
         from, where, (long long)got.ledger, (long long)got.snapshots, (long long)got.runs,
         (long long)got.events, (long long)got.brakes, (long long)got.present);
  return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
  (void)p;
  (void)ud;
  return size * n;
}

static int healthcheck(const struct nrd_config *cfg)
{
  char url[300];
  long code = 0;
  const char *host = cfg->host;
  if (!strcmp(host, "0.0.0.0"))
    host = "127.0.0.1";
  else if (!strcmp(host, "::"))
    host = "::1";
  snprintf(url, sizeof(url), strchr(host, ':') ? "http://[%s]:%u/health" : "http://%s:%u/health",
           host, cfg->port);
  CURL *c = curl_easy_init();
  if (!c)
    return 1;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  if (code != 200) {
    fprintf(stderr, "novita-recoveryd: %s did not answer 200 (%s)\n", url,
            rc == CURLE_OK ? "bad status" : curl_easy_strerror(rc));
    return 1;
  }
  return 0;
}

/* demo's own configuration: the loaded one pointed at the simulator at
 * base (the loaded one is left as it is). */
static void demo_config(struct nrd_config *own, const struct nrd_config *loaded, const char *base)
{
  nrd_config_copy(own, loaded);
  free(own->novita_api_base_url);
  own->novita_api_base_url = nrd_xstrdup(base);
  free(own->novita_api_key);
  own->novita_api_key = nrd_xstrdup("demo-key");
  free(own->novita_internal_api_base_url);
  own->novita_internal_api_base_url = NULL;
  if (!strcmp(own->database_path, DEFAULT_DB)) {
    free(own->database_path);
    own->database_path = nrd_xstrdup("./data/demo.db");
  }
}

/* Serves against the bundled simulator loaded with a sample fleet. */
static int demo(const struct nrd_config *loaded)
{
  char err[256];
  char base[128];
  struct nrd_config cfg;
  struct nrd_sim_options so = { .api_key = "demo-key", .latency_ms = 20 };
  const char *every = getenv("DEMO_FAIL_EVERY_SECONDS");
  int64_t fail_every_s = 60;
  if (every && !nrd_parse_i64(every, 0, 86400, &fail_every_s)) {
    fprintf(stderr,
            "novita-recoveryd: DEMO_FAIL_EVERY_SECONDS: '%s' is not a number of seconds "
            "from 0 (never) to 86400\n",
            every);
    return 1;
  }
  struct nrd_sim *sim = nrd_sim_start(&so, err, sizeof(err));
  if (!sim) {
    fprintf(stderr, "novita-recoveryd: demo simulator: %s\n", err);
    return 1;
  }
  cJSON *fleet = nrd_sim_make_demo(nrd_now_ms() / 1000);
  char *json = nrd_json_print(fleet);
  nrd_sim_load(sim, json);
  free(json);
  cJSON_Delete(fleet);
  nrd_sim_base_url(sim, base);
  demo_config(&cfg, loaded, base);
  char where[512];
  const struct nrd_store_target db = nrd_store_target_of(&cfg);
  nrd_store_target_describe(&db, where, sizeof where);
  LOG_WARN("DEMO MODE: talking to the bundled Novita simulator, not to Novita", "simulator", base,
           "database", where);
  struct nrd_sim_ticker *ticker =
      fail_every_s ? nrd_sim_ticker_start(sim, (unsigned)fail_every_s * 1000u) : NULL;
  int rc = serve(&cfg);
  nrd_sim_ticker_stop(ticker);
  nrd_sim_stop(sim);
  nrd_config_cleanup(&cfg);
  return rc;
}

/* What the command line asks for, once read. */
struct command {
  const char *name; /* serve, check-failed, migrate-db, migrate-store, demo, healthcheck */
  bool dry_run;     /* check-failed --dry-run */
  const char *from; /* migrate-store --from FILE */
};

static bool known_command(const char *cmd)
{
  static const char *const names[] = { "serve",         "check-failed", "migrate-db",
                                       "migrate-store", "demo",         "healthcheck" };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!strcmp(cmd, names[i]))
      return true;
  return false;
}

/* Reads the command and loads cfg. -1 to go on; otherwise the exit status
 * (help, version, a usage or configuration error). */
static int read_command_line(int argc, char **argv, struct command *c, struct nrd_config *cfg)
{
  char err[512];
  int first = 1;
  if (argc > 1 &&
      (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))) {
    usage(stdout);
    return 0;
  }
  if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
    printf("novita-recoveryd %s\n", NRD_VERSION);
    return 0;
  }
  if (argc > 1 && argv[1][0] != '-') {
    c->name = argv[1];
    first = 2;
  }
  if (!known_command(c->name)) {
    fprintf(stderr, "novita-recoveryd: unknown command '%s' (see --help)\n", c->name);
    return EX_USAGE;
  }
  /* Flags of the subcommand itself are taken off before the config sees them. */
  char **args = nrd_xcalloc((size_t)argc + 1, sizeof(*args));
  int nargs = 0;
  for (int i = first; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      free(args);
      return 0;
    }
    if (!strcmp(c->name, "check-failed") && !strcmp(argv[i], "--dry-run"))
      c->dry_run = true;
    else if (!strcmp(c->name, "migrate-store") && !strncmp(argv[i], "--from=", 7))
      c->from = argv[i] + 7;
    else if (!strcmp(c->name, "migrate-store") && !strcmp(argv[i], "--from") && i + 1 < argc)
      c->from = argv[++i];
    else
      args[nargs++] = argv[i];
  }
  if (!strcmp(c->name, "migrate-store") && (!c->from || !*c->from)) {
    fprintf(stderr, "novita-recoveryd: migrate-store needs --from FILE (the SQLite ledger)\n");
    free(args);
    return EX_USAGE;
  }
  int rc = nrd_config_load(cfg, nargs, args, err, sizeof(err));
  free(args);
  if (rc != 0) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    return rc == NRD_CONFIG_EUSAGE ? EX_USAGE : EX_CONFIG;
  }
  nrd_log_set_level(cfg->log_level);
  return -1;
}

/* The commands that talk to Novita or serve (libcurl is set up). */
static int run_networked(const struct command *c, const struct nrd_config *cfg)
{
  if (!strcmp(c->name, "healthcheck"))
    return healthcheck(cfg);
  if (strcmp(c->name, "demo") && (!cfg->novita_api_key || !cfg->novita_api_key[0])) {
    fprintf(stderr, "novita-recoveryd: NOVITA_API_KEY is not set; refusing to start "
                    "(set it or NOVITA_API_KEY_FILE, or try 'novita-recoveryd demo' against the "
                    "bundled simulator)\n");
    return EX_CONFIG;
  }
  signal(SIGBUS, on_sigbus);
  if (!strcmp(c->name, "check-failed")) {
    nrd_log_set_fd(2); /* stdout carries the report */
    return check_failed(cfg, c->dry_run);
  }
  /* Block the signals before any thread starts; serve() waits for them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  return !strcmp(c->name, "demo") ? demo(cfg) : serve(cfg);
}

int main(int argc, char **argv)
{
  struct nrd_config cfg;
  struct command c = { .name = "serve" };
  int status;

  /* The workers mostly wait on Novita, so one malloc arena is plenty, and
   * what the sync frees is reused by the rows; without fastbins a sync no
   * longer consolidates them on every large allocation. A fixed mmap
   * threshold keeps glibc from raising it after the first page body is
   * freed: large buffers stay mapped on their own and go back to the system
   * when freed. What each saves: BENCHMARKS.md, "Figures behind the code". */
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MXFAST, 0);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  memset(&cfg, 0, sizeof cfg);
  status = read_command_line(argc, argv, &c, &cfg);
  if (status < 0) {
    if (!strcmp(c.name, "migrate-db")) {
      status = migrate_db(&cfg);
    } else if (!strcmp(c.name, "migrate-store")) {
      status = migrate_store(&cfg, c.from);
    } else if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      fprintf(stderr, "novita-recoveryd: curl_global_init failed\n");
      status = 1;
    } else {
      status = run_networked(&c, &cfg);
      curl_global_cleanup();
    }
  }
  nrd_config_cleanup(&cfg);
  return status;
}
