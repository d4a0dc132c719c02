/* Several replicas on one PostgreSQL (tests/support/pg.sh), each a
 * connection of its own: a row claimed once when all go for it, every open
 * row claimed exactly once by replicas taking the next free one (SKIP
 * LOCKED), the outbox's events each given to one sender, leadership that
 * passes on when its holder is killed, migrations applied once when replicas
 * start together, a newer schema refused. */

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "nrd/migrations.h"
#include "nrd/util.h"
#include "pg_test.h"

#define LEASE_MS 30000
#define REPLICAS 4

static struct nrd_pg *open_as(const char *url, const char *identity)
{
  char err[256] = "";
  struct nrd_pg *pg = NULL;
  if (nrd_pg_open_as(url, identity, &pg, NULL, err, sizeof err) != NRD_OK)
    fprintf(stderr, "open %s: %s\n", identity, err);
  return pg;
}

static void insert_rows(struct nrd_pg *pg, int n)
{
  struct nrd_ledger_new *rows = nrd_xcalloc((size_t)n, sizeof *rows);
  char(*ids)[32] = nrd_xcalloc((size_t)n, sizeof *ids);
  for (int i = 0; i < n; i++) {
    snprintf(ids[i], sizeof ids[i], "job-%03d", i);
    rows[i] = (struct nrd_ledger_new){ ids[i], "instanceMigrate", "i-x", "x", "x-recreated-1", 1 };
  }
  assert_int_equal(nrd_pg_ledger_insert_many(pg, rows, (size_t)n, 1000, NULL), NRD_OK);
  free(rows);
  free(ids);
}

/* ---- every replica goes for the same row at once: one wins ---- */

#define RACE_ROWS 20

struct racer {
  const char *url;
  char owner[16];
  pthread_barrier_t *barrier;
  int won[RACE_ROWS];
  int errors;
};

static void *race_same_row(void *arg)
{
  struct racer *r = arg;
  struct nrd_pg *pg = open_as(r->url, r->owner);
  if (!pg)
    r->errors++;
  for (int i = 0; i < RACE_ROWS; i++) {
    char job[32];
    snprintf(job, sizeof job, "job-%03d", i);
    pthread_barrier_wait(r->barrier); /* all replicas go for row i together */
    if (!pg)
      continue;
    int rc = nrd_pg_ledger_claim(pg, job, r->owner, "run", 10000, LEASE_MS, NULL);
    if (rc == NRD_OK)
      r->won[i] = 1;
    else if (rc != NRD_NONE)
      r->errors++;
  }
  nrd_pg_close(pg);
  return NULL;
}

static void test_same_row_one_winner(void **state)
{
  struct pg_fixture *f = *state;
  insert_rows(f->pg, RACE_ROWS);
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, REPLICAS);
  struct racer r[REPLICAS];
  pthread_t t[REPLICAS];
  for (int k = 0; k < REPLICAS; k++) {
    r[k] = (struct racer){ .url = f->url, .barrier = &barrier };
    snprintf(r[k].owner, sizeof r[k].owner, "replica-%d", k);
    assert_int_equal(pthread_create(&t[k], NULL, race_same_row, &r[k]), 0);
  }
  for (int k = 0; k < REPLICAS; k++)
    pthread_join(t[k], NULL);
  pthread_barrier_destroy(&barrier);

  for (int i = 0; i < RACE_ROWS; i++) {
    int winners = 0, winner = -1;
    for (int k = 0; k < REPLICAS; k++) {
      assert_int_equal(r[k].errors, 0);
      winners += r[k].won[i];
      if (r[k].won[i])
        winner = k;
    }
    assert_int_equal(winners, 1);
    char job[32];
    snprintf(job, sizeof job, "job-%03d", i);
    struct nrd_ledger_row row;
    assert_int_equal(nrd_pg_ledger_get(f->pg, job, &row), NRD_OK);
    assert_string_equal(row.owner, r[winner].owner);
    assert_int_equal(row.attempts, 1);
    nrd_ledger_row_cleanup(&row);
  }
}

