/* Snapshots on PostgreSQL follow the settled-status rule of DESIGN.md: the
 * tests of test_store_snapshots.c against a real server (tests/support/pg.sh). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "nrd/util.h"
#include "pg_test.h"
/* A fully configured instance; free with nrd_instance_cleanup. */
static void make_instance(struct nrd_instance *in, const char *id, const char *status,
                          const char *image)
{
  memset(in, 0, sizeof *in);
  in->id = nrd_xstrdup(id);
  in->name = nrd_xstrdup("trainer-a");
  in->status = nrd_xstrdup(status);
  in->cluster_id = nrd_xstrdup("c-1");
  in->cluster_name = nrd_xstrdup("CN-HK-01 (Hong Kong)");
  in->product_id = nrd_xstrdup("p-4090");
  in->product_name = nrd_xstrdup("RTX 4090 24GB");
  in->image_url = nrd_xstrdup(image);
  in->image_auth_id = nrd_xstrdup("auth-1");
  in->command = nrd_xstrdup("python train.py");
  in->gpu_num = nrd_xstrdup("2");
  in->rootfs_size = nrd_xstrdup("60");
  in->kind = nrd_xstrdup("gpu");
  in->billing_mode = nrd_xstrdup("spot");
  in->ports_present = true;
  in->n_ports = 2;
  in->ports = nrd_xcalloc(2, sizeof *in->ports);
  in->ports[0].port = nrd_xstrdup("8080");
  in->ports[0].type = nrd_xstrdup("http");
  in->ports[1].port = nrd_xstrdup("22");
  in->ports[1].type = NULL;
  in->envs_present = true;
  in->n_envs = 1;
  in->envs = nrd_xcalloc(1, sizeof *in->envs);
  in->envs[0].key = nrd_xstrdup("TOKEN");
  in->envs[0].value = nrd_xstrdup("s3cr\"et\n");
  in->mounts_present = true;
  in->n_mounts = 1;
  in->mounts = nrd_xcalloc(1, sizeof *in->mounts);
  in->mounts[0].type = nrd_xstrdup("network");
  in->mounts[0].id = nrd_xstrdup("ns-1");
  in->mounts[0].mount_path = nrd_xstrdup("/data");
  in->created_at = 1764345600;
  in->raw_json = nrd_xstrdup("{\"id\":\"x\"}");
}

static void replace(char **field, const char *value)
{
  free(*field);
  *field = nrd_xstrdup(value);
}

/* Empties the envs list; present stays as it was. */
static void drop_envs(struct nrd_instance *in)
{
  for (size_t i = 0; i < in->n_envs; i++) {
    free(in->envs[i].key);
    free(in->envs[i].value);
  }
  free(in->envs);
  in->envs = NULL;
  in->n_envs = 0;
}

static void upsert(struct nrd_pg *st, const struct nrd_instance *in, const char *run, int64_t now)
{
  assert_int_equal(nrd_pg_snapshots_upsert(st, in, 1, run, now), NRD_OK);
}

static void test_first_sight_migrating(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_instance in, got;
  make_instance(&in, "i-mig", "migrating", "repo/img:1");
  upsert(f->pg, &in, "run_1", 1000);

  assert_int_equal(nrd_pg_snapshot_get(f->pg, "i-mig", &got), NRD_OK);
  assert_string_equal(got.id, "i-mig");
  assert_string_equal(got.status, "migrating");
  assert_string_equal(got.image_url, "repo/img:1");
  assert_string_equal(got.cluster_name, "CN-HK-01 (Hong Kong)");
  assert_string_equal(got.gpu_num, "2");
  assert_string_equal(got.rootfs_size, "60");
  assert_int_equal(got.created_at, 1764345600);
  assert_string_equal(got.raw_json, "{\"id\":\"x\"}");
  assert_true(got.ports_present);
  assert_int_equal(got.n_ports, 2);
  assert_string_equal(got.ports[0].port, "8080");
  assert_string_equal(got.ports[0].type, "http");
  assert_string_equal(got.ports[1].port, "22");
  assert_null(got.ports[1].type);
  assert_true(got.envs_present);
  assert_int_equal(got.n_envs, 1);
  assert_string_equal(got.envs[0].key, "TOKEN");
  assert_string_equal(got.envs[0].value, "s3cr\"et\n");
  assert_true(got.mounts_present);
  assert_int_equal(got.n_mounts, 1);
  assert_string_equal(got.mounts[0].mount_path, "/data");
  assert_string_equal(got.mounts[0].type, "network");
  assert_string_equal(got.mounts[0].id, "ns-1");
  nrd_instance_cleanup(&got);

  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-mig", 1000), NRD_OK);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-mig", 1001), NRD_NONE);
  assert_int_equal(nrd_pg_snapshot_get(f->pg, "i-unknown", &got), NRD_NONE);
  nrd_instance_cleanup(&got);
  nrd_instance_cleanup(&in);
}

