#ifndef NRD_MODEL_H
#define NRD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Plain data shared by the layers: a Novita instance as we keep it (decoded
 * from Novita, stored as a snapshot, read by the recreation rule), a migration
 * job and a product. Every char * is NULL when the value was absent (missing
 * key, null, or a value of the wrong type).
 *
 * Ownership, one rule whoever filled the struct: its strings belong to it.
 * Read them; never free one or store into one yourself: change an
 * instance's string with nrd_instance_set_str; free the whole with the
 * matching *_cleanup, which also zeroes the struct. A struct may be moved
 * (copied, then its old place zeroed). To build one, start from a zeroed
 * struct and give it heap strings (nrd_xstrdup) or set them with
 * nrd_instance_set_str. How a decoder lays its strings out is its own
 * business (the `strings` members below are private to src/novita). */

struct nrd_port {
  char *port; /* as Novita sent it, number printed as text ("8080"); NULL if absent */
  char *type; /* "tcp", "http", anything else is kept so the rule can refuse it */
};

struct nrd_env {
  char *key;
  char *value; /* secret: never logged, never reported */
};

struct nrd_mount {
  char *type; /* "network", "local", ... */
  char *id;
  char *mount_path;
};

/* A tool of an official image (create's tools[]: name, port, type). */
struct nrd_tool {
  char *name;
  char *port; /* number printed as text, as nrd_port's */
  char *type;
};

struct nrd_instance {
  char *id, *name, *status;
  char *cluster_id, *cluster_name;
  char *product_id, *product_name;
  char *image_url, *image_auth_id;
  char *command;
  char *gpu_num;     /* raw text: Novita sends a string; a number is printed as text */
  char *rootfs_size; /* raw text, as gpu_num */
  char *kind, *billing_mode;
  char *entrypoint; /* overrides the image's ENTRYPOINT */
  char *network_id; /* network.id: the VPC the instance is in */
  char *min_cuda_version;
  /* Lists: *_present is false when the key was missing or null; true with
   * n == 0 for a present empty list (which does replace a stored one). */
  bool ports_present, envs_present, mounts_present, tools_present;
  size_t n_ports, n_envs, n_mounts, n_tools;
  struct nrd_port *ports;
  struct nrd_env *envs;
  struct nrd_mount *mounts;
  struct nrd_tool *tools; /* objects only: a tool listed as a bare string is
                              not carried (the create needs its port) */
  int64_t created_at;     /* Unix seconds when Novita gave it, else 0 */
  char *raw_json;         /* the instance object as received, with passwords and
                          connect components removed; NULL if not kept */
  void *strings;          /* private to src/novita (its decoders' storage); NULL
                          in a struct built elsewhere */
};

void nrd_instance_cleanup(struct nrd_instance *inst);
/* Calls fn(field, arg) on each string field of in and of its lists, and on
 * raw_json too when with_raw. */
void nrd_instance_each_string(struct nrd_instance *in, bool with_raw,
                              void (*fn)(char **field, void *arg), void *arg);
/* Replaces *field, one of inst's strings (its lists' included), with a heap
 * copy of value (NULL: absent). The one way to change a string of an
 * instance one did not build. */
void nrd_instance_set_str(struct nrd_instance *inst, char **field, const char *value);

struct nrd_job {
  char *id;   /* Novita's "Id" */
  char *type; /* instanceMigrate | autoInstanceMigrate | ... */
  char *instance_id;
  char *state;        /* state.state: fail, success, running, pulling, break, ... */
  char *error;        /* state.error, else state.message, else errorMessage */
  int64_t created_at; /* Unix seconds */
  void *strings;      /* private to src/novita (its decoder's storage); NULL
                         in a struct built elsewhere */
};

void nrd_job_cleanup(struct nrd_job *job);

struct nrd_product {
  char *id, *name;
  char **regions; /* region strings as sent, e.g. "CN-HK-01 (Hong Kong)" */
  size_t n_regions;
  bool available;    /* availableDeploy */
  bool no_inventory; /* inventoryState "none" */
  bool has_spot_price;
  double spot_price; /* 1/100000 USD per hour */
};

void nrd_product_cleanup(struct nrd_product *p);

/* Instance statuses after which a snapshot may be refreshed (not transitional). */
bool nrd_status_is_settled(const char *status);

#endif