/* ---- replicas take the next free row until none is left ---- */

#define NEXT_ROWS 200

struct taker {
  const char *url;
  char owner[16];
  pthread_barrier_t *barrier;
  char (*got)[32];
  size_t n_got;
  int errors;
};

static void *take_next(void *arg)
{
  struct taker *t = arg;
  struct nrd_pg *pg = open_as(t->url, t->owner);
  pthread_barrier_wait(t->barrier);
  if (!pg) {
    t->errors++;
    return NULL;
  }
  for (;;) {
    struct nrd_ledger_row row;
    int rc = nrd_pg_ledger_claim_next(pg, t->owner, "run", 10000, LEASE_MS, &row);
    if (rc == NRD_NONE)
      break;
    if (rc != NRD_OK) {
      t->errors++;
      break;
    }
    snprintf(t->got[t->n_got++], sizeof t->got[0], "%s", row.job_id);
    nrd_ledger_row_cleanup(&row);
  }
  nrd_pg_close(pg);
  return NULL;
}

static void test_claim_next_exactly_once(void **state)
{
  struct pg_fixture *f = *state;
  insert_rows(f->pg, NEXT_ROWS);
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, REPLICAS);
  struct taker tk[REPLICAS];
  pthread_t t[REPLICAS];
  for (int k = 0; k < REPLICAS; k++) {
    tk[k] = (struct taker){ .url = f->url,
                            .barrier = &barrier,
                            .got = nrd_xcalloc(NEXT_ROWS, sizeof *tk[k].got) };
    snprintf(tk[k].owner, sizeof tk[k].owner, "replica-%d", k);
    assert_int_equal(pthread_create(&t[k], NULL, take_next, &tk[k]), 0);
  }
  for (int k = 0; k < REPLICAS; k++)
    pthread_join(t[k], NULL);
  pthread_barrier_destroy(&barrier);

  int seen[NEXT_ROWS] = { 0 };
  size_t total = 0;
  for (int k = 0; k < REPLICAS; k++) {
    assert_int_equal(tk[k].errors, 0);
    for (size_t i = 0; i < tk[k].n_got; i++) {
      int idx = atoi(tk[k].got[i] + 4);
      assert_true(idx >= 0 && idx < NEXT_ROWS);
      seen[idx]++;
    }
    total += tk[k].n_got;
    free(tk[k].got);
  }
  assert_int_equal(total, NEXT_ROWS);
  for (int i = 0; i < NEXT_ROWS; i++)
    assert_int_equal(seen[i], 1);
  int64_t counts[NRD_ROW_STATE_COUNT];
  assert_int_equal(nrd_pg_ledger_count_by_state(f->pg, counts), NRD_OK);
  assert_int_equal(counts[NRD_ROW_PENDING], NEXT_ROWS);
  struct nrd_ledger_row row;
  assert_int_equal(nrd_pg_ledger_claim_next(f->pg, "late", "run", 1, LEASE_MS, &row), NRD_NONE);
}

/* ---- the outbox: one sender at a time ---- */

static void add_event(struct nrd_pg *pg, const char *id)
{
  struct nrd_event e = {
    .id = (char *)id, .type = "run.completed", .body_json = "{}", .created_ms = 1
  };
  assert_int_equal(nrd_pg_event_insert(pg, &e), NRD_OK);
}