static void test_migrating_does_not_refresh(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_instance in, got;
  make_instance(&in, "i-a", "running", "repo/img:1");
  upsert(f->pg, &in, "run_1", 1000);

  /* Half-migrated record: other image, no envs, no ports. */
  replace(&in.status, "migrating");
  replace(&in.image_url, "repo/broken:0");
  replace(&in.raw_json, "{\"id\":\"half\"}");
  drop_envs(&in);
  in.ports_present = false;
  upsert(f->pg, &in, "run_2", 2000);

  assert_int_equal(nrd_pg_snapshot_get(f->pg, "i-a", &got), NRD_OK);
  assert_string_equal(got.status, "migrating");
  assert_string_equal(got.image_url, "repo/img:1");
  assert_string_equal(got.raw_json, "{\"id\":\"x\"}");
  assert_int_equal(got.n_envs, 1);
  assert_int_equal(got.n_ports, 2);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-a", 2000), NRD_OK);
  nrd_instance_cleanup(&got);
  nrd_instance_cleanup(&in);
}

static void test_settled_refresh_rules(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_instance in, got;
  make_instance(&in, "i-b", "running", "repo/img:1");
  upsert(f->pg, &in, "run_1", 1000);

  /* Running again: imageUrl missing, command "", envs present and empty,
   * a new product name. */
  replace(&in.status, "exited");
  free(in.image_url);
  in.image_url = NULL;
  replace(&in.command, "");
  replace(&in.product_name, "RTX 5090 32GB");
  drop_envs(&in);
  upsert(f->pg, &in, "run_2", 2000);

  assert_int_equal(nrd_pg_snapshot_get(f->pg, "i-b", &got), NRD_OK);
  assert_string_equal(got.status, "exited");
  assert_string_equal(got.image_url, "repo/img:1");
  assert_string_equal(got.command, "python train.py");
  assert_string_equal(got.product_name, "RTX 5090 32GB");
  assert_true(got.envs_present);
  assert_int_equal(got.n_envs, 0);
  assert_int_equal(got.n_ports, 2);
  nrd_instance_cleanup(&got);
  nrd_instance_cleanup(&in);

  /* Envs set again, then a sighting where the key is absent: kept. */
  make_instance(&in, "i-b", "running", "repo/img:2");
  upsert(f->pg, &in, "run_3", 3000);
  drop_envs(&in);
  in.envs_present = false;
  in.mounts_present = false;
  upsert(f->pg, &in, "run_4", 4000);

  assert_int_equal(nrd_pg_snapshot_get(f->pg, "i-b", &got), NRD_OK);
  assert_string_equal(got.image_url, "repo/img:2");
  assert_true(got.envs_present);
  assert_int_equal(got.n_envs, 1);
  assert_string_equal(got.envs[0].value, "s3cr\"et\n");
  assert_int_equal(got.n_mounts, 1);
  nrd_instance_cleanup(&got);
  nrd_instance_cleanup(&in);
}

static void test_absent_lists_on_first_sight(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_instance in, got;
  memset(&in, 0, sizeof in);
  in.id = nrd_xstrdup("i-bare");
  in.status = nrd_xstrdup("running");
  in.image_url = nrd_xstrdup("");
  upsert(f->pg, &in, "run_1", 1000);

  assert_int_equal(nrd_pg_snapshot_get(f->pg, "i-bare", &got), NRD_OK);
  assert_null(got.image_url);
  assert_null(got.name);
  assert_false(got.ports_present);
  assert_false(got.envs_present);
  assert_false(got.mounts_present);
  assert_int_equal(got.created_at, 0);
  nrd_instance_cleanup(&got);
  nrd_instance_cleanup(&in);
}

static void test_page_in_one_call(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_instance items[3], got;
  make_instance(&items[0], "i-1", "running", "img:1");
  make_instance(&items[1], "", "running", "img:skipped");
  make_instance(&items[2], "i-3", "migrating", "img:3");
  assert_int_equal(nrd_pg_snapshots_upsert(f->pg, items, 3, "run_9", 5000), NRD_OK);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-1", 5000), NRD_OK);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-3", 5000), NRD_OK);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-3", 5001), NRD_NONE);
  assert_int_equal(nrd_pg_snapshot_get(f->pg, "", &got), NRD_NONE);
  for (size_t i = 0; i < 3; i++)
    nrd_instance_cleanup(&items[i]);
}

