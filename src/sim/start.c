/* A new instance's start, as Novita's get and list show it: toCreate ->
 * creating -> pulling -> running over configurable times, or, for an image
 * set to fail its pull, exited with a statusError. Without times and
 * failures a new instance is running at once (as before). */

#include <stdlib.h>
#include <string.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "sim_internal.h"

struct sim_starting {
  char *id;
  int64_t at_ms;      /* when the create was accepted (monotonic) */
  char *fail_message; /* the pull fails with this; NULL: it runs */
};

static const char *pull_failure_locked(struct nrd_sim *s, const char *image)
{
  for (size_t i = 0; image && i < s->npull_failures; i++) {
    if (strcmp(s->pull_failures[i].image, image) == 0)
      return s->pull_failures[i].message;
  }
  return NULL;
}

const char *sim_start_begin_locked(struct nrd_sim *s, const char *id, const char *image)
{
  const char *fail = pull_failure_locked(s, image);
  if (!fail && !s->start_ms[0] && !s->start_ms[1] && !s->start_ms[2])
    return "running";
  s->starting = nrd_xrealloc(s->starting, (s->nstarting + 1) * sizeof *s->starting);
  s->starting[s->nstarting++] =
      (struct sim_starting){ nrd_xstrdup(id), nrd_mono_ms(), fail ? nrd_xstrdup(fail) : NULL };
  return "toCreate";
}

static void set_status(cJSON *inst, const char *status)
{
  cJSON *v = cJSON_CreateString(status);
  if (!v || !cJSON_ReplaceItemInObjectCaseSensitive(inst, "status", v))
    abort();
}

static void fail_pull(cJSON *inst, const char *message)
{
  set_status(inst, "exited");
  cJSON_DeleteItemFromObjectCaseSensitive(inst, "statusError");
  cJSON *se = cJSON_AddObjectToObject(inst, "statusError");
  if (!se)
    abort();
  nrd_json_add_str(se, "state", "pullImageFailed");
  nrd_json_add_str(se, "message", message);
}

/* The status at elapsed ms; done when it is final. */
static const char *phase(const struct nrd_sim *s, int64_t elapsed, bool fails, bool *done)
{
  static const char *const phases[] = { "toCreate", "creating", "pulling" };
  int64_t t = 0;
  *done = false;
  for (int i = 0; i < 3; i++) {
    t += s->start_ms[i];
    if (elapsed < t)
      return phases[i];
  }
  *done = true;
  return fails ? "exited" : "running";
}

void sim_start_advance_locked(struct nrd_sim *s)
{
  int64_t now = nrd_mono_ms();
  bool changed = false;
  for (size_t i = 0; i < s->nstarting;) {
    struct sim_starting *st = &s->starting[i];
    cJSON *inst = sim_find_instance(s, st->id);
    bool done = true;
    const char *status = phase(s, now - st->at_ms, st->fail_message != NULL, &done);
    if (inst && strcmp(nrd_json_str(inst, "status") ? nrd_json_str(inst, "status") : "", status)) {
      if (done && st->fail_message)
        fail_pull(inst, st->fail_message);
      else
        set_status(inst, status);
      changed = true;
    }
    if (!inst || done) {
      free(st->id);
      free(st->fail_message);
      s->starting[i] = s->starting[--s->nstarting];
      continue;
    }
    i++;
  }
  if (changed)
    sim_instances_changed(s);
}

void sim_start_free(struct nrd_sim *s)
{
  for (size_t i = 0; i < s->nstarting; i++) {
    free(s->starting[i].id);
    free(s->starting[i].fail_message);
  }
  free(s->starting);
  for (size_t i = 0; i < s->npull_failures; i++) {
    free(s->pull_failures[i].image);
    free(s->pull_failures[i].message);
  }
  free(s->pull_failures);
}

void nrd_sim_set_start_times(struct nrd_sim *s, unsigned to_create_ms, unsigned creating_ms,
                             unsigned pulling_ms)
{
  pthread_mutex_lock(&s->mu);
  s->start_ms[0] = to_create_ms;
  s->start_ms[1] = creating_ms;
  s->start_ms[2] = pulling_ms;
  pthread_mutex_unlock(&s->mu);
}

void nrd_sim_set_pull_failure(struct nrd_sim *s, const char *image_url, const char *message)
{
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->npull_failures; i++) {
    if (strcmp(s->pull_failures[i].image, image_url) == 0) {
      free(s->pull_failures[i].image);
      free(s->pull_failures[i].message);
      s->pull_failures[i] = s->pull_failures[--s->npull_failures];
      break;
    }
  }
  if (message) {
    s->pull_failures =
        nrd_xrealloc(s->pull_failures, (s->npull_failures + 1) * sizeof *s->pull_failures);
    s->pull_failures[s->npull_failures++] =
        (struct sim_pull_failure){ nrd_xstrdup(image_url), nrd_xstrdup(message) };
  }
  pthread_mutex_unlock(&s->mu);
}

/* GET /v1/gpu/instance?instanceId=: the instance as listed (after its start
 * advanced), or 400 RESOURCE_NOT_FOUND as delete answers. */
int sim_get_instance(struct nrd_sim *s, struct MHD_Connection *c, const char *body, size_t body_len,
                     cJSON **out)
{
  (void)body;
  (void)body_len;
  const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "instanceId");
  if (!id || !*id) {
    *out = sim_error(400, "VALIDATOR_PARAM", "instanceId is required");
    return 400;
  }
  pthread_mutex_lock(&s->mu);
  sim_start_advance_locked(s);
  cJSON *inst = sim_find_instance(s, id);
  *out = inst ? cJSON_Duplicate(inst, true) : NULL;
  pthread_mutex_unlock(&s->mu);
  if (!inst) {
    *out = sim_error(400, "RESOURCE_NOT_FOUND", "instance not found");
    return 400;
  }
  if (!*out)
    abort();
  return 200;
}
