/* Storage failures are reported as ours (issue 16), end to end against the
 * simulator: the disk filling up in the middle of a run (a small tmpfs under
 * the database), a database corrupted on disk, its file deleted under the
 * running service. Each answers 503 STORE_UNAVAILABLE (never 500, never
 * Novita's 502), /ready answers 503 while it lasts, and once the disk has
 * room again every instance is recovered exactly once. The full disk is a
 * 16 MB tmpfs (root, as CI runs), else a file-size limit (below). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nrd/json.h"
#include "nrd/util.h"
#include "scenario.h"
#include "stack.h"
#include "store_corrupt.h"
#include "testutil.h"

#define FLEET 40
#define STORE_PREFIX "store unavailable: "

static long get_status(struct tu_stack *s, const char *path, cJSON **json)
{
  long status = 0;
  cJSON *j = tu_stack_request(s, "GET", path, NULL, &status);
  if (json)
    *json = j;
  else
    cJSON_Delete(j);
  return status;
}

/* /ready reaches want within a generous bound (its write probe runs at most
 * once a second). */
static bool ready_becomes(struct tu_stack *s, long want)
{
  for (int i = 0; i < 100; i++) {
    if (get_status(s, "/ready", NULL) == want)
      return true;
    nrd_sleep_ms(100);
  }
  return false;
}

static void assert_error_code(const cJSON *answer, const char *code)
{
  assert_non_null(answer);
  const cJSON *err = cJSON_GetObjectItem(answer, "error");
  assert_non_null(err);
  assert_string_equal(nrd_json_str(err, "code"), code);
}

/* ---- disk full mid-run ---- */

struct bg_run {
  struct tu_stack *s;
  long status;
  cJSON *answer;
};

static void *bg_run_main(void *arg)
{
  struct bg_run *b = arg;
  b->answer = tu_stack_check_failed(b->s, "{\"immediate\":true}", &b->status);
  return NULL;
}

/* Where a tmpfs cannot be mounted (no privilege), the disk is "full" by
 * RLIMIT_FSIZE instead: no file of this process may grow past the largest
 * the database has now, so SQLite's next append to its WAL fails (EFBIG,
 * an I/O error rather than SQLITE_FULL, handled the same way). */
static bool g_rlimit_mode;

static void limit_file_size(const char *dir, bool on)
{
  struct rlimit rl;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
  rl.rlim_cur = rl.rlim_max;
  if (on) {
    static const char *const names[] = { "recovery.db", "recovery.db-wal", NULL };
    off_t largest = 0;
    for (int i = 0; names[i]; i++) {
      char path[700];
      struct stat sb;
      snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
      if (stat(path, &sb) == 0 && sb.st_size > largest)
        largest = sb.st_size;
    }
    rl.rlim_cur = (rlim_t)largest;
  }
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

/* Writes until the file system is full; returns the filler's path (heap). */
static char *fill_disk(const char *dir)
{
  static char chunk[64 * 1024];
  char *path = nrd_xmalloc(strlen(dir) + 16);
  sprintf(path, "%s/filler", dir);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  memset(chunk, 'x', sizeof(chunk));
  for (;;) {
    ssize_t w = write(fd, chunk, sizeof(chunk));
    if (w < (ssize_t)sizeof(chunk)) {
      for (char one = 'x'; write(fd, &one, 1) == 1;)
        ;
      break;
    }
  }
  assert_int_equal(errno, ENOSPC);
  close(fd);
  return path;
}

/* Every outcome recreated, or deferred naming the store; returns how many
 * were deferred. */
static int check_outcomes(const cJSON *result)
{
  const cJSON *o;
  int deferred = 0, n = 0;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(result, "outcomes")) {
    const char *action = nrd_json_str(o, "action");
    n++;
    if (!strcmp(action, "deferred")) {
      const char *reason = nrd_json_str(o, "reason");
      assert_non_null(reason);
      if (strncmp(reason, STORE_PREFIX, strlen(STORE_PREFIX)) != 0)
        fail_msg("deferred for another reason: %s", reason);
      deferred++;
    } else if (strcmp(action, "recreated") != 0 && strcmp(action, "adopted") != 0) {
      fail_msg("outcome %s for %s", action, nrd_json_str(o, "instanceId"));
    }
  }
  assert_int_equal(n, FLEET);
  return deferred;
}