/* A page arriving in runs: stored in one transaction when it ends well,
 * nothing of it when it is dropped, even after runs were taken. */
struct runs_feed {
  struct nrd_instance *items;
  size_t n, at, per_run;
  int end; /* what next returns after the last run: 0 or -1 */
  size_t calls;
};

static int feed_next(void *ud, const struct nrd_instance **items, size_t *n)
{
  struct runs_feed *r = ud;
  r->calls++;
  if (r->at >= r->n)
    return r->end;
  *items = r->items + r->at;
  *n = r->n - r->at < r->per_run ? r->n - r->at : r->per_run;
  r->at += *n;
  return 1;
}

static void test_page_in_runs(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_instance items[5];
  char id[16];
  for (size_t i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "i-%zu", i);
    make_instance(&items[i], id, "running", "img:1");
  }
  struct runs_feed drop = { .items = items, .n = 5, .per_run = 2, .end = -1 };
  assert_int_equal(nrd_pg_snapshots_upsert_runs(f->pg, feed_next, &drop, "run_1", 1000), NRD_NONE);
  assert_int_equal(drop.calls, 4); /* three runs, then the drop */
  for (size_t i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "i-%zu", i);
    assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, id, 0), NRD_NONE);
  }
  struct runs_feed keep = { .items = items, .n = 5, .per_run = 2, .end = 0 };
  assert_int_equal(nrd_pg_snapshots_upsert_runs(f->pg, feed_next, &keep, "run_2", 2000), NRD_OK);
  for (size_t i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "i-%zu", i);
    assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, id, 2000), NRD_OK);
  }
  /* The store still takes writes after a dropped page. */
  upsert(f->pg, &items[0], "run_3", 3000);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-0", 3000), NRD_OK);
  for (size_t i = 0; i < 5; i++)
    nrd_instance_cleanup(&items[i]);
}

/* A page longer than one pipelined chunk (200), an instance twice in it
 * (the later one wins, as one statement after another), then a page whose
 * middle instance PostgreSQL refuses (a name that is not UTF-8): nothing of
 * that page is kept, and the connection takes the next write. */
static void test_long_page_and_a_refused_statement(void **state)
{
  struct pg_fixture *f = *state;
  enum { N = 450 };
  struct nrd_instance *items = nrd_xcalloc(N, sizeof *items), got;
  char id[16];
  for (size_t i = 0; i < N; i++) {
    snprintf(id, sizeof id, "i-%zu", i == N - 1 ? (size_t)7 : i);
    make_instance(&items[i], id, "running", i == N - 1 ? "img:last" : "img:1");
  }
  assert_int_equal(nrd_pg_snapshots_upsert(f->pg, items, N, "run_1", 1000), NRD_OK);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-448", 1000), NRD_OK);
  assert_int_equal(nrd_pg_snapshot_get(f->pg, "i-7", &got), NRD_OK);
  assert_string_equal(got.image_url, "img:last");
  nrd_instance_cleanup(&got);

  for (size_t i = 0; i < N; i++) {
    free(items[i].status);
    items[i].status = nrd_xstrdup("migrating"); /* status is written whatever the rule */
  }
  free(items[300].status);
  items[300].status = nrd_xstrdup("bad\xff\xfe");
  assert_int_equal(nrd_pg_snapshots_upsert(f->pg, items, N, "run_2", 2000), NRD_ERR);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-1", 2000), NRD_NONE);
  assert_int_equal(nrd_pg_snapshot_get(f->pg, "i-1", &got), NRD_OK);
  assert_string_equal(got.status, "running");
  nrd_instance_cleanup(&got);
  upsert(f->pg, &items[1], "run_3", 3000);
  assert_int_equal(nrd_pg_snapshot_seen_since(f->pg, "i-1", 3000), NRD_OK);
  for (size_t i = 0; i < N; i++)
    nrd_instance_cleanup(&items[i]);
  free(items);
}

int main(void)
{
  pgt_require_server();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_first_sight_migrating, pg_fixture_setup,
                                    pg_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_migrating_does_not_refresh, pg_fixture_setup,
                                    pg_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_settled_refresh_rules, pg_fixture_setup,
                                    pg_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_absent_lists_on_first_sight, pg_fixture_setup,
                                    pg_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_page_in_one_call, pg_fixture_setup, pg_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_page_in_runs, pg_fixture_setup, pg_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_long_page_and_a_refused_statement, pg_fixture_setup,
                                    pg_fixture_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