static void test_outbox_one_sender(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_pg *a = open_as(f->url, "sender-a");
  struct nrd_pg *b = open_as(f->url, "sender-b");
  assert_non_null(a);
  assert_non_null(b);
  add_event(f->pg, "evt_1");
  add_event(f->pg, "evt_2");
  struct nrd_event ev;
  assert_int_equal(nrd_pg_event_next(a, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_1");
  nrd_event_cleanup(&ev);
  /* B does not get evt_1 while A holds it, nor evt_2 before it (order). */
  assert_int_equal(nrd_pg_event_next(b, &ev), NRD_NONE);
  assert_int_equal(nrd_pg_event_mark(b, "evt_1", "delivered", 1, 0, NULL), NRD_NONE);
  /* A's failed attempt gives it back: B may take it next. */
  assert_int_equal(nrd_pg_event_mark(a, "evt_1", "pending", 1, 5000, "HTTP 500"), NRD_OK);
  assert_int_equal(nrd_pg_event_next(b, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_1");
  assert_int_equal(ev.attempts, 1);
  nrd_event_cleanup(&ev);
  assert_int_equal(nrd_pg_event_next(a, &ev), NRD_NONE);
  assert_int_equal(nrd_pg_event_mark(b, "evt_1", "delivered", 2, 0, NULL), NRD_OK);
  nrd_pg_set_outbox_lease(a, 300);
  assert_int_equal(nrd_pg_event_next(a, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_2");
  nrd_event_cleanup(&ev);
  /* A sender that died holding an event: past its outbox lease (on the
   * database's clock), another takes it. */
  assert_int_equal(nrd_pg_event_next(b, &ev), NRD_NONE);
  nrd_pg_close(a);
  int rc = NRD_NONE;
  for (int i = 0; i < 250 && rc == NRD_NONE; i++) {
    rc = nrd_pg_event_next(b, &ev);
    if (rc == NRD_NONE)
      nrd_sleep_ms(20);
  }
  assert_int_equal(rc, NRD_OK);
  assert_string_equal(ev.id, "evt_2");
  nrd_event_cleanup(&ev);
  nrd_pg_close(b);
}

#define OUTBOX_EVENTS 60

struct sender {
  const char *url;
  char name[16];
  pthread_barrier_t *barrier;
  int got[OUTBOX_EVENTS];
  int errors;
};

static void *send_all(void *arg)
{
  struct sender *s = arg;
  struct nrd_pg *pg = open_as(s->url, s->name);
  pthread_barrier_wait(s->barrier);
  if (!pg) {
    s->errors++;
    return NULL;
  }
  for (int idle = 0; idle < 50;) {
    struct nrd_event ev;
    int rc = nrd_pg_event_next(pg, &ev);
    if (rc == NRD_NONE) {
      int64_t p, d, x;
      if (nrd_pg_event_count_by_state(pg, &p, &d, &x) == NRD_OK && p == 0)
        break;
      idle++;
      nrd_sleep_ms(5);
      continue;
    }
    if (rc != NRD_OK) {
      s->errors++;
      break;
    }
    idle = 0;
    s->got[atoi(ev.id + 4)]++;
    if (nrd_pg_event_mark(pg, ev.id, "delivered", 1, 0, NULL) != NRD_OK)
      s->errors++;
    nrd_event_cleanup(&ev);
  }
  nrd_pg_close(pg);
  return NULL;
}

static void test_outbox_senders_deliver_once(void **state)
{
  struct pg_fixture *f = *state;
  for (int i = 0; i < OUTBOX_EVENTS; i++) {
    char id[32];
    snprintf(id, sizeof id, "evt_%03d", i);
    add_event(f->pg, id);
  }
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, REPLICAS);
  struct sender s[REPLICAS];
  pthread_t t[REPLICAS];
  for (int k = 0; k < REPLICAS; k++) {
    s[k] = (struct sender){ .url = f->url, .barrier = &barrier };
    snprintf(s[k].name, sizeof s[k].name, "sender-%d", k);
    assert_int_equal(pthread_create(&t[k], NULL, send_all, &s[k]), 0);
  }
  for (int k = 0; k < REPLICAS; k++)
    pthread_join(t[k], NULL);
  pthread_barrier_destroy(&barrier);
  for (int i = 0; i < OUTBOX_EVENTS; i++) {
    int sent = 0;
    for (int k = 0; k < REPLICAS; k++)
      sent += s[k].got[i];
    assert_int_equal(sent, 1);
  }
  for (int k = 0; k < REPLICAS; k++)
    assert_int_equal(s[k].errors, 0);
  int64_t p, d, x;
  assert_int_equal(nrd_pg_event_count_by_state(f->pg, &p, &d, &x), NRD_OK);
  assert_int_equal(p, 0);
  assert_int_equal(d, OUTBOX_EVENTS);
}

/* ---- leadership ---- */

/* Tries for name until taken (NRD_OK) or 10 s passed: the server ends a
 * closed or dead session's backend on its own time, far within that. */
static int leader_wait(struct nrd_pg *pg, const char *name)
{
  int rc = NRD_NONE;
  for (int i = 0; i < 500 && rc == NRD_NONE; i++) {
    rc = nrd_pg_leader_try(pg, name);
    if (rc == NRD_NONE)
      nrd_sleep_ms(20);
  }
  return rc;
}

static void test_leader_one_at_a_time(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_pg *a = open_as(f->url, "replica-a");
  struct nrd_pg *b = open_as(f->url, "replica-b");
  assert_int_equal(nrd_pg_leader_try(a, "scheduler"), NRD_OK);
  assert_int_equal(nrd_pg_leader_try(a, "scheduler"), NRD_OK); /* still held */
  assert_int_equal(nrd_pg_leader_try(b, "scheduler"), NRD_NONE);
  assert_int_equal(nrd_pg_leader_try(b, "watch"), NRD_OK); /* another name */
  assert_int_equal(nrd_pg_leader_try(a, "watch"), NRD_NONE);
  /* One release gives it up, however often it was tried while held. */
  assert_int_equal(nrd_pg_leader_release(a, "scheduler"), NRD_OK);
  assert_int_equal(nrd_pg_leader_try(b, "scheduler"), NRD_OK);
  assert_int_equal(nrd_pg_leader_try(a, "scheduler"), NRD_NONE);
  assert_int_equal(nrd_pg_leader_release(a, "scheduler"), NRD_OK); /* not held: fine */
  /* A closed connection's leadership passes on. */
  nrd_pg_close(b);
  assert_int_equal(leader_wait(a, "scheduler"), NRD_OK);
  assert_int_equal(leader_wait(a, "watch"), NRD_OK);
  nrd_pg_close(a);
}

/* The run under the run lock: the newest running run of the process whose
 * session holds the lock (not another name's, not the asker's own, not a
 * run of a process without it, not a finished one). */
static void test_run_holding_lock(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_pg *a = open_as(f->url, "replica-a");
  struct nrd_pg *b = open_as(f->url, "replica-b");
  struct nrd_pg *c = open_as(f->url, "replica-c");
  struct nrd_run_record rec;
  assert_int_equal(nrd_pg_run_insert(a, "run-a-old", "api", false, 1000), NRD_OK);
  assert_int_equal(nrd_pg_run_finish(a, "run-a-old", "done", "{}", 1500), NRD_OK);
  assert_int_equal(nrd_pg_run_insert(b, "run-b", "api", false, 3000), NRD_OK);
  assert_int_equal(nrd_pg_leader_try(b, "scheduler"), NRD_OK);         /* another name */
  assert_int_equal(nrd_pg_run_holding_lock(c, "run", &rec), NRD_NONE); /* nobody holds it */
  assert_int_equal(nrd_pg_leader_try(a, "run"), NRD_OK);
  assert_int_equal(nrd_pg_run_holding_lock(c, "run", &rec), NRD_NONE); /* a's run not recorded */
  assert_int_equal(nrd_pg_run_insert(a, "run-a", "scheduler", true, 2000), NRD_OK);
  assert_int_equal(nrd_pg_run_holding_lock(c, "run", &rec), NRD_OK);
  assert_string_equal(rec.run_id, "run-a");
  assert_string_equal(rec.state, "running");
  assert_string_equal(rec.trigger, "scheduler");
  assert_true(rec.dry_run);
  nrd_run_record_cleanup(&rec);
  assert_int_equal(nrd_pg_run_holding_lock(a, "run", &rec), NRD_NONE); /* its own */
  assert_int_equal(nrd_pg_run_holding_lock(c, "scheduler", &rec), NRD_OK);
  assert_string_equal(rec.run_id, "run-b");
  nrd_run_record_cleanup(&rec);
  assert_int_equal(nrd_pg_run_finish(a, "run-a", "done", "{}", 2500), NRD_OK);
  assert_int_equal(nrd_pg_run_holding_lock(c, "run", &rec), NRD_NONE); /* finished */
  assert_int_equal(nrd_pg_run_insert(a, "run-a-2", "api", false, 4000), NRD_OK);
  assert_int_equal(nrd_pg_leader_release(a, "run"), NRD_OK);
  assert_int_equal(nrd_pg_run_holding_lock(c, "run", &rec), NRD_NONE); /* released */
  nrd_pg_close(a);
  nrd_pg_close(b);
  nrd_pg_close(c);
}

static void test_leader_killed_hands_over(void **state)
{
  struct pg_fixture *f = *state;
  int ready[2];
  assert_int_equal(pipe(ready), 0);
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    close(ready[0]);
    struct nrd_pg *pg = open_as(f->url, "replica-doomed");
    char ok = pg && nrd_pg_leader_try(pg, "scheduler") == NRD_OK ? 'y' : 'n';
    if (write(ready[1], &ok, 1) != 1)
      _exit(1);
    for (;;)
      pause(); /* the leader, until killed */
  }
  close(ready[1]);
  char ok = 'n';
  assert_int_equal(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  assert_int_equal(ok, 'y');

  struct nrd_pg *b = open_as(f->url, "replica-b");
  assert_int_equal(nrd_pg_leader_try(b, "scheduler"), NRD_NONE);
  kill(child, SIGKILL);
  int status;
  assert_int_equal(waitpid(child, &status, 0), child);
  /* The server sees the dead process's connection close and ends its
   * session: the leadership passes to b. */
  assert_int_equal(leader_wait(b, "scheduler"), NRD_OK);
  nrd_pg_close(b);
}

/* A connection the server ends (a restart, a failover): the call that
 * meets it answers NRD_BUSY and the leadership it held is gone; the next
 * call connects again, and the leadership can be taken again. */
static void test_connection_lost_and_back(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_pg *a = open_as(f->url, "replica-lost");
  assert_non_null(a);
  assert_int_equal(nrd_pg_leader_try(a, "scheduler"), NRD_OK);
  assert_int_equal(pgt_exec(f->db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                   " WHERE application_name = 'replica-lost'"),
                   0);
  assert_int_equal(nrd_pg_leader_try(a, "scheduler"), NRD_BUSY);
  /* Connected again: the rows are there, and the leadership is free. */
  assert_int_equal(nrd_pg_ledger_insert(f->pg, "job-1", "t", "i-1", "n", "n-r", 1, 1), NRD_OK);
  struct nrd_ledger_row row;
  assert_int_equal(nrd_pg_ledger_get(a, "job-1", &row), NRD_OK);
  nrd_ledger_row_cleanup(&row);
  struct nrd_pg *b = open_as(f->url, "replica-b");
  assert_int_equal(nrd_pg_leader_try(b, "scheduler"), NRD_OK);
  assert_int_equal(nrd_pg_leader_try(a, "scheduler"), NRD_NONE);
  nrd_pg_close(b);
  assert_int_equal(leader_wait(a, "scheduler"), NRD_OK);
  nrd_pg_close(a);
}

/* The server is away: a connection tries to connect again, and after a
 * failed try waits before the next (100 ms, doubling), calls meanwhile
 * failing at once; once the server is back the next try connects. */
static void test_reconnect_backs_off(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_pg *a = open_as(f->url, "replica-away");
  assert_non_null(a);
  assert_int_equal(system(getenv("NRD_TEST_PG_STOP")), 0);
  /* Tries at 0, then after 100, 200 and 400 ms of waiting: the wait is
   * then 800 ms. */
  unsigned tries = nrd_pg_reconnect_tries(a);
  for (int64_t wait = 0; wait <= 400; wait = wait ? wait * 2 : 100) {
    nrd_sleep_ms(wait + 20);
    assert_int_equal(nrd_pg_ping(a), NRD_BUSY);
    assert_int_equal(nrd_pg_reconnect_tries(a), ++tries);
  }
  /* Within the 800 ms: no try, the same failure at once. */
  int64_t t0 = nrd_mono_ms();
  for (int i = 0; i < 5; i++)
    assert_int_equal(nrd_pg_ping(a), NRD_BUSY);
  if (nrd_mono_ms() - t0 < 800)
    assert_int_equal(nrd_pg_reconnect_tries(a), tries);
  assert_non_null(strstr(nrd_pg_last_error(a), "connect"));

  assert_int_equal(system(getenv("NRD_TEST_PG_START")), 0);
  int rc = NRD_BUSY;
  for (int i = 0; i < 100 && rc != NRD_OK; i++) {
    rc = nrd_pg_ping(a);
    if (rc != NRD_OK)
      nrd_sleep_ms(100);
  }
  assert_int_equal(rc, NRD_OK);
  /* Connected: a lost session later tries again at once. */
  assert_int_equal(pgt_exec(f->db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                   " WHERE application_name = 'replica-away'"),
                   0);
  tries = nrd_pg_reconnect_tries(a);
  if (nrd_pg_ping(a) != NRD_OK) /* the call that meets the dead session */
    assert_int_equal(nrd_pg_ping(a), NRD_OK);
  assert_int_equal(nrd_pg_reconnect_tries(a), tries + 1);
  nrd_pg_close(a);
}

/* The server restarts mid-run: each connection's next call answers
 * NRD_BUSY, the one after connects again; the rows, their leases and the
 * outbox are as they were, so nothing is claimed twice or lost. */
static void test_server_restart(void **state)
{
  struct pg_fixture *f = *state;
  struct nrd_pg *a = open_as(f->url, "replica-a");
  struct nrd_pg *b = open_as(f->url, "replica-b");
  assert_non_null(a);
  assert_non_null(b);
  assert_int_equal(nrd_pg_ledger_insert(a, "job-1", "t", "i-1", "n", "n-r", 1, 1), NRD_OK);
  assert_int_equal(nrd_pg_ledger_insert(a, "job-2", "t", "i-2", "n", "n-r", 1, 2), NRD_OK);
  assert_int_equal(nrd_pg_ledger_claim(a, "job-1", "replica-a", "run", 3, LEASE_MS, NULL), NRD_OK);
  add_event(a, "evt_1");
  assert_int_equal(nrd_pg_leader_try(a, "scheduler"), NRD_OK);

  assert_int_equal(system(getenv("NRD_TEST_PG_RESTART")), 0);

  int rc = nrd_pg_ledger_claim(b, "job-1", "replica-b", "run", 4, LEASE_MS, NULL);
  assert_true(rc == NRD_BUSY || rc == NRD_NONE);
  assert_int_equal(nrd_pg_ledger_claim(b, "job-1", "replica-b", "run", 4, LEASE_MS, NULL),
                   NRD_NONE); /* a's lease outlived the restart */
  struct nrd_ledger_row row;
  assert_int_equal(nrd_pg_ledger_claim_next(b, "replica-b", "run", 5, LEASE_MS, &row), NRD_OK);
  assert_string_equal(row.job_id, "job-2");
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_pg_leader_try(b, "scheduler"), NRD_OK); /* a's session ended */

  rc = nrd_pg_ledger_claim(a, "job-1", "replica-a", "run", 6, LEASE_MS, NULL);
  assert_true(rc == NRD_BUSY || rc == NRD_OK);
  assert_int_equal(nrd_pg_ledger_claim(a, "job-1", "replica-a", "run", 6, LEASE_MS, &row), NRD_OK);
  assert_true(row.attempts >= 2);
  nrd_ledger_row_cleanup(&row);
  assert_int_equal(nrd_pg_leader_try(a, "scheduler"), NRD_NONE);
  struct nrd_event ev;
  assert_int_equal(nrd_pg_event_next(a, &ev), NRD_OK);
  assert_string_equal(ev.id, "evt_1");
  nrd_event_cleanup(&ev);
  nrd_pg_close(a);
  nrd_pg_close(b);
}

/* ---- migrations ---- */

struct starter {
  const char *url;
  char name[16];
  pthread_barrier_t *barrier;
  unsigned applied;
  int rc;
  char err[256];
};

static void *start_replica(void *arg)
{
  struct starter *s = arg;
  struct nrd_pg *pg = NULL;
  pthread_barrier_wait(s->barrier);
  s->rc = nrd_pg_open_as(s->url, s->name, &pg, &s->applied, s->err, sizeof s->err);
  nrd_pg_close(pg);
  return NULL;
}

static void test_migrations_once_when_starting_together(void **state)
{
  (void)state;
  char url[512], db[32];
  assert_int_equal(pgt_fresh_db(url, sizeof url, db), 0);
  pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, REPLICAS);
  struct starter s[REPLICAS];
  pthread_t t[REPLICAS];
  for (int k = 0; k < REPLICAS; k++) {
    s[k] = (struct starter){ .url = url, .barrier = &barrier };
    snprintf(s[k].name, sizeof s[k].name, "replica-%d", k);
    assert_int_equal(pthread_create(&t[k], NULL, start_replica, &s[k]), 0);
  }
  unsigned total = 0;
  for (int k = 0; k < REPLICAS; k++) {
    pthread_join(t[k], NULL);
    if (s[k].rc != NRD_OK)
      fprintf(stderr, "%s: %s\n", s[k].name, s[k].err);
    assert_int_equal(s[k].rc, NRD_OK);
    total += s[k].applied;
  }
  pthread_barrier_destroy(&barrier);
  assert_true(total > 0);

  /* Each applied once, by one of them; a later start applies nothing. */
  struct nrd_pg *pg = NULL;
  char err[256];
  unsigned applied = 99;
  assert_int_equal(nrd_pg_open_as(url, "late", &pg, &applied, err, sizeof err), NRD_OK);
  assert_int_equal(applied, 0);
  int version = 0;
  assert_int_equal(nrd_pg_schema_version(pg, &version), NRD_OK);
  assert_true(version >= 1);
  nrd_pg_close(pg);
  char sql[128];
  snprintf(sql, sizeof sql,
           "DO $$ BEGIN IF (SELECT count(*) FROM schema_migrations) <> %u"
           " THEN RAISE 'not once'; END IF; END $$",
           total);
  assert_int_equal(pgt_exec(db, sql), 0);
}

static void test_newer_schema_refused(void **state)
{
  struct pg_fixture *f = *state;
  assert_int_equal(pgt_exec(f->db, "INSERT INTO schema_migrations VALUES (9999, '9999_future', 0)"),
                   0);
  struct nrd_pg *pg = NULL;
  char err[256] = "";
  assert_int_equal(nrd_pg_open_as(f->url, "old-binary", &pg, NULL, err, sizeof err), NRD_ERR);
  assert_null(pg);
  assert_non_null(strstr(err, "database schema version 9999 is newer than this binary"));
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, pg_fixture_setup, pg_fixture_teardown)

int main(void)
{
  pgt_require_server();
  const struct CMUnitTest tests[] = {
    TEST(test_same_row_one_winner),
    TEST(test_claim_next_exactly_once),
    TEST(test_outbox_one_sender),
    TEST(test_outbox_senders_deliver_once),
    TEST(test_leader_one_at_a_time),
    TEST(test_run_holding_lock),
    TEST(test_leader_killed_hands_over),
    TEST(test_connection_lost_and_back),
    TEST(test_server_restart),
    TEST(test_reconnect_backs_off),
    cmocka_unit_test(test_migrations_once_when_starting_together),
    TEST(test_newer_schema_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