static void test_disk_full_mid_run(void **state)
{
  (void)state;
  struct tu_stack s;
  char mnt[600];
  tu_stack_init(&s, NULL);
  snprintf(mnt, sizeof(mnt), "%s/data", s.dir);
  assert_int_equal(mkdir(mnt, 0700), 0);
  g_rlimit_mode =
      getenv("NRD_TEST_NO_TMPFS") || mount("tmpfs", mnt, "tmpfs", 0, "size=16m,mode=0700") != 0;
  if (g_rlimit_mode) {
    print_message("no tmpfs (%s): the disk fills by RLIMIT_FSIZE\n",
                  getenv("NRD_TEST_NO_TMPFS") ? "NRD_TEST_NO_TMPFS" : strerror(errno));
    signal(SIGXFSZ, SIG_IGN);
  }
  cJSON *sc = tu_failed_fleet(FLEET, 0);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.migration_max_concurrent = 2;
  tu_stack_start(&s);
  assert_int_equal(get_status(&s, "/ready", NULL), 200);
  /* Creates take a while, so the disk fills while the run is under way. */
  struct nrd_sim_fault slow = { .kind = NRD_SIM_DELAY,
                                .match = "/gpu/instance/create",
                                .delay_ms = 60 };
  nrd_sim_add_fault(s.sim, &slow);

  struct bg_run b = { .s = &s };
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, bg_run_main, &b), 0);
  for (int i = 0; i < 6000 && nrd_sim_count(s.sim, "POST", "/gpu/instance/create") < 4; i++)
    nrd_sleep_ms(5);
  char *filler = NULL;
  if (g_rlimit_mode)
    limit_file_size(mnt, true);
  else
    filler = fill_disk(mnt);
  pthread_join(t, NULL);

  assert_int_equal(b.status, 503);
  assert_error_code(b.answer, "STORE_UNAVAILABLE");
  const cJSON *result = cJSON_GetObjectItem(b.answer, "result");
  int deferred = check_outcomes(result);
  assert_true(deferred > FLEET / 2);
  int64_t v = -1;
  assert_true(nrd_json_i64(result, "deferred", &v));
  assert_int_equal(v, deferred);
  assert_true(nrd_json_i64(result, "errors", &v));
  assert_int_equal(v, 0);
  cJSON_Delete(b.answer);
  assert_true(ready_becomes(&s, 503));

  /* The disk has room again: ready, and one run recovers what is left. */
  if (g_rlimit_mode)
    limit_file_size(mnt, false);
  else
    unlink(filler);
  free(filler);
  nrd_sim_clear_faults(s.sim);
  assert_true(ready_becomes(&s, 200));
  long status = 0;
  cJSON *rep = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 200);
  cJSON_Delete(rep);
  char why[256];
  if (!tu_one_replacement_each(s.sim, FLEET, FLEET, why, sizeof(why)))
    fail_msg("%s", why);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), FLEET);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/create"), FLEET);

  tu_stack_stop_service(&s);
  if (!g_rlimit_mode)
    umount2(mnt, MNT_DETACH);
  tu_stack_cleanup(&s);
}

/* ---- a corrupted database ---- */

static void corrupt_tables(const char *path)
{
  static const char *const tables[] = { "ledger", "snapshots", NULL };
  assert_true(tu_store_corrupt_tables(path, tables) >= 2);
}

static void assert_never_500_nor_novita(long status, cJSON *answer)
{
  if (status == 200)
    return;
  assert_int_equal(status, 503);
  assert_error_code(answer, "STORE_UNAVAILABLE");
}

