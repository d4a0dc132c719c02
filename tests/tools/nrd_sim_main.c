/* nrd-sim: the Novita simulator as a standalone program, for crash tests,
 * scripts and benchmarks. Prints "listening <port>" once it serves, and
 * stops on SIGTERM or SIGINT. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/sim.h"
#include "nrd/util.h"

#define MAX_SCENARIO_BYTES (512L * 1024 * 1024)

static const char USAGE[] =
    "usage: nrd-sim [--port N] [--fleet F] [--failed K] [--latency-ms L] [--page-cap C]\n"
    "               [--page-base 0|1] [--total 0|1] [--api-key K] [--internal-api-key K]\n"
    "               [--new-status S] [--threads T] [--scenario file.json]\n"
    "Serves a simulated Novita API on 127.0.0.1 (port 0: a free one), prints\n"
    "\"listening <port>\" and runs until SIGTERM or SIGINT. Without --scenario the\n"
    "state is a generated fleet of F instances, the first K of them failed.\n"
    "--page-base 0: pages count from 0; --total 0: listings carry no \"total\"\n"
    "(Novita's documented list example has none).\n"
    "Errors are Novita's shape {code:<int>, reason, message, metadata}.\n"
    "Controls (POST JSON, no auth):\n"
    "  /__sim/scenario  {instances, jobs, products, cpuProducts, clusters}: replaces\n"
    "                   the state; clusters [{id, name}] are GET /v1/clusters; a\n"
    "                   product with regions is listed under clusterId only where\n"
    "                   the cluster's name is one of them; cpuProducts are\n"
    "                   GET /v1/cpu/products\n"
    "  /__sim/faults    {kind, match, reason, status, body, retry_after, delay_ms,\n"
    "                   size, probability, count, seed} or a list; {} clears. kinds:\n"
    "                   status, retry_after (429 + Retry-After, any path), delay,\n"
    "                   apply_then_delay, html, truncated, malformed, oversized, deep,\n"
    "                   empty, wrong_types, drop_fields, slow_drip, reset, error_200\n"
    "                   (HTTP 200 with Novita's error body)\n"
    "  /__sim/account   {reason: BALANCE_NOT_ENOUGH | CREATE_GPU_NUM_LIMIT | ...}:\n"
    "                   every create refused with it until {} clears it\n"
    "  /__sim/capacity  {productName, clusterId, available: n}: n more creates there,\n"
    "                   then INSUFFICIENT_RESOURCE; products listed with that clusterId\n"
    "                   show availableDeploy/inventoryState; -1 removes the limit\n"
    "  /__sim/start     {toCreateMs, creatingMs, pullingMs}: new instances go\n"
    "                   toCreate -> creating -> pulling -> running over these times\n"
    "  /__sim/pull_failure {imageUrl, message}: creates of that image end exited\n"
    "                   with statusError {state: pullImageFailed, message}\n"
    "  GET /v1/gpu/instance?instanceId= shows one instance; GET /v1/cpu/products\n"
    "  the scenario's cpuProducts.\n"
    "  Monthly instances (billingMode monthly) answer delete with\n"
    "  PREPAID_INSTANCE_NOT_SUPPORT_RELEASE. GET /__sim/state, GET /__sim/requests.\n";

struct args {
  struct nrd_sim_options opt;
  int64_t fleet, failed;
  const char *scenario;
};

static bool parse_uint(const char *name, const char *v, int64_t max, int64_t *out)
{
  if (v && nrd_parse_i64(v, 0, max, out))
    return true;
  fprintf(stderr, "nrd-sim: %s needs an integer within 0..%lld\n", name, (long long)max);
  return false;
}

static bool parse_args(int argc, char **argv, struct args *a)
{
  int64_t v;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    bool ok = true;
    if (strcmp(k, "--help") == 0 || strcmp(k, "-h") == 0) {
      fputs(USAGE, stdout);
      exit(0);
    }
    if (!val) {
      fprintf(stderr, "nrd-sim: %s needs a value\n%s", k, USAGE);
      return false;
    }
    if (strcmp(k, "--port") == 0) {
      ok = parse_uint(k, val, 65535, &v);
      a->opt.port = (unsigned)v;
    } else if (strcmp(k, "--fleet") == 0) {
      ok = parse_uint(k, val, 10000000, &a->fleet);
    } else if (strcmp(k, "--failed") == 0) {
      ok = parse_uint(k, val, 10000000, &a->failed);
    } else if (strcmp(k, "--latency-ms") == 0) {
      ok = parse_uint(k, val, 600000, &v);
      a->opt.latency_ms = (unsigned)v;
    } else if (strcmp(k, "--page-cap") == 0) {
      ok = parse_uint(k, val, 1000000, &v);
      a->opt.page_cap = (unsigned)v;
    } else if (strcmp(k, "--page-base") == 0) {
      ok = parse_uint(k, val, 1, &v);
      a->opt.page_base = (int)v;
      a->opt.page_base_set = true;
    } else if (strcmp(k, "--total") == 0) {
      ok = parse_uint(k, val, 1, &v);
      a->opt.no_total = v == 0;
    } else if (strcmp(k, "--threads") == 0) {
      ok = parse_uint(k, val, 256, &v);
      a->opt.threads = (unsigned)v;
    } else if (strcmp(k, "--api-key") == 0) {
      a->opt.api_key = val;
    } else if (strcmp(k, "--internal-api-key") == 0) {
      a->opt.internal_api_key = val;
    } else if (strcmp(k, "--new-status") == 0) {
      a->opt.new_status = val;
    } else if (strcmp(k, "--scenario") == 0) {
      a->scenario = val;
    } else {
      fprintf(stderr, "nrd-sim: unknown option %s\n%s", k, USAGE);
      return false;
    }
    if (!ok)
      return false;
    i++;
  }
  if (a->failed > a->fleet) {
    fprintf(stderr, "nrd-sim: --failed must not exceed --fleet\n");
    return false;
  }
  return true;
}

/* The whole file, NUL-terminated (caller frees), or NULL with a message. */
static char *read_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  struct nrd_buf b;
  char chunk[65536];
  size_t n;

  if (!f) {
    fprintf(stderr, "nrd-sim: cannot open %s: %s\n", path, strerror(errno));
    return NULL;
  }
  nrd_buf_init(&b);
  for (n = fread(chunk, 1, sizeof chunk, f); n > 0; n = fread(chunk, 1, sizeof chunk, f)) {
    if (b.len + n > (size_t)MAX_SCENARIO_BYTES) {
      fprintf(stderr, "nrd-sim: %s is larger than %ld bytes\n", path, MAX_SCENARIO_BYTES);
      fclose(f);
      nrd_buf_cleanup(&b);
      return NULL;
    }
    nrd_buf_append(&b, chunk, n);
  }
  fclose(f);
  return nrd_buf_steal(&b);
}

