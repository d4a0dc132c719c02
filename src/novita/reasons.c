/* Novita's error reasons and what each means for a recovery: the one table
 * the transport classifies by (nrd/novita.h). README prints the same table;
 * a unit test checks the two agree. */

#include <string.h>
#include <strings.h>

#include "nrd/novita.h"
#include "nrd/util.h"

static const struct nrd_nv_reason REASONS[] = {
  { "INSUFFICIENT_RESOURCE", NRD_NV_CLASS_TRANSIENT, true },
  { "MIGRATE_INSUFFICIENT_RESOURCE", NRD_NV_CLASS_TRANSIENT, true },
  { "CLUSTER_STATUS", NRD_NV_CLASS_TRANSIENT, false },
  { "NODE_STATUS", NRD_NV_CLASS_TRANSIENT, false },
  { "DEPENDENT_RESOURCE_STATE", NRD_NV_CLASS_TRANSIENT, false },
  { "OPERATION_LIMIT", NRD_NV_CLASS_TRANSIENT, false },
  { "BALANCE_NOT_ENOUGH", NRD_NV_CLASS_ACCOUNT, false },
  { "DE_BALANCE_NOT_ENOUGH", NRD_NV_CLASS_ACCOUNT, false },
  { "EXPIRED_OR_BALANCE_NOT_ENOUGH", NRD_NV_CLASS_ACCOUNT, false },
  { "CREATE_GPU_NUM_LIMIT", NRD_NV_CLASS_ACCOUNT, false },
  { "UNSUPPORTED_BILLING_MODE", NRD_NV_CLASS_ACCOUNT, false },
  { "VALIDATOR_PARAM", NRD_NV_CLASS_ROW, false },
  { "REQUEST", NRD_NV_CLASS_ROW, false },
  { "CUDA_VERSION_INCOMPATIBLE", NRD_NV_CLASS_ROW, false },
  { "CONFLICT", NRD_NV_CLASS_ROW, false },
  { "PREPAID_INSTANCE_NOT_SUPPORT_RELEASE", NRD_NV_CLASS_PREPAID, false },
  { "RESOURCE_NOT_FOUND", NRD_NV_CLASS_GONE, false },
};

const struct nrd_nv_reason *nrd_nv_reasons(size_t *n)
{
  *n = sizeof REASONS / sizeof REASONS[0];
  return REASONS;
}

const struct nrd_nv_reason *nrd_nv_reason_find(const char *reason)
{
  for (size_t i = 0; reason && *reason && i < sizeof REASONS / sizeof REASONS[0]; i++) {
    if (strcasecmp(reason, REASONS[i].reason) == 0)
      return &REASONS[i];
  }
  return NULL;
}

const char *nrd_nv_class_name(enum nrd_nv_class c)
{
  static const char *const names[] = {
    [NRD_NV_CLASS_TRANSIENT] = "transient",
    [NRD_NV_CLASS_ACCOUNT] = "account-wide",
    [NRD_NV_CLASS_ROW] = "row-final",
    [NRD_NV_CLASS_GONE] = "gone",
    [NRD_NV_CLASS_PREPAID] = "prepaid-on-delete",
  };
  return NRD_ENUM_NAME(names, c);
}

enum nrd_nv_class nrd_nv_classify(const char *reason, int http_status)
{
  const struct nrd_nv_reason *r = nrd_nv_reason_find(reason);
  if (r)
    return r->cls;
  if (http_status == 404)
    return NRD_NV_CLASS_GONE;
  if (http_status == 0 || http_status == 408 || http_status == 429 || http_status >= 500)
    return NRD_NV_CLASS_TRANSIENT;
  return NRD_NV_CLASS_ROW;
}

bool nrd_nv_is_capacity(const char *reason)
{
  const struct nrd_nv_reason *r = nrd_nv_reason_find(reason);
  return r && r->capacity;
}