static void test_corrupted_database(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(5, 5);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  s.cfg.migration_dry_run = true; /* rows and snapshots written, nothing touched */
  tu_stack_start(&s);
  long status = 0;
  cJSON_Delete(tu_stack_check_failed(&s, "{\"immediate\":true}", &status));
  assert_int_equal(status, 200);
  tu_stack_stop_service(&s);

  corrupt_tables(s.cfg.database_path);
  tu_stack_start(&s);
  assert_int_equal(get_status(&s, "/ready", NULL), 503);
  cJSON *a = NULL;
  status = get_status(&s, "/api/instances/migration/recoveries", &a);
  assert_int_equal(status, 503);
  assert_error_code(a, "STORE_UNAVAILABLE");
  cJSON_Delete(a);
  a = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 503);
  assert_error_code(a, "STORE_UNAVAILABLE");
  assert_non_null(strstr(nrd_json_str(cJSON_GetObjectItem(a, "error"), "message"), STORE_PREFIX));
  cJSON_Delete(a);
  static const char *const paths[] = { "/api/instances/migration/recoveries?state=failed",
                                       "/api/instances/migration/events",
                                       "/api/instances/migration/runs/run_none",
                                       "/api/instances/migration/runs",
                                       "/api/instances/migration/overview",
                                       "/api/instances/migration/stats/hourly",
                                       NULL };
  for (int i = 0; paths[i]; i++) {
    status = get_status(&s, paths[i], &a);
    if (status != 404)
      assert_never_500_nor_novita(status, a);
    cJSON_Delete(a);
  }
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);
  tu_stack_cleanup(&s);
}

/* ---- the file deleted under the service ---- */

static void test_database_file_vanishes(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  cJSON *sc = tu_failed_fleet(3, 0);
  tu_stack_load(&s, sc);
  cJSON_Delete(sc);
  tu_stack_start(&s);
  assert_int_equal(get_status(&s, "/ready", NULL), 200);

  char moved[600];
  snprintf(moved, sizeof(moved), "%s.moved", s.cfg.database_path);
  assert_int_equal(rename(s.cfg.database_path, moved), 0);
  assert_int_equal(get_status(&s, "/ready", NULL), 503);
  long status = 0;
  cJSON *a = tu_stack_check_failed(&s, "{\"immediate\":true}", &status);
  assert_int_equal(status, 503);
  assert_error_code(a, "STORE_UNAVAILABLE");
  assert_non_null(
      strstr(nrd_json_str(cJSON_GetObjectItem(a, "error"), "message"), "deleted or moved"));
  cJSON_Delete(a);
  assert_int_equal(nrd_sim_count(s.sim, "POST", "/gpu/instance/delete"), 0);

  /* Put back: the same inode, ready again. */
  assert_int_equal(rename(moved, s.cfg.database_path), 0);
  assert_true(ready_becomes(&s, 200));
  tu_stack_cleanup(&s);
}

/* /ready never waits on a write: with another connection holding the
 * write lock it answers what it knew (200), rather than waiting out the
 * busy timeout and calling a healthy database unwritable. */
static void test_ready_does_not_wait_on_a_write(void **state)
{
  (void)state;
  struct tu_stack s;
  tu_stack_init(&s, NULL);
  tu_stack_start(&s);
  assert_int_equal(get_status(&s, "/ready", NULL), 200);
  nrd_sleep_ms(1100); /* the next /ready probes again */

  struct tu_store_hold *h = tu_store_hold_write(s.cfg.database_path);
  assert_non_null(h);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(get_status(&s, "/ready", NULL), 200);
    nrd_sleep_ms(600);
  }
  tu_store_release_write(h);
  assert_int_equal(get_status(&s, "/ready", NULL), 200);
  tu_stack_cleanup(&s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_disk_full_mid_run),
    cmocka_unit_test(test_corrupted_database),
    cmocka_unit_test(test_database_file_vanishes),
    cmocka_unit_test(test_ready_does_not_wait_on_a_write),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