static bool load_state(struct nrd_sim *sim, const struct args *a)
{
  char *text;
  int rc;

  if (a->scenario) {
    text = read_file(a->scenario);
    if (!text)
      return false;
  } else {
    cJSON *fleet = nrd_sim_make_fleet((size_t)a->fleet, (size_t)a->failed, nrd_now_ms() / 1000);
    text = nrd_json_print(fleet);
    cJSON_Delete(fleet);
  }
  rc = nrd_sim_load(sim, text);
  free(text);
  if (rc != 0)
    fprintf(stderr, "nrd-sim: the scenario is not a JSON object of arrays\n");
  return rc == 0;
}

int main(int argc, char **argv)
{
  struct args a;
  struct nrd_sim *sim;
  sigset_t set;
  char err[256];
  int sig = 0;

  memset(&a, 0, sizeof a);
  if (!parse_args(argc, argv, &a))
    return 2;
  /* Blocked before the daemon's threads start, so only sigwait sees them. */
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  sim = nrd_sim_start(&a.opt, err, sizeof err);
  if (!sim) {
    fprintf(stderr, "nrd-sim: %s\n", err);
    return 1;
  }
  if (!load_state(sim, &a)) {
    nrd_sim_stop(sim);
    return 1;
  }
  printf("listening %u\n", nrd_sim_port(sim));
  fflush(stdout);
  sigwait(&set, &sig);
  nrd_sim_stop(sim);
  return 0;
}
