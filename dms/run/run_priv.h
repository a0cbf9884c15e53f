/* run/run_priv.h - what the runner's files share: the runner object, its per-droid records, and the steps one
 * file calls in another. Private to run/: nothing outside it includes this header.
 *
 *   runner.c      the reconcile workers: the queue of kicked droids, one pass per droid, delete, image GC
 *   start.c       starting a new run of a droid (prepare, start, gate, swap, take over), its mutations
 *   execreq.c     the request of that start (pure)
 *   health.c      the health gate the new run must pass before requests go to it
 *   swap.c        moving the route and draining the old run; putting a droid to sleep
 *   supervisor.c  the thread that polls the waiters of live runs and turns an exit into a crash or a stop
 *   adopt.c       startup: recover, re-adopt what runs, stop what nobody owns
 *
 * Lock order: a runner thread never holds r->lock while it calls into core (core_mutate runs hooks that take
 * r->lock) or into the executor (calls that may block on the engine). Every function below is called without
 * r->lock unless it says otherwise. */
#ifndef DMSD_RUN_PRIV_H
#define DMSD_RUN_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <dms/backend.h>

#include "../common.h"
#include "../compose/release.h"
#include "execreq.h"
#include "runner.h"

#define RUN_WORKERS           2
#define RUN_KEEP_LOGS         5 /* finished runs of a droid whose logs are kept (older ones are forgotten) */
#define REASON_MAX            512
#define DELETE_IMAGE_ATTEMPTS 20
#define GC_ID                 "!images" /* the queue entry of the image collector (no droid id starts with '!') */
#define GC_BACKOFF_BASE_MS    5000
#define GC_BACKOFF_MAX_MS     (10 * 60 * 1000)
#define DELETE_IMAGE_RETRY_MS 250
/* Zero-downtime replacement (with a router; the health gate's own times are in health.h): after the route
 * moved, requests still in flight to the old one get RUN_DRAIN_MAX_MS. After a route change, before counting
 * requests in flight, Caddy's previous servers get RUN_SWAP_SETTLE_MS to hand out what they accepted. An
 * intended stop is remembered RUN_INTENT_TTL_MS without its exit being seen; a drain looks at whether dmsd is
 * stopping every RUN_DRAIN_SLICE_MS. */
#define RUN_DRAIN_MAX_MS   30000
#define RUN_SWAP_SETTLE_MS 50
#define RUN_INTENT_TTL_MS  60000
#define RUN_DRAIN_SLICE_MS 500

typedef struct settle {
    runner_settled_fn fn;
    void *ud;
    struct settle *next;
} settle;

/* What the runner knows of one droid, in memory only (the truth is in the store). */
typedef struct rt {
    char id[DROID_ID_SIZE];
    bool queued;
    bool busy;
    bool dirty;
    int64_t timer_ns;          /* kick at this wall-clock time (retry backoff); 0 none */
    bool force;                /* the next replacement kills the old container first (restart?force=1) */
    int64_t dep_wait_since_ms; /* a compose droid's start waits for a dependency since (monotonic); 0 none */
    settle *settles;
    struct rt *next;
} rt;

typedef struct watch {
    char exec_id[DMS_ID_MAX + 1];
    char droid_id[DROID_ID_SIZE];
    int64_t started_ns;
    dms_waiter *w;
    struct watch *next;
} watch;

typedef struct qitem {
    rt *t;
    struct qitem *next;
} qitem;

/* A run the runner stops on purpose (replaced, put to sleep): its exit is not a crash. */
typedef struct intent {
    char exec_id[DMS_ID_MAX + 1];
    int64_t at_ms;
    struct intent *next;
} intent;

