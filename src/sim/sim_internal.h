#ifndef NRD_SIM_INTERNAL_H
#define NRD_SIM_INTERNAL_H

/* Helpers shared by the simulator's files; not part of the public contract. */

#include <stddef.h>

#include <cjson/cJSON.h>

/* Parses a create request's "ports" string ("80/http, 3306/tcp": port 1-65535,
 * type tcp or http, defaulting to tcp, at most 15) into portMappings objects
 * {port, endpoint, type} as Novita lists them. 0 with *out (caller deletes),
 * or -1 with a reason in why. */
int nrd_sim_parse_ports(const char *ports, cJSON **out, char *why, size_t whylen);

#endif
