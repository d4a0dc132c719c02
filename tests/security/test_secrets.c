/* Known secrets go in (Novita keys, the API token, the webhook secret, env
 * values, imageAuthId, SSH and connect passwords in the simulator's
 * instances); the integration scenarios run (dry run, real run, background
 * run and its record, recoveries, events, wrong tokens, hostile Novita
 * answers that echo back what we sent and our keys); every log line (debug level, captured
 * to a file) and every response (headers and body) is then searched, and
 * none may hold any secret, whole or by its common infix. The real binary is
 * also started with the secrets in its environment, so its start-up
 * configuration dump and its webhook sender are covered. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "testutil.h"

#define API "/api/instances/migration"
/* Every secret carries this infix, so a cut or partial leak is caught too. */
#define INFIX "SECRET-"
#define NV_KEY "nvkey-" INFIX "a1b2c3d4"
#define NV_INTERNAL_KEY "nvint-" INFIX "e5f6g7h8"
#define API_TOKEN_V "apitok-" INFIX "i9j0k1l2"
#define WH_SECRET "whsec-" INFIX "m3n4o5p6"
#define ENV_VAL "envval-" INFIX "q7r8s9t0"
#define ENV_VAL2 "envval2-" INFIX "u1v2w3x4"
#define IMG_AUTH "imgauth-" INFIX "y5z6a7b8"
#define SSH_PW "sshpw-" INFIX "c9d0e1f2"
#define CONNECT_PW "connpw-" INFIX "g3h4i5j6"

static const char *const secrets[] = {
  NV_KEY,   NV_INTERNAL_KEY, API_TOKEN_V, WH_SECRET,  ENV_VAL,
  ENV_VAL2, IMG_AUTH,        SSH_PW,      CONNECT_PW, INFIX,
};

static struct tu_stack g_stack;
static char g_logpath[600];
static int g_logfd = -1;
static struct nrd_buf g_seen; /* every response, headers and body */
static int g_responses;

/* ---- requests ---- */

static const char *const auth_headers[] = { "Authorization: Bearer " API_TOKEN_V,
                                            "Content-Type: application/json", NULL };

/* One request, recorded into g_seen; returns the parsed body (caller deletes). */
static cJSON *call(const char *method, const char *path, const char *const *headers,
                   const char *body, long *status)
{
  char url[512];
  struct tu_resp r = { 0 };
  cJSON *j;

  snprintf(url, sizeof url, "%s%s", g_stack.base, path);
  assert_int_equal(tu_http(method, url, headers, body, &r), 0);
  nrd_buf_printf(&g_seen, "\n== %s -> %ld\n", method, r.status);
  if (r.headers)
    nrd_buf_puts(&g_seen, r.headers);
  nrd_buf_append(&g_seen, r.body, r.body_len);
  g_responses++;
  *status = r.status;
  j = nrd_json_parse(r.body, r.body_len);
  tu_resp_cleanup(&r);
  return j;
}

static cJSON *api(const char *method, const char *path, const char *body, long *status)
{
  return call(method, path, auth_headers, body, status);
}

static void wait_done(const char *run_id)
{
  char path[256];
  snprintf(path, sizeof path, API "/runs/%s", run_id);
  for (int i = 0; i < 300; i++) {
    long st;
    cJSON *j = api("GET", path, NULL, &st);
    assert_int_equal(st, 200);
    const char *state = nrd_json_str(j, "state");
    assert_non_null(state);
    bool running = strcmp(state, "running") == 0;
    cJSON_Delete(j);
    if (!running)
      return;
    nrd_sleep_ms(50);
  }
  fail_msg("run %s did not finish", run_id);
}

/* ---- the fleet ---- */

