#ifndef NRD_RECREATE_H
#define NRD_RECREATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "nrd/model.h"

/* The recreation rule (DESIGN.md, "Recreation rule"): a stored snapshot in, a
 * Novita create request out. Pure: no I/O, no clock, no globals.
 *
 * "Absent" is a NULL field, "" or an empty/absent list, and for gpuNum and
 * rootfsSize also "0". A present value that Novita would refuse fails the
 * row before anything is deleted, with a reason in reason[]. */

#define NRD_NAME_MAX 255
#define NRD_REASON_MAX 256

/* The replacement name "<base>-recreated-<ms>" (ms: 13 digits) where base is
 * old_name (NULL or "" -> the instance id) with any earlier
 * "-recreated-<13 digits>" suffix removed, cut (on a UTF-8 boundary) so that
 * the whole fits NRD_NAME_MAX bytes. */
void nrd_recreate_name(const char *old_name, const char *instance_id, int64_t ms,
                       char out[NRD_NAME_MAX + 1]);

/* The region code for the product fallback: the text of cluster_name before
 * its first space, else default_region. */
void nrd_recreate_region(const struct nrd_instance *snap, const char *default_region, char out[64]);

/* Checks everything that does not need Novita: imageUrl present (at most 500
 * bytes); gpuNum absent or an integer 1-8; rootfsSize absent or an integer
 * >= 10 (and <= 6144); every port a number 1-65535 with type tcp/http/absent
 * (case-insensitive; sent in lower case); at most 15 ports and tools together
 * (reserved ports 2222-2224 are not sent and not counted); every tool with a
 * name, a port 1-65535 when present and type tcp/http/absent; at most 100 envs
 * (30 on a cpu instance), each with a non-empty key; command and entrypoint
 * at most 2047 bytes each; minCudaVersion at most 32 bytes; a cpu instance's
 * local mount path at most 255 bytes; at most 30 network mounts carried over; kind and billingMode absent or one of their
 * values (exact case); when productId is absent, a productName to look up.
 * Returns true when buildable; false with a reason ending in "; instance left
 * untouched" (reason may be NULL). needs_product (may be NULL) is set when
 * productId is absent (the caller must look one up). Reasons never contain
 * env values. */
bool nrd_recreate_check(const struct nrd_instance *snap, bool *needs_product,
                        char reason[NRD_REASON_MAX]);

/* Builds the create request. product_id: the snapshot's own when present,
 * else the fallback the caller found. Call only after nrd_recreate_check
 * succeeded. Returns a new cJSON object (caller deletes) with, in this order:
 * name, productId, gpuNum (integer; not for cpu), rootfsSize (integer; not for
 * cpu), imageUrl, imageAuthId?, ports? ("80/http, 3306/tcp", without the
 * reserved 2222-2224), envs?, tools? ([{name, port?, type}]), command?,
 * entrypoint?, clusterId?, localStorageMountPoint? (cpu only: the first local
 * mount's path), networkStorages? ([{Id, mountPoint}] from mounts of type
 * "network"), networkId?, minCudaVersion? (not for cpu), kind, billingMode. A
 * network mount is carried over only with both id and mountPath; an env value
 * that was absent is sent as "". */
cJSON *nrd_recreate_build(const struct nrd_instance *snap, const char *product_id,
                          const char *new_name);

/* What the create does not carry, added to a recreated or planned outcome:
 * "droppedPorts" ([2222, ...], the reserved ports left out) when any, and
 * "localStorageLost": true with "localStorageMountPath" (the first local
 * volume's mount point) when the instance had a local volume: Novita's local
 * volumes do not survive a recreation. */
void nrd_recreate_notes(const struct nrd_instance *snap, cJSON *outcome);

/* A deep copy (caller deletes; NULL in, NULL out) with secrets replaced by
 * "***": every env value, imageAuthId, and imageAuth when present. */
cJSON *nrd_recreate_redact(const cJSON *request);

/* The product fallback: the index of the cheapest product named exactly name,
 * with an id, whose availableDeploy is true, spot price > 0, and one region
 * whose code (text before the first space) equals region. -1 when none.
 * Ties: first. */
long nrd_recreate_pick_product(const struct nrd_product *products, size_t n, const char *name,
                               const char *region);

#endif