struct runner {
    runner_deps dep; /* what it uses (runner.h) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    rt *rts;
    qitem *head, *tail;
    watch *watches;
    intent *intents;
    int wake_fd;
    pthread_t workers[RUN_WORKERS];
    int n_workers;
    pthread_t supervisor;
    bool supervisor_started;
};

/* ---- runner.c ---- */

/* Under r->lock: queues the droid's record (or marks it dirty while a worker holds it). */
void run_enqueue(runner *r, rt *t);
/* Kicks the droid at due_ns (wall clock), or earlier if a timer is already due before. */
void run_set_timer(runner *r, const char *droid_id, int64_t due_ns);
/* True once runner_stop() began. */
bool run_stopping(runner *r);
/* Forgets finished runs beyond the newest RUN_KEEP_LOGS, or all of them. */
void run_forget_old(runner *r, const droid *d, bool all);
/* Inside a mutation: the droid's current run is exec_id no more (it was stopped). */
void run_forget_current(droid *d, const char *exec_id);

/* A start that waits for a dependency (waiting) or does not (any more): how long it has waited, in ms. */
int64_t run_dep_wait(runner *r, const char *droid_id, bool waiting);

/* ---- start.c ---- */

/* Starts a run of the droid's wanted release and config, and makes it the current run once it serves (then
 * the old one is drained and stopped). forced: the old container was killed first (no health gate). 0, or the
 * failure, already recorded on the droid. */
int run_start_new(runner *r, const droid *d0, bool forced);

/* ---- swap.c ---- */

/* Waits until Caddy has no request in flight to addr (at most RUN_DRAIN_MAX_MS, less if dmsd stops); returns
 * the ms waited, or -1 if requests were still in flight when it gave up. */
int64_t run_drain(runner *r, const char *droid_id, const char *addr);
/* The address the router dials for the droid's current run ("" when it has none). */
void run_dial_addr(const droid *d, char *buf, size_t size);
/* Snoozed (want_running, asleep): route to the wake handler, drain, stop the container. */
void run_put_to_sleep(runner *r, const droid *d);

/* ---- supervisor.c ---- */

/* Watches a run that became the droid's current one; a run the executor does not know is lost at once. */
void run_watch_add(runner *r, const char *exec_id, const char *droid_id, int64_t started_ns);
/* Stops a run on purpose (its exit is not a crash). grace_ms: the container's own grace (< 0), or 0 to kill
 * it at once (restart?force=1). */
void run_stop_grace(runner *r, const char *droid_id, const char *exec_id, int64_t grace_ms);
void run_stop(runner *r, const char *droid_id, const char *exec_id);
void run_wake_supervisor(runner *r);
/* The supervisor thread (arg: the runner). */
void *run_supervisor_main(void *arg);

/* ---- services.c: a compose droid's services besides the routed one ---- */

#define RUN_DEP_TIMEOUT_MS 120000 /* a dependency that meets no condition in this time fails the start */
#define RUN_DEP_SLICE_MS   2000   /* how long one pass waits for it before the worker moves on */
#define RUN_DEP_RETRY_MS   500    /* and when the droid is looked at again */
#define RUN_DEP_POLL_MS    200

typedef enum svc_phase {
    SVC_BEFORE, /* the services that start before the routed one (it may depend on them) */
    SVC_AFTER,  /* those after it */
    SVC_ALL,
} svc_phase;

/* d->services_json parsed (a new reference; an empty array for none). */
json_t *run_services_entries(const droid *d);
/* Whether exec_id is the current execution of one of d's services. */
bool run_services_owns(const droid *d, const char *exec_id);
/* Release `release` of d, its file parsed with the droid's env of now. Clear cr after, also on failure. */
int run_services_load(runner *r, const droid *d, int64_t release, compose_release *cr, dms_error *err);
/* The routed service's request. */
int run_services_routed_request(runner *r, const droid *d, const compose_release *cr, int64_t release,
                                const char *exec_id, execreq *xr, dms_error *err);
/* Brings the services of phase to what release cr wants (see services.c). 0; -1 with why (a service failed);
 * 1 with why (a service waits for a dependency: come back in RUN_DEP_RETRY_MS). */
int run_services_converge(runner *r, const char *droid_id, const compose_release *cr, int64_t release,
                          svc_phase phase, char *why, size_t size);
/* Records which service is routed (its entry shows the droid's state) and the hash of its request. */
void run_services_mark_routed(runner *r, const char *droid_id, const compose_release *cr, const char *hash);
/* Whether the routed service's request for release `release` is the one its current run was started with
 * (and that run runs): then a new release leaves it alone. hash: the new request's. */
bool run_services_routed_unchanged(runner *r, const droid *d, const compose_release *cr, int64_t release,
                                   char hash[17]);
/* Stops every service (entries stay, with state and no execution). */
void run_services_stop(runner *r, const droid *d, const char *state);
/* Stops and forgets the services release cr no longer has. */
void run_services_prune(runner *r, const char *droid_id, const compose_release *cr);
/* At startup: watches the running services' executions. */
void run_services_watch(runner *r, const droid *d);
/* Inside mut_exited: 1 when exec_id was one of d's services (its entry updated: exited, restarting with
 * *retry_at_ns set, or failed after a crash loop), 0 when it is none of them. */
int run_services_exited(core_tx *tx, droid *d, const char *exec_id, const dms_exec_result *res, bool intended,
                        int64_t *retry_at_ns, dms_error *err);

/* ---- adopt.c ---- */

/* At startup, before the workers: recover the executor's executions, watch every droid's current run, stop
 * runs nobody owns, then kick every droid and the image collector. */
void run_adopt(runner *r);

#endif