/* A migrating instance with a failed job, carrying every kind of secret. */
static void add_secret_instance(cJSON *sc, const char *id, const char *job_id)
{
  cJSON *inst = tu_instance(id, id, "migrating");
  cJSON *envs = cJSON_AddArrayToObject(inst, "envs");
  cJSON *e = cJSON_CreateObject();

  nrd_json_add_str(e, "key", "DB_PASSWORD");
  nrd_json_add_str(e, "value", ENV_VAL);
  cJSON_AddItemToArray(envs, e);
  e = cJSON_CreateObject();
  nrd_json_add_str(e, "key", "API_KEY");
  nrd_json_add_str(e, "value", ENV_VAL2);
  cJSON_AddItemToArray(envs, e);
  nrd_json_add_str(inst, "imageAuthId", IMG_AUTH);
  cJSON_DeleteItemFromObject(inst, "sshPassword");
  nrd_json_add_str(inst, "sshPassword", SSH_PW);
  cJSON *conn = cJSON_AddObjectToObject(inst, "connectComponentSSH");
  nrd_json_add_str(conn, "password", CONNECT_PW);
  nrd_json_add_str(conn, "command", "ssh root@host -p 22 # " CONNECT_PW);
  tu_add(sc, "instances", inst);
  tu_add(sc, "jobs", tu_job(job_id, "instanceMigrate", id, nrd_now_ms() / 1000 - 60, "fail"));
}

static void load_fleet(const char *prefix, int n)
{
  cJSON *sc = tu_scenario();
  char id[64], job[64];

  for (int i = 0; i < n; i++) {
    snprintf(id, sizeof id, "%s-%d", prefix, i);
    snprintf(job, sizeof job, "job-%s-%d", prefix, i);
    add_secret_instance(sc, id, job);
  }
  tu_add(sc, "instances", tu_instance("i-ok", "healthy", "running"));
  tu_add(sc, "products", tu_product("prod-4090", "CN-HK-01", "35000", true));
  tu_stack_load(&g_stack, sc);
  cJSON_Delete(sc);
}

/* ---- the scan ---- */

static void assert_clean(const char *what, const char *text, size_t len)
{
  for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
    size_t n = strlen(secrets[i]);
    for (size_t k = 0; k + n <= len; k++) {
      if (memcmp(text + k, secrets[i], n) == 0) {
        size_t from = k > 300 ? k - 300 : 0;
        fail_msg("%s holds \"%s\" here: ...%.*s...", what, secrets[i],
                 (int)(k - from + n + 80 < len - from ? k - from + n + 80 : len - from),
                 text + from);
      }
    }
  }
}

static char *read_file(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  struct nrd_buf b;
  char chunk[4096];
  size_t n;

  assert_non_null(f);
  nrd_buf_init(&b);
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    nrd_buf_append(&b, chunk, n);
  fclose(f);
  *len = b.len;
  return b.len ? nrd_buf_steal(&b) : nrd_xstrdup("");
}

/* ---- scenarios ---- */

