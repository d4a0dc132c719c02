#include "stack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/log.h"
#include "nrd/util.h"
#include "testutil.h"

static void die(const char *what, const char *err)
{
  fprintf(stderr, "test stack: %s: %s\n", what, err);
  abort();
}

static void set_str(char **field, const char *v)
{
  free(*field);
  *field = nrd_xstrdup(v);
}

void tu_stack_init(struct tu_stack *s, const struct nrd_sim_options *sim_opt)
{
  char err[256];
  char url[128];
  char db[512];
  struct nrd_sim_options defaults = { .api_key = "test-key" };

  memset(s, 0, sizeof(*s));
  s->dir = tu_tempdir();
  s->sim = nrd_sim_start(sim_opt ? sim_opt : &defaults, err, sizeof(err));
  if (!s->sim)
    die("simulator", err);
  nrd_config_defaults(&s->cfg);
  nrd_sim_base_url(s->sim, url);
  set_str(&s->cfg.novita_api_base_url, url);
  set_str(&s->cfg.novita_api_key, sim_opt && sim_opt->api_key ? sim_opt->api_key : "test-key");
  snprintf(db, sizeof(db), "%s/data/recovery.db", s->dir);
  set_str(&s->cfg.database_path, db);
  s->cfg.port = 0;
  s->cfg.novita_rate_limit_rps = 0;
  s->cfg.migration_interval_minutes = 0;
  s->cfg.watch_interval_seconds = 0; /* a test that watches turns it on */
  s->cfg.request_timeout_ms = 5000;
  s->cfg.log_level = NRD_LOG_WARN;
}

/* The service as production wires it (nrd_service), with three test
 * choices: short Novita backoffs; no scheduler unless an interval or the
 * watch is on (so the scheduler endpoints' "disabled" answer is reachable);
 * and the webhook tests start and watch their own sender. */
void tu_stack_start(struct tu_stack *s)
{
  char err[256];
  const struct nrd_service_options o = {
    .webhook_by_caller = true,
    .scheduler_if_timed = true,
    .backoff_base_ms = 20,
    .backoff_cap_ms = 200,
  };
  nrd_log_set_level(s->cfg.log_level);
  s->svc = nrd_service_start(&s->cfg, &o, err, sizeof(err));
  if (!s->svc)
    die("service", err);
  s->nv = nrd_service_novita(s->svc);
  s->runner = nrd_service_runner(s->svc);
  s->sched = nrd_service_scheduler(s->svc);
  s->http = nrd_service_http(s->svc);
  snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%u", nrd_http_port(s->http));
}

void tu_stack_stop_service(struct tu_stack *s)
{
  if (s->svc && !s->http)
    nrd_service_http_stopped(s->svc); /* the test stopped it itself */
  nrd_service_stop(s->svc);
  s->svc = NULL;
  s->http = NULL;
  s->sched = NULL;
  s->runner = NULL;
  s->nv = NULL;
}

void tu_stack_log_capture(struct tu_stack *s)
{
  if (s->log)
    return;
  s->log = tmpfile();
  if (!s->log)
    die("log capture", "no temporary file");
  nrd_log_set_fd(fileno(s->log));
}

char *tu_stack_log_take(struct tu_stack *s)
{
  struct nrd_buf b;
  char chunk[4096];
  size_t n;
  nrd_buf_init(&b);
  if (!s->log)
    return nrd_xstrdup("");
  nrd_log_set_fd(1); /* flushes what was held back into the file first */
  rewind(s->log);
  while ((n = fread(chunk, 1, sizeof(chunk), s->log)) > 0)
    nrd_buf_append(&b, chunk, n);
  fclose(s->log);
  s->log = NULL;
  char *text = nrd_xstrdup(b.data ? b.data : "");
  nrd_buf_cleanup(&b);
  fputs(text, stdout);
  return text;
}

const char *tu_log_find(const char *text, const char *msg_part, const char *key, const char *value)
{
  for (const char *line = text; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    cJSON *o = nrd_json_parse(line, len);
    const char *msg = nrd_json_str(o, "msg");
    const char *v = key ? nrd_json_str(o, key) : NULL;
    bool hit = msg && strstr(msg, msg_part) && (!key || (v && (!value || !strcmp(v, value))));
    cJSON_Delete(o);
    if (hit)
      return line;
    line = end ? end + 1 : NULL;
  }
  return NULL;
}

void tu_stack_cleanup(struct tu_stack *s)
{
  if (s->log)
    free(tu_stack_log_take(s));
  tu_stack_stop_service(s);
  if (s->sim)
    nrd_sim_stop(s->sim);
  nrd_config_cleanup(&s->cfg);
  tu_rmrf(s->dir);
  free(s->dir);
  memset(s, 0, sizeof(*s));
}

void tu_stack_load(struct tu_stack *s, const cJSON *scenario)
{
  char *json = nrd_json_print(scenario);
  if (nrd_sim_load(s->sim, json) != 0)
    die("scenario", "the simulator refused it");
  free(json);
}

cJSON *tu_stack_request(struct tu_stack *s, const char *method, const char *path, const char *body,
                        long *status)
{
  char url[512];
  struct tu_resp r = { 0 };
  const char *const json_headers[] = { "Content-Type: application/json", NULL };
  snprintf(url, sizeof(url), "%s%s", s->base, path);
  if (tu_http(method, url, body ? json_headers : NULL, body, &r) != 0)
    die("request", url);
  *status = r.status;
  tu_record_response(method, path, &r);
  cJSON *j = nrd_json_parse(r.body, r.body_len);
  tu_resp_cleanup(&r);
  return j;
}

cJSON *tu_stack_check_failed(struct tu_stack *s, const char *body, long *status)
{
  return tu_stack_request(s, "POST", "/api/instances/migration/check-failed", body, status);
}
