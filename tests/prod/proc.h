#ifndef NRD_PROD_PROC_H
#define NRD_PROD_PROC_H

/* The real binary as a child process, for the production-readiness tests:
 * spawn it with a chosen environment, read the port from its "listening" log
 * line, signal it and wait for it with a bound. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "nrd/sim.h"

struct prod_proc {
  pid_t pid;
  char log_path[600]; /* stdout and stderr of the child */
  unsigned port;      /* from the "listening" line (serve), else 0 */
};

/* Starts $NRD_BINARY with args (NULL-terminated, without argv[0]) and env
 * (NULL-terminated "NAME=value" list: the child's whole environment), output
 * to log_path. Aborts the test when the spawn fails. */
void prod_spawn(struct prod_proc *p, const char *const *args, const char *const *env,
                const char *log_path);
/* Waits up to timeout_ms for the "listening" line and fills p->port. false
 * when it did not come (the child died or is too slow). */
bool prod_wait_listening(struct prod_proc *p, int64_t timeout_ms);
/* Waits up to timeout_ms for the child to end. true with *code set (exit
 * status, or 128+signal) when it ended; false when it is still running. */
bool prod_wait_exit(struct prod_proc *p, int64_t timeout_ms, int *code);
/* SIGKILLs and reaps the child if still running (test clean-up). */
void prod_kill(struct prod_proc *p);
/* The child's output so far (heap, caller frees; "" when none). */
char *prod_read_log(const struct prod_proc *p);

/* A simulator in this process with a failed fleet (tu_failed_fleet), a temp
 * dir for the database, and the environment of a serve against both:
 * NOVITA_API_KEY, NOVITA_API_BASE_URL, DATABASE_PATH, PORT=0, no rate limit,
 * LOG_LEVEL=info, then extra_env (may be NULL; later entries win). */
#define PROD_ENV_MAX 32
struct prod_world {
  char *dir;
  struct nrd_sim *sim;
  char env_base[200], env_db[600];
  const char *env[PROD_ENV_MAX + 1];
};
void prod_world_init(struct prod_world *w, unsigned latency_ms, int failed, int running,
                     const char *const *extra_env);
void prod_world_cleanup(struct prod_world *w);
/* Spawns `serve` with the world's environment (log in the temp dir) and waits
 * for it to listen; fails the test when it does not. */
void prod_start_serve(struct prod_world *w, struct prod_proc *p, const char *log_name);

/* method path on 127.0.0.1:port (body JSON, may be NULL); the parsed answer
 * (caller deletes; NULL when not JSON) and its status. Fails the test when
 * no HTTP answer came. */
cJSON *prod_request(unsigned port, const char *method, const char *path, const char *body,
                    long *status);
/* "2026-11-28T15:20:00.123Z" -> epoch ms; -1 when not that shape. */
int64_t prod_iso_ms(const char *s);

#endif