static void test_scenarios(void **state)
{
  long st;
  cJSON *j;
  const char *const wrong[] = { "Authorization: Bearer " API_TOKEN_V "x", NULL };
  const char *const prefix_only[] = { "Authorization: Bearer apitok-SECRET", NULL };
  const char *const in_query[] = { "X-Api-Key: " NV_KEY, NULL };

  load_fleet("i-sec", 3);

  /* wrong tokens, a token cut short, a key in another header */
  j = call("POST", API "/check-failed", wrong, "{\"dryRun\":true}", &st);
  assert_int_equal(st, 401);
  cJSON_Delete(j);
  j = call("GET", API "/recoveries", prefix_only, NULL, &st);
  assert_int_equal(st, 401);
  cJSON_Delete(j);
  j = call("GET", API "/recoveries?token=" API_TOKEN_V, in_query, NULL, &st);
  assert_int_equal(st, 401);
  cJSON_Delete(j);

  /* a dry run plans requests with the secrets redacted */
  j = api("POST", API "/check-failed", "{\"immediate\":true,\"dryRun\":true}", &st);
  assert_int_equal(st, 200);
  const cJSON *o = tu_outcome_for(j, "i-sec-0");
  assert_non_null(o);
  assert_string_equal(nrd_json_str(o, "action"), "planned");
  const cJSON *req = cJSON_GetObjectItem(o, "request");
  assert_string_equal(nrd_json_str(req, "imageAuthId"), "***");
  assert_string_equal(
      nrd_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(req, "envs"), 0), "value"), "***");
  cJSON_Delete(j);

  /* background dry run and its record */
  j = api("POST", API "/check-failed", "{\"dryRun\":true}", &st);
  assert_int_equal(st, 202);
  char *run_id = nrd_xstrdup(nrd_json_str(j, "runId"));
  cJSON_Delete(j);
  wait_done(run_id);
  char path[256];
  snprintf(path, sizeof path, API "/runs/%s", run_id);
  j = api("GET", path, NULL, &st);
  assert_int_equal(st, 200);
  cJSON_Delete(j);
  free(run_id);

  /* the real run: the secrets really go to Novita, byte for byte */
  j = api("POST", API "/check-failed", "{\"immediate\":true}", &st);
  assert_int_equal(st, 200);
  assert_int_equal(tu_result_int(j, "instancesRecreated"), 3);
  cJSON_Delete(j);
  cJSON *creates = tu_sim_creates(g_stack.sim);
  assert_int_equal(cJSON_GetArraySize(creates), 3);
  char *sent = nrd_json_print(creates);
  assert_non_null(strstr(sent, ENV_VAL));
  assert_non_null(strstr(sent, IMG_AUTH));
  free(sent);
  cJSON_Delete(creates);

  /* hostile answers: Novita echoes back what we sent it (the create's env
   * values and image auth) and our keys */
  load_fleet("i-hostile", 4);
  static const char echo[] =
      "{\"code\":\"INVALID_PARAMS\",\"message\":\"rejected env DB_PASSWORD=" ENV_VAL
      " with key " NV_KEY " auth " IMG_AUTH "\",\"reason\":\"" ENV_VAL2 "\"}";
  static const char echo_key[] = "{\"message\":\"key " NV_KEY " or " NV_INTERNAL_KEY " refused\"}";
  static const char html_echo[] =
      "<html><body>Bearer " NV_KEY " / " ENV_VAL " / " IMG_AUTH "</body></html>";
  struct nrd_sim_fault create_400 = {
    .kind = NRD_SIM_STATUS, .match = "instance/create", .status = 400, .body = echo, .count = 1
  };
  struct nrd_sim_fault create_409 = {
    .kind = NRD_SIM_STATUS, .match = "instance/create", .status = 409, .body = html_echo, .count = 1
  };
  struct nrd_sim_fault delete_403 = {
    .kind = NRD_SIM_STATUS, .match = "instance/delete", .status = 403, .body = echo_key, .count = 1
  };
  assert_int_equal(nrd_sim_add_fault(g_stack.sim, &create_400), 0);
  assert_int_equal(nrd_sim_add_fault(g_stack.sim, &create_409), 0);
  assert_int_equal(nrd_sim_add_fault(g_stack.sim, &delete_403), 0);
  j = api("POST", API "/check-failed", "{\"immediate\":true}", &st);
  assert_int_equal(st, 200);
  assert_true(tu_result_int(j, "errors") >= 1);
  cJSON_Delete(j);
  nrd_sim_clear_faults(g_stack.sim);

  /* the listing itself refused with an echo: 502 */
  load_fleet("i-list", 1);
  struct nrd_sim_fault list_401 = {
    .kind = NRD_SIM_STATUS, .match = "gpu/instances", .status = 401, .body = echo_key
  };
  assert_int_equal(nrd_sim_add_fault(g_stack.sim, &list_401), 0);
  j = api("POST", API "/check-failed", "{\"immediate\":true}", &st);
  assert_int_equal(st, 502);
  cJSON_Delete(j);
  nrd_sim_clear_faults(g_stack.sim);

  /* jobs answered with a page of secrets in odd places */
  struct nrd_sim_fault jobs_html = {
    .kind = NRD_SIM_STATUS, .match = "/v1/jobs", .status = 200, .body = html_echo
  };
  assert_int_equal(nrd_sim_add_fault(g_stack.sim, &jobs_html), 0);
  j = api("POST", API "/check-failed", "{\"immediate\":true,\"dryRun\":true}", &st);
  assert_true(st == 200 || st == 502);
  cJSON_Delete(j);
  nrd_sim_clear_faults(g_stack.sim);

  /* everything an operator can read back */
  static const char *const reads[] = {
    API "/recoveries",
    API "/recoveries?state=failed",
    API "/recoveries?state=created",
    API "/recoveries?state=abandoned",
    API "/events",
    API "/events?limit=1000",
    API "/scheduler/status",
    "/health",
    "/ready",
    "/metrics",
  };
  for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
    j = api("GET", reads[i], NULL, &st);
    assert_true(st == 200 || st == 503);
    cJSON_Delete(j);
  }
  /* operator actions on a failed row */
  j = api("GET", API "/recoveries?state=failed", NULL, &st);
  const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "recoveries"), 0);
  if (row && nrd_json_str(row, "jobId")) {
    char p2[256];
    snprintf(p2, sizeof p2, API "/recoveries/%s/retry", nrd_json_str(row, "jobId"));
    cJSON_Delete(api("POST", p2, NULL, &st));
    snprintf(p2, sizeof p2, API "/recoveries/%s/abandon", nrd_json_str(row, "jobId"));
    cJSON_Delete(api("POST", p2, "{\"reason\":\"operator\"}", &st));
  }
  cJSON_Delete(j);
}

