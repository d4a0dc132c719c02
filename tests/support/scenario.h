#ifndef NRD_TEST_SCENARIO_H
#define NRD_TEST_SCENARIO_H

/* Builders of simulator scenarios and readers of reports, shared by the
 * integration tests. Every builder returns a new cJSON item. */

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nrd/sim.h"

/* An instance as Novita lists it: image, product "RTX 4090 24GB" (prod-4090),
 * gpuNum "2", rootfsSize 80, cluster "CN-HK-01 (Hong Kong)", an sshPassword. */
cJSON *tu_instance(const char *id, const char *name, const char *status);
/* A migration job; created in Unix seconds; state "fail", "running", ... */
cJSON *tu_job(const char *id, const char *type, const char *instance_id, int64_t created,
              const char *state);
/* A product named "RTX 4090 24GB" in one region, spot price as a string. */
cJSON *tu_product(const char *id, const char *region, const char *spot, bool available);
/* {"instances":[],"jobs":[],"products":[prod-4090, offered, no region]} */
cJSON *tu_scenario(void);
/* Appends item (taken) to the scenario's list "instances", "jobs" or "products". */
void tu_add(cJSON *scenario, const char *list, cJSON *item);
/* n migrating instances "i-000".. named "trainer-000".., each with a failed
 * job "job-000".. created a minute ago, plus extra running ones. */
cJSON *tu_failed_fleet(int failed, int running);

/* Replacements of tu_failed_fleet's instance i in the simulator: instances
 * named "trainer-NNN-recreated-*". */
int tu_replacements_of(struct nrd_sim *sim, int i);
/* Every failed instance 0..failed-1 has exactly one replacement and its old
 * instance is gone; when total >= 0 the simulator holds total instances.
 * false with why filled otherwise. */
bool tu_one_replacement_each(struct nrd_sim *sim, int failed, int total, char *why, size_t whylen);

/* The outcome of instance_id in a check-failed answer (borrowed), or NULL. */
const cJSON *tu_outcome_for(const cJSON *answer, const char *instance_id);
/* An integer field of the answer's "result"; -1 when absent. */
int64_t tu_result_int(const cJSON *answer, const char *key);
/* The bodies of the create requests the simulator received, parsed. */
cJSON *tu_sim_creates(struct nrd_sim *sim);

#endif
