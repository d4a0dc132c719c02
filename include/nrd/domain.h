#ifndef NRD_DOMAIN_H
#define NRD_DOMAIN_H

/* The service's plain data, shared by store/, core/ and http/: a ledger
 * row and its states, a run's record and summary, an outbox event, the
 * finished rows per hour, and the result codes of the calls that return
 * them. Names, parsing and freeing only (implemented in src/store/); how
 * they are read and written is store.h's, how they are shown is http/'s. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Results are tri-state: NRD_OK (done / a row), NRD_NONE (no such row, or the
 * conditional write did not apply), NRD_BUSY (locked past the retries: try
 * later), NRD_ERR (our bug or a broken database: logged). */
enum nrd_store_rc { NRD_ERR = -1, NRD_OK = 0, NRD_NONE = 1, NRD_BUSY = 2 };

/* ---- the recovery ledger's rows ---- */

enum nrd_row_state {
  NRD_ROW_PENDING = 0,  /* found; nothing sent */
  NRD_ROW_DELETING,     /* delete is about to be / was sent; outcome unknown */
  NRD_ROW_DELETED,      /* delete confirmed (or not-found after our delete) */
  NRD_ROW_CREATING,     /* create is about to be / was sent; outcome unknown */
  NRD_ROW_CREATED,      /* replacement exists: new_instance_id set (done) */
  NRD_ROW_FAILED,       /* final failure, reason in last_error (done until retried) */
  NRD_ROW_ABANDONED,    /* nothing to do, reason in last_error (done) */
  NRD_ROW_RUNNING,      /* the replacement was seen running (done) */
  NRD_ROW_START_FAILED, /* the replacement did not start: statusError, reason in
                           last_error; the operator's (retry makes a new one) */
  NRD_ROW_STATE_COUNT
};
const char *nrd_row_state_name(enum nrd_row_state s); /* "pending", ... */
bool nrd_row_state_parse(const char *s, enum nrd_row_state *out);
bool nrd_row_state_is_open(enum nrd_row_state s); /* pending..creating */

struct nrd_ledger_row {
  char *job_id, *job_type, *instance_id, *instance_name;
  enum nrd_row_state state;
  char *new_name;  /* fixed when the row is first written */
  int64_t name_ms; /* the <ms> of new_name */
  char *new_instance_id;
  bool delete_sent; /* we sent a delete for this row (ever) */
  bool create_sent; /* we sent a create (ever): look up by name before another */
  bool adopted;     /* the replacement was found by name, not created by us */
  int attempts;     /* recovery attempts (claims that ran) */
  char *last_error;
  char *owner; /* lease holder, NULL when free */
  int64_t lease_until_ms;
  char *run_id; /* the last run that touched it */
  int64_t created_ms, updated_ms;
  int64_t accepted_ms;      /* when the create was accepted (0: not, or before 0004) */
  int64_t running_ms;       /* when the replacement was seen running (0: not) */
  char *status_error_state; /* Novita's statusError of a start_failed replacement */
  char *status_error_message;
};
void nrd_ledger_row_cleanup(struct nrd_ledger_row *row);
void nrd_ledger_rows_free(struct nrd_ledger_row *rows, size_t n);

/* ---- runs ---- */

struct nrd_run_record {
  char *run_id, *trigger, *state; /* state: running | done | failed */
  bool dry_run;
  int64_t started_ms, finished_ms; /* finished 0 while running */
  char *report_json;               /* NULL while running */
};
void nrd_run_record_cleanup(struct nrd_run_record *r);

/* A run without its outcomes. The counts come from the stored report; -1
 * when it has none (still running, or a run that died). */
struct nrd_run_summary {
  char *run_id, *trigger, *state;
  bool dry_run;
  int64_t started_ms, finished_ms; /* finished 0 while running */
  int64_t total_checked, failed_found, recreated, errors, deferred;
};
void nrd_run_summaries_free(struct nrd_run_summary *runs, size_t n);

/* ---- outbox (webhook events) ---- */

struct nrd_event {
  char *id;        /* evt_... */
  char *type;      /* instance.recreated | instance.recovery_failed | instance.running |
                      instance.start_failed | recovery.blocked | run.completed */
  char *body_json; /* the whole event as sent */
  int64_t created_ms;
  char *state; /* pending | delivered | dead */
  int attempts;
  int64_t next_attempt_ms;
  char *last_error;
  int64_t seq; /* insertion order */
};
void nrd_event_cleanup(struct nrd_event *e);
void nrd_events_free(struct nrd_event *e, size_t n);

/* ---- finished rows per hour (the console's statistics): state is the
 * stored name (a state this binary does not know is passed on as it is);
 * ttr_* are updated_ms - created_ms over the group. ---- */

struct nrd_hourly_bucket {
  int64_t hour_ms;
  char *state;
  bool adopted;
  int64_t count, ttr_sum_ms, ttr_max_ms;
};
void nrd_hourly_buckets_free(struct nrd_hourly_bucket *b, size_t n);

#endif
