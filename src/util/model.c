/* Cleanup of the shared plain-data structs, and the settled-status rule. */

#include "nrd/model.h"
#include "nrd/util.h"

#include <stdlib.h>
#include <string.h>

void nrd_instance_each_string(struct nrd_instance *in, bool with_raw,
                              void (*fn)(char **field, void *arg), void *arg)
{
  char **fields[] = {
    &in->id,
    &in->name,
    &in->status,
    &in->cluster_id,
    &in->cluster_name,
    &in->product_id,
    &in->product_name,
    &in->image_url,
    &in->image_auth_id,
    &in->command,
    &in->gpu_num,
    &in->rootfs_size,
    &in->kind,
    &in->billing_mode,
    &in->entrypoint,
    &in->network_id,
    &in->min_cuda_version,
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    fn(fields[i], arg);
  if (with_raw)
    fn(&in->raw_json, arg);
  for (size_t i = 0; i < in->n_ports && in->ports; i++) {
    fn(&in->ports[i].port, arg);
    fn(&in->ports[i].type, arg);
  }
  for (size_t i = 0; i < in->n_envs && in->envs; i++) {
    fn(&in->envs[i].key, arg);
    fn(&in->envs[i].value, arg);
  }
  for (size_t i = 0; i < in->n_mounts && in->mounts; i++) {
    fn(&in->mounts[i].type, arg);
    fn(&in->mounts[i].id, arg);
    fn(&in->mounts[i].mount_path, arg);
  }
  for (size_t i = 0; i < in->n_tools && in->tools; i++) {
    fn(&in->tools[i].name, arg);
    fn(&in->tools[i].port, arg);
    fn(&in->tools[i].type, arg);
  }
}

static void free_one(char **field, void *unused)
{
  (void)unused;
  free(*field);
}

static void own_copy(char **field, void *unused)
{
  (void)unused;
  *field = nrd_xstrdup(*field);
}

void nrd_instance_cleanup(struct nrd_instance *inst)
{
  if (!inst)
    return;
  if (!inst->strings)
    nrd_instance_each_string(inst, true, free_one, NULL);
  free(inst->strings); /* a decoder's block (src/novita) */
  free(inst->ports);
  free(inst->envs);
  free(inst->mounts);
  free(inst->tools);
  memset(inst, 0, sizeof *inst);
}

void nrd_instance_set_str(struct nrd_instance *inst, char **field, const char *value)
{
  if (inst->strings) { /* a decoder's block: every string gets its own first */
    nrd_instance_each_string(inst, true, own_copy, NULL);
    free(inst->strings);
    inst->strings = NULL;
  }
  free(*field);
  *field = nrd_xstrdup(value);
}

void nrd_job_cleanup(struct nrd_job *job)
{
  if (!job)
    return;
  if (job->strings) {
    free(job->strings);
    memset(job, 0, sizeof *job);
    return;
  }
  free(job->id);
  free(job->type);
  free(job->instance_id);
  free(job->state);
  free(job->error);
  memset(job, 0, sizeof *job);
}

void nrd_product_cleanup(struct nrd_product *p)
{
  if (!p)
    return;
  free(p->id);
  free(p->name);
  for (size_t i = 0; i < p->n_regions && p->regions; i++)
    free(p->regions[i]);
  free(p->regions);
  memset(p, 0, sizeof *p);
}

bool nrd_status_is_settled(const char *status)
{
  static const char *const transitional[] = {
    "migrating", "toRemove", "removing", "removed", "freezing",
  };
  if (!status || !*status)
    return false;
  for (size_t i = 0; i < sizeof transitional / sizeof transitional[0]; i++) {
    if (strcmp(status, transitional[i]) == 0)
      return false;
  }
  return true;
}