/* The log file and every response, searched; and proof the capture saw the
 * run (access lines, Novita's refusals as warnings). */
static void test_scan(void **state)
{
  size_t len;
  char *log;

  nrd_sleep_ms(200); /* the last access lines are written at completion */
  log = read_file(g_logpath, &len);
  assert_non_null(strstr(log, "\"msg\":\"request\""));
  assert_non_null(strstr(log, "\"level\":\"warn\""));
  assert_non_null(strstr(log, "INVALID_PARAMS"));
  assert_true(g_responses >= 25);
  assert_clean("the service log", log, len);
  assert_clean("a response", g_seen.data, g_seen.len);
  free(log);
}

/* ---- the real binary ---- */

static void test_binary(void **state)
{
  const char *bin = getenv("NRD_BINARY");
  char out_path[600], db[600], url[128], internal[128], port_s[16];
  size_t len;
  char *out = NULL;
  pid_t pid;
  unsigned port = 0;

  if (!bin || access(bin, X_OK) != 0)
    skip();
  snprintf(out_path, sizeof out_path, "%s/binary.log", g_stack.dir);
  snprintf(db, sizeof db, "%s/bin/recovery.db", g_stack.dir);
  nrd_sim_base_url(g_stack.sim, url);
  nrd_sim_internal_base_url(g_stack.sim, internal);
  load_fleet("i-bin", 2);

  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
      _exit(127);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("HOST", "127.0.0.1", 1);
    setenv("PORT", "0", 1);
    setenv("DATABASE_PATH", db, 1);
    setenv("NOVITA_API_KEY", NV_KEY, 1);
    setenv("NOVITA_API_BASE_URL", url, 1);
    setenv("NOVITA_INTERNAL_API_KEY", NV_INTERNAL_KEY, 1);
    setenv("NOVITA_INTERNAL_API_BASE_URL", internal, 1);
    setenv("API_TOKEN", API_TOKEN_V, 1);
    setenv("WEBHOOK_URL", "http://127.0.0.1:1/hook", 1);
    setenv("WEBHOOK_SECRET", WH_SECRET, 1);
    setenv("WATCH_INTERVAL_SECONDS", "0", 1); /* the POST below recovers them */
    setenv("MIGRATION_INTERVAL_MINUTES", "0", 1);
    setenv("NOVITA_RATE_LIMIT_RPS", "0", 1);
    setenv("LOG_LEVEL", "debug", 1);
    execl(bin, bin, "serve", (char *)NULL);
    _exit(127);
  }

  /* the port, from the "listening" line */
  for (int i = 0; i < 100 && port == 0; i++) {
    nrd_sleep_ms(50);
    free(out);
    out = read_file(out_path, &len);
    const char *l = strstr(out, "\"msg\":\"listening\"");
    const char *p = l ? strstr(l, "\"port\":") : NULL;
    if (p)
      port = (unsigned)strtoul(p + 7, NULL, 10);
  }
  free(out);
  if (port == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("the binary did not start listening");
  }
  snprintf(port_s, sizeof port_s, "%u", port);
  snprintf(g_stack.base, sizeof g_stack.base, "http://127.0.0.1:%s", port_s);

  long st;
  const char *const wrong[] = { "Authorization: Bearer nope", NULL };
  cJSON_Delete(call("GET", API "/recoveries", wrong, NULL, &st));
  assert_int_equal(st, 401);
  cJSON *j = api("POST", API "/check-failed", "{\"immediate\":true}", &st);
  assert_int_equal(st, 200);
  assert_int_equal(tu_result_int(j, "instancesRecreated"), 2);
  cJSON_Delete(j);
  nrd_sleep_ms(300); /* the webhook sender tries (and fails) to deliver */

  kill(pid, SIGTERM);
  int wst = 0;
  waitpid(pid, &wst, 0);
  assert_true(WIFEXITED(wst));
  assert_int_equal(WEXITSTATUS(wst), 0);

  out = read_file(out_path, &len);
  assert_non_null(strstr(out, "\"***\"")); /* the dump printed the secrets masked */
  assert_non_null(strstr(out, "\"msg\":\"request\""));
  assert_clean("the binary's output", out, len);
  assert_clean("a response", g_seen.data, g_seen.len);
  free(out);
}

