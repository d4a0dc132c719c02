/* Cleanup of the shared plain-data structs, and the settled-status rule. */

#include "nrd/model.h"

#include <stdlib.h>
#include <string.h>

void nrd_instance_cleanup(struct nrd_instance *inst)
{
  if (!inst)
    return;
  if (!inst->strings) {
    char **strings[] = {
      &inst->id, &inst->name, &inst->status, &inst->cluster_id, &inst->cluster_name,
      &inst->product_id, &inst->product_name, &inst->image_url, &inst->image_auth_id,
      &inst->command, &inst->gpu_num, &inst->rootfs_size, &inst->kind, &inst->billing_mode,
      &inst->entrypoint, &inst->network_id, &inst->min_cuda_version, &inst->raw_json,
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
      free(*strings[i]);
    for (size_t i = 0; i < inst->n_ports && inst->ports; i++) {
      free(inst->ports[i].port);
      free(inst->ports[i].type);
    }
    for (size_t i = 0; i < inst->n_envs && inst->envs; i++) {
      free(inst->envs[i].key);
      free(inst->envs[i].value);
    }
    for (size_t i = 0; i < inst->n_mounts && inst->mounts; i++) {
      free(inst->mounts[i].type);
      free(inst->mounts[i].id);
      free(inst->mounts[i].mount_path);
    }
    for (size_t i = 0; i < inst->n_tools && inst->tools; i++) {
      free(inst->tools[i].name);
      free(inst->tools[i].port);
      free(inst->tools[i].type);
    }
  }
  free(inst->strings);
  free(inst->ports);
  free(inst->envs);
  free(inst->mounts);
  free(inst->tools);
  memset(inst, 0, sizeof *inst);
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
