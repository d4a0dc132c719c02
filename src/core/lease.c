/* The lease keeper: one thread that renews, every third of
 * RECOVERY_LEASE_SECONDS, the leases of the rows this process holds, on its
 * own store connection. Workers add and remove the rows they hold. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_internal.h"
#include "nrd/util.h"

void nrd_lease_hold(struct nrd_runner *r, const char *job_id)
{
  pthread_mutex_lock(&r->lease_lock);
  if (r->n_active == r->cap_active) {
    r->cap_active = r->cap_active ? r->cap_active * 2 : 16;
    r->active = nrd_xrealloc(r->active, r->cap_active * sizeof(*r->active));
  }
  r->active[r->n_active++] = nrd_xstrdup(job_id);
  pthread_mutex_unlock(&r->lease_lock);
}

void nrd_lease_unhold(struct nrd_runner *r, const char *job_id)
{
  pthread_mutex_lock(&r->lease_lock);
  for (size_t i = 0; i < r->n_active; i++) {
    if (!strcmp(r->active[i], job_id)) {
      free(r->active[i]);
      r->active[i] = r->active[--r->n_active];
      break;
    }
  }
  pthread_mutex_unlock(&r->lease_lock);
}

static void *lease_main(void *arg)
{
  struct nrd_runner *r = arg;
  struct nrd_store *st = r->lease_store;
  int64_t lease_ms = (int64_t)r->cfg->recovery_lease_seconds * 1000;

  pthread_mutex_lock(&r->lease_lock);
  while (!r->lease_stop) {
    nrd_cond_wait_ms(&r->lease_cond, &r->lease_lock, lease_ms / 3);
    if (r->lease_stop)
      break;
    /* Copy the ids so no store call happens under the lock. */
    size_t n = r->n_active;
    char **ids = nrd_xcalloc(n ? n : 1, sizeof(*ids));
    for (size_t i = 0; i < n; i++)
      ids[i] = nrd_xstrdup(r->active[i]);
    pthread_mutex_unlock(&r->lease_lock);
    for (size_t i = 0; i < n; i++) {
      nrd_store_ledger_renew(st, ids[i], r->owner, nrd_now_ms() + lease_ms);
      free(ids[i]);
    }
    free(ids);
    pthread_mutex_lock(&r->lease_lock);
  }
  pthread_mutex_unlock(&r->lease_lock);
  return NULL;
}

void nrd_lease_init(struct nrd_runner *r)
{
  pthread_mutex_init(&r->lease_lock, NULL);
  nrd_cond_init_mono(&r->lease_cond);
}

int nrd_lease_start(struct nrd_runner *r)
{
  return pthread_create(&r->lease_thread, NULL, lease_main, r) == 0 ? 0 : -1;
}

void nrd_lease_stop(struct nrd_runner *r)
{
  nrd_thread_stop(r->lease_thread, &r->lease_lock, &r->lease_cond, &r->lease_stop);
  nrd_store_close(r->lease_store);
  r->lease_store = NULL;
  for (size_t i = 0; i < r->n_active; i++)
    free(r->active[i]);
  free(r->active);
  r->active = NULL;
  r->n_active = r->cap_active = 0;
}