/* ---- setup ---- */

static int setup(void **state)
{
  struct nrd_sim_options so = { .api_key = NV_KEY, .internal_api_key = NV_INTERNAL_KEY };
  char internal[128];

  tu_stack_init(&g_stack, &so);
  nrd_sim_internal_base_url(g_stack.sim, internal);
  free(g_stack.cfg.novita_internal_api_base_url);
  g_stack.cfg.novita_internal_api_base_url = nrd_xstrdup(internal);
  free(g_stack.cfg.novita_internal_api_key);
  g_stack.cfg.novita_internal_api_key = nrd_xstrdup(NV_INTERNAL_KEY);
  free(g_stack.cfg.api_token);
  g_stack.cfg.api_token = nrd_xstrdup(API_TOKEN_V);
  free(g_stack.cfg.webhook_secret);
  g_stack.cfg.webhook_secret = nrd_xstrdup(WH_SECRET);
  g_stack.cfg.max_retry_attempts = 1;
  g_stack.cfg.log_level = NRD_LOG_DEBUG;
  snprintf(g_logpath, sizeof g_logpath, "%s/service.log", g_stack.dir);
  g_logfd = open(g_logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
  assert_true(g_logfd >= 0);
  nrd_log_set_fd(g_logfd);
  nrd_buf_init(&g_seen);
  tu_stack_start(&g_stack);
  return 0;
}

static int teardown(void **state)
{
  tu_stack_cleanup(&g_stack);
  nrd_log_set_fd(1);
  close(g_logfd);
  nrd_buf_cleanup(&g_seen);
  return 0;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scenarios),
    cmocka_unit_test(test_scan),
    cmocka_unit_test(test_binary),
  };
  return cmocka_run_group_tests_name("secrets", tests, setup, teardown);
}
