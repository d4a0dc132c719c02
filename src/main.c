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
#include "nrd/scheduler.h"
#include "nrd/sim.h"
#include "nrd/store.h"
#include "nrd/util.h"
#include "nrd/webhook.h"

#define DEFAULT_DB "./data/recovery.db"

/* The names a report uses: ledger states, outcome actions and fields, and
 * Novita's reasons by class (printed from the one table). */
static void print_report_names(FILE *out)
{
  size_t n = 0;
  const struct nrd_nv_reason *reasons = nrd_nv_reasons(&n);
  static const enum nrd_nv_class classes[] = {NRD_NV_CLASS_TRANSIENT, NRD_NV_CLASS_ACCOUNT,
                                              NRD_NV_CLASS_ROW, NRD_NV_CLASS_PREPAID,
                                              NRD_NV_CLASS_GONE};
  fprintf(out, "report (check-failed prints it; runs keep it):\n  ledger states:");
  for (int st = 0; st < NRD_ROW_STATE_COUNT; st++)
    fprintf(out, " %s", nrd_row_state_name((enum nrd_row_state)st));
  fprintf(out,
          "\n  outcome actions: recreated, adopted, planned, deferred, failed, abandoned, skipped\n"
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
  fprintf(out,
          "novita-recoveryd %s: puts Novita GPU instances back after a failed spot migration.\n\n"
          "usage: novita-recoveryd [command] [options]\n\n"
          "commands:\n"
          "  serve           run the HTTP service (default)\n"
          "  check-failed    one run now; prints the report JSON (add --dry-run to only plan)\n"
          "  migrate-db      apply pending database migrations and exit\n"
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

static struct nrd_novita *novita_from_config(const struct nrd_config *cfg)
{
  struct nrd_novita_options o = {
    .base_url = cfg->novita_api_base_url,
    .api_key = cfg->novita_api_key,
    .internal_base_url = cfg->novita_internal_api_base_url,
    .internal_api_key = cfg->novita_internal_api_key,
    .page_size = cfg->novita_page_size,
    .request_timeout_ms = cfg->request_timeout_ms,
    .max_retry_attempts = cfg->max_retry_attempts,
    .rate_limit_rps = cfg->novita_rate_limit_rps,
    .rate_adaptive = cfg->novita_rate_limit_adaptive,
    .rate_limit_max_rps = cfg->novita_rate_limit_max_rps,
    .circuit_failure_threshold = cfg->circuit_failure_threshold,
    .circuit_cooldown_ms = cfg->circuit_cooldown_seconds * 1000u,
  };
  return nrd_novita_create(&o);
}

static void notify_webhook(void *ud)
{
  nrd_webhook_notify(ud);
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
  int status = 1;
  struct nrd_novita *nv = novita_from_config(cfg);
  struct nrd_runner *runner = NULL;
  struct nrd_scheduler *sched = NULL;
  struct nrd_http *http = NULL;
  struct nrd_webhook *wh = NULL;

  nrd_config_log(cfg);  /* as served (demo has pointed it at the simulator) */
  runner = nrd_runner_create(cfg, nv, err, sizeof(err));
  if(!runner) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    goto out;
  }
  if(cfg->webhook_url) {
    wh = nrd_webhook_start(cfg, err, sizeof(err));
    if(!wh) {
      fprintf(stderr, "novita-recoveryd: %s\n", err);
      goto out;
    }
    nrd_runner_set_event_hook(runner, notify_webhook, wh);
  }
  sched = nrd_scheduler_create(cfg, runner);
  http = nrd_http_start(cfg, runner, sched, err, sizeof(err));
  if(!http) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    goto out;
  }
  LOG_INFO("listening", "host", cfg->host, "#port", NRD_I64(nrd_http_port(http)),
           "version", NRD_VERSION, "#dryRun", NRD_BOOL(cfg->migration_dry_run));

  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigwait(&set, &sig);
  LOG_INFO("shutting down", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  status = 0;

out:
  /* Stop accepting, stop starting work, park rows, then take things down. */
  if(http)
    nrd_http_quiesce(http);
  if(runner)
    nrd_runner_stop(runner);
  nrd_novita_abort(nv);
  nrd_scheduler_destroy(sched);
  nrd_runner_destroy(runner);
  nrd_webhook_stop(wh);
  if(http)
    nrd_http_stop(http);
  nrd_novita_destroy(nv);
  if(status == 0)
    LOG_INFO("stopped");
  return status;
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
  for(int i = 0; i < in->depth; i++)
    putc('\t', in->f);
}

static void indent_feed(struct indenter *in, const char *s)
{
  for(; *s; s++) {
    char c = *s;
    if(in->in_string) {
      putc(c, in->f);
      if(in->escaped)
        in->escaped = false;
      else if(c == '\\')
        in->escaped = true;
      else if(c == '"')
        in->in_string = false;
      continue;
    }
    if(in->opened) {  /* an empty {} or [] stays on its line */
      in->opened = false;
      if(c == '}' || c == ']') {
        in->depth--;
        putc(c, in->f);
        continue;
      }
      indent_newline(in);
    }
    switch(c) {
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
  struct nrd_novita *nv = novita_from_config(cfg);
  struct nrd_runner *runner = nrd_runner_create(cfg, nv, err, sizeof(err));
  if(!runner) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    goto out;
  }
  status = nrd_runner_run_sync(runner, NRD_TRIGGER_CLI, dry_run || cfg->migration_dry_run,
                               &result, &message);
  cJSON *body = cJSON_CreateObject();
  if(!body)
    abort();
  nrd_json_add_bool(body, "success", status != 2);
  if(status == 2) {
    cJSON *e = cJSON_AddObjectToObject(body, "error");
    nrd_json_add_str(e, "code", "NOVITA_UNAVAILABLE");
    nrd_json_add_str(e, "message", message ? message : "the run could not complete");
  } else {
    nrd_json_add_str(body, "message", "Failed migration check completed");
  }
  /* The run's report goes in as the text it already is, never parsed. */
  char *head = nrd_json_print(body);
  head[strlen(head) - 1] = '\0';  /* its closing brace */
  struct indenter in = {.f = stdout};
  indent_feed(&in, head);
  indent_feed(&in, ",\"result\":");
  indent_feed(&in, result ? result : "{}");
  indent_feed(&in, "}");
  putc('\n', stdout);
  fflush(stdout);
  free(head);
  cJSON_Delete(body);
  if(status == 2)
    status = EX_TEMPFAIL;  /* Novita unavailable: try again later */
out:
  free(result);
  free(message);
  nrd_runner_destroy(runner);
  nrd_novita_destroy(nv);
  return status;
}

static int migrate_db(const struct nrd_config *cfg)
{
  char err[512];
  struct nrd_store *st = NULL;
  unsigned applied = 0;
  int version = 0;
  if(nrd_store_open(cfg->database_path, &st, &applied, err, sizeof(err)) != NRD_OK) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    return 1;
  }
  nrd_store_schema_version(st, &version);
  nrd_store_close(st);
  printf("database %s: %u migration(s) applied, schema version %d\n", cfg->database_path,
         applied, version);
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
  if(!strcmp(host, "0.0.0.0"))
    host = "127.0.0.1";
  else if(!strcmp(host, "::"))
    host = "::1";
  snprintf(url, sizeof(url), strchr(host, ':') ? "http://[%s]:%u/health" : "http://%s:%u/health",
           host, cfg->port);
  CURL *c = curl_easy_init();
  if(!c)
    return 1;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
  CURLcode rc = curl_easy_perform(c);
  if(rc == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  if(code != 200) {
    fprintf(stderr, "novita-recoveryd: %s did not answer 200 (%s)\n", url,
            rc == CURLE_OK ? "bad status" : curl_easy_strerror(rc));
    return 1;
  }
  return 0;
}

/* Serves against the bundled simulator loaded with a sample fleet. */
static int demo(struct nrd_config *cfg)
{
  char err[256];
  char base[128];
  struct nrd_sim_options so = {.api_key = "demo-key", .latency_ms = 20};
  const char *every = getenv("DEMO_FAIL_EVERY_SECONDS");
  int64_t fail_every_s = 60;
  if(every && !nrd_parse_i64(every, 0, 86400, &fail_every_s)) {
    fprintf(stderr, "novita-recoveryd: DEMO_FAIL_EVERY_SECONDS: '%s' is not a number of seconds "
            "from 0 (never) to 86400\n", every);
    return 1;
  }
  struct nrd_sim *sim = nrd_sim_start(&so, err, sizeof(err));
  if(!sim) {
    fprintf(stderr, "novita-recoveryd: demo simulator: %s\n", err);
    return 1;
  }
  cJSON *fleet = nrd_sim_make_demo(nrd_now_ms() / 1000);
  char *json = nrd_json_print(fleet);
  nrd_sim_load(sim, json);
  free(json);
  cJSON_Delete(fleet);
  nrd_sim_base_url(sim, base);
  free(cfg->novita_api_base_url);
  cfg->novita_api_base_url = nrd_xstrdup(base);
  free(cfg->novita_api_key);
  cfg->novita_api_key = nrd_xstrdup("demo-key");
  free(cfg->novita_internal_api_base_url);
  cfg->novita_internal_api_base_url = NULL;
  if(!strcmp(cfg->database_path, DEFAULT_DB)) {
    free(cfg->database_path);
    cfg->database_path = nrd_xstrdup("./data/demo.db");
  }
  LOG_WARN("DEMO MODE: talking to the bundled Novita simulator, not to Novita",
           "simulator", base, "database", cfg->database_path);
  struct nrd_sim_ticker *ticker =
      fail_every_s ? nrd_sim_ticker_start(sim, (unsigned)fail_every_s * 1000u) : NULL;
  int rc = serve(cfg);
  nrd_sim_ticker_stop(ticker);
  nrd_sim_stop(sim);
  return rc;
}

int main(int argc, char **argv)
{
  struct nrd_config cfg;
  char err[512];
  const char *cmd = "serve";
  int first = 1;
  bool dry_run = false;
  int status = 1;

  /* Measured with tests/bench: the workers mostly wait on Novita, so one
   * malloc arena is plenty, and what the sync frees is reused by the rows
   * (two arenas: 1 MB more peak RSS at N = 5000); and without fastbins a
   * sync no longer consolidates them on every large allocation. A fixed
   * mmap threshold keeps glibc from raising it after the first 1 MB page
   * body is freed: large buffers stay mapped on their own and go back to
   * the system when freed (0.3 MB less peak RSS at N = 5000). */
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MXFAST, 0);
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);

  if(argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
                  !strcmp(argv[1], "help"))) {
    usage(stdout);
    return 0;
  }
  if(argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version"))) {
    printf("novita-recoveryd %s\n", NRD_VERSION);
    return 0;
  }
  if(argc > 1 && argv[1][0] != '-') {
    cmd = argv[1];
    first = 2;
  }
  if(strcmp(cmd, "serve") && strcmp(cmd, "check-failed") && strcmp(cmd, "migrate-db") &&
     strcmp(cmd, "demo") && strcmp(cmd, "healthcheck")) {
    fprintf(stderr, "novita-recoveryd: unknown command '%s' (see --help)\n", cmd);
    return EX_USAGE;
  }
  /* Flags of the subcommand itself are taken off before the config sees them. */
  char **args = nrd_xcalloc((size_t)argc + 1, sizeof(*args));
  int nargs = 0;
  for(int i = first; i < argc; i++) {
    if(!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      free(args);
      return 0;
    }
    if(!strcmp(cmd, "check-failed") && !strcmp(argv[i], "--dry-run"))
      dry_run = true;
    else
      args[nargs++] = argv[i];
  }
  int rc = nrd_config_load(&cfg, nargs, args, err, sizeof(err));
  free(args);
  if(rc != 0) {
    fprintf(stderr, "novita-recoveryd: %s\n", err);
    nrd_config_cleanup(&cfg);
    return rc == NRD_CONFIG_EUSAGE ? EX_USAGE : EX_CONFIG;
  }
  nrd_log_set_level(cfg.log_level);

  if(!strcmp(cmd, "migrate-db")) {
    status = migrate_db(&cfg);
    goto out;
  }
  if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "novita-recoveryd: curl_global_init failed\n");
    goto out;
  }
  if(!strcmp(cmd, "healthcheck")) {
    status = healthcheck(&cfg);
    goto out_curl;
  }
  if(strcmp(cmd, "demo") && (!cfg.novita_api_key || !cfg.novita_api_key[0])) {
    fprintf(stderr, "novita-recoveryd: NOVITA_API_KEY is not set; refusing to start "
            "(set it or NOVITA_API_KEY_FILE, or try 'novita-recoveryd demo' against the "
            "bundled simulator)\n");
    status = EX_CONFIG;
    goto out_curl;
  }
  signal(SIGBUS, on_sigbus);
  if(!strcmp(cmd, "check-failed")) {
    nrd_log_set_fd(2);  /* stdout carries the report */
    status = check_failed(&cfg, dry_run);
    goto out_curl;
  }
  /* Block the signals before any thread starts; serve() waits for them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  status = !strcmp(cmd, "demo") ? demo(&cfg) : serve(&cfg);

out_curl:
  curl_global_cleanup();
out:
  nrd_config_cleanup(&cfg);
  return status;
}
