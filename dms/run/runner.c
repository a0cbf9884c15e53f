/* runner.c - reconciliation workers and the supervisor (see runner.h).
 *
 * Lock order: a runner thread never holds r->lock while it calls into core (core_mutate runs hooks that take
 * r->lock) or into the executor (calls that may block on the engine). */
#include "runner.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "../confine/confine.h"
#include "../confine/network.h"
#include "../jobs/job.h"
#include "../router/probe.h"
#include "../router/router.h"
#include "../snooze/snooze.h"
#include "execreq.h"

#define RUN_WORKERS           2
#define RUN_KEEP_LOGS         5 /* finished runs of a droid whose logs are kept (older ones are forgotten) */
#define REASON_MAX            512
#define DELETE_IMAGE_ATTEMPTS 20
#define GC_ID                 "!images" /* the queue entry of the image collector (no droid id starts with '!') */
#define GC_BACKOFF_BASE_MS    5000
#define GC_BACKOFF_MAX_MS     (10 * 60 * 1000)
#define DELETE_IMAGE_RETRY_MS 250
/* Zero-downtime replacement (with a router): the new container must answer an HTTP request on its port within
 * RUN_HEALTH_TIMEOUT_MS before the route moves to it, when the old one answers one (a droid that never served
 * HTTP is replaced as before); then requests still in flight to the old one get RUN_DRAIN_MAX_MS. One probe
 * waits at most RUN_HEALTH_PROBE_MS (also how long the old container gets to show that it serves HTTP); while
 * waiting, whether the new container died is asked every RUN_EXIT_CHECK_MS. After a route change, before
 * counting requests in flight, Caddy's previous servers get RUN_SWAP_SETTLE_MS to hand out what they
 * accepted. A woken container's port gets RUN_WAKE_PORT_MS. An intended stop is remembered RUN_INTENT_TTL_MS
 * without its exit being seen; a drain looks at whether dmsd is stopping every RUN_DRAIN_SLICE_MS. */
#define RUN_HEALTH_TIMEOUT_MS 30000
#define RUN_HEALTH_POLL_MS    20
#define RUN_HEALTH_PROBE_MS   1000
#define RUN_EXIT_CHECK_MS     500
#define RUN_DRAIN_MAX_MS      30000
#define RUN_SWAP_SETTLE_MS    50
#define RUN_WAKE_PORT_MS      20000
#define RUN_INTENT_TTL_MS     60000
#define RUN_DRAIN_SLICE_MS    500

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
    int64_t timer_ns; /* kick at this wall-clock time (retry backoff); 0 none */
    bool force;       /* the next replacement kills the old container first (restart?force=1) */
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
    app *a;
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

int64_t runner_backoff_ms(int failures)
{
    int64_t ms = RUN_BACKOFF_BASE_MS;
    for (int i = 1; i < failures && ms < RUN_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < RUN_BACKOFF_MAX_MS ? ms : RUN_BACKOFF_MAX_MS;
}

static void wake_supervisor(runner *r)
{
    uint64_t one = 1;
    ssize_t n = write(r->wake_fd, &one, sizeof(one));
    (void)n;
}

/* Under r->lock. */
static rt *rt_get(runner *r, const char *id)
{
    for (rt *t = r->rts; t; t = t->next)
        if (strcmp(t->id, id) == 0)
            return t;
    rt *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->id, sizeof(t->id), "%s", id);
    t->next = r->rts;
    r->rts = t;
    return t;
}

/* Under r->lock. */
static void enqueue(runner *r, rt *t)
{
    if (t->busy) {
        t->dirty = true;
        return;
    }
    if (t->queued)
        return;
    qitem *q = calloc(1, sizeof(*q));
    if (!q)
        return;
    q->t = t;
    t->queued = true;
    if (r->tail)
        r->tail->next = q;
    else
        r->head = q;
    r->tail = q;
    pthread_cond_signal(&r->cond);
}

void runner_kick(runner *r, const char *droid_id)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    rt *t = rt_get(r, droid_id);
    if (t)
        enqueue(r, t);
    pthread_mutex_unlock(&r->lock);
}

void runner_force_restart(runner *r, const char *droid_id)
{
    pthread_mutex_lock(&r->lock);
    rt *t = rt_get(r, droid_id);
    if (t)
        t->force = true;
    pthread_mutex_unlock(&r->lock);
}

void runner_when_settled(runner *r, const char *droid_id, runner_settled_fn fn, void *ud)
{
    pthread_mutex_lock(&r->lock);
    settle *s = r->stop ? NULL : calloc(1, sizeof(*s));
    rt *t = s ? rt_get(r, droid_id) : NULL;
    if (t) {
        s->fn = fn;
        s->ud = ud;
        s->next = t->settles;
        t->settles = s;
        enqueue(r, t);
    }
    pthread_mutex_unlock(&r->lock);
    if (!t) {
        free(s);
        droid *d = core_get_copy(r->a->core, droid_id);
        fn(ud, d && !d->deleting ? d : NULL);
        droid_free(d);
    }
}

static void set_timer(runner *r, const char *droid_id, int64_t due_ns)
{
    pthread_mutex_lock(&r->lock);
    rt *t = rt_get(r, droid_id);
    if (t && (t->timer_ns == 0 || due_ns < t->timer_ns))
        t->timer_ns = due_ns;
    pthread_mutex_unlock(&r->lock);
    wake_supervisor(r);
}

/* ---- watches: the supervisor polls one waiter fd per live run ---- */

static void handle_exit(runner *r, struct watch *wa, const dms_exec_result *res);

static void watch_add(runner *r, const char *exec_id, const char *droid_id, int64_t started_ns)
{
    dms_waiter *w = NULL;
    dms_error err = {0};
    if (dms_executor_waiter(r->a->ex, exec_id, &w, &err) < 0) {
        /* The executor does not know the run (its state is gone): for the droid it is lost, like a crash. */
        log_warn("droid=%s exec=%s op=watch error=\"%s\"", droid_id, exec_id, err.message);
        watch gone = {.started_ns = started_ns};
        snprintf(gone.exec_id, sizeof(gone.exec_id), "%s", exec_id);
        snprintf(gone.droid_id, sizeof(gone.droid_id), "%s", droid_id);
        dms_exec_result res = {.outcome = DMS_OUTCOME_LOST, .exit_code = -1};
        snprintf(res.error, sizeof(res.error), "%s", err.message);
        handle_exit(r, &gone, &res);
        return;
    }
    watch *wa = calloc(1, sizeof(*wa));
    if (!wa) {
        dms_waiter_free(w);
        return;
    }
    snprintf(wa->exec_id, sizeof(wa->exec_id), "%s", exec_id);
    snprintf(wa->droid_id, sizeof(wa->droid_id), "%s", droid_id);
    wa->started_ns = started_ns;
    wa->w = w;
    pthread_mutex_lock(&r->lock);
    wa->next = r->watches;
    r->watches = wa;
    pthread_mutex_unlock(&r->lock);
    wake_supervisor(r);
}

/* ---- describing how a run ended ---- */

static void describe(const dms_exec_result *res, char *buf, size_t size)
{
    switch (res->outcome) {
    case DMS_OUTCOME_EXITED:
        snprintf(buf, size, "exited with code %d", res->exit_code);
        break;
    case DMS_OUTCOME_SIGNALED:
        snprintf(buf, size, "killed by signal %d (%s)", res->signal, strsignal(res->signal));
        break;
    case DMS_OUTCOME_OOM_KILLED:
        snprintf(buf, size, "killed for running out of memory (OOM)");
        break;
    case DMS_OUTCOME_LOST:
        snprintf(buf, size, "lost: %s", res->error[0] ? res->error : "its container vanished");
        break;
    default:
        snprintf(buf, size, "%s%s%s", dms_outcome_name(res->outcome), res->error[0] ? ": " : "", res->error);
        break;
    }
}

/* ---- mutators ---- */

typedef struct exit_args {
    runner *r;
    const char *exec_id;
    const dms_exec_result *res;
    int64_t started_ns;
    bool intended;       /* the runner stopped it on purpose */
    int64_t retry_at_ns; /* out */
} exit_args;

/* The supervisor learned that a run ended. If it was the droid's current run and the droid is wanted running,
 * it crashed: restart with backoff, or give up after RUN_MAX_CRASH_RESTARTS. */
static int mut_exited(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    exit_args *ea = ud;
    if (!d->run_id || strcmp(d->run_id, ea->exec_id) != 0)
        return 0; /* an old run we replaced or stopped */
    char what[REASON_MAX], why[REASON_MAX + 128];
    describe(ea->res, what, sizeof(what));
    free(d->run_id);
    d->run_id = NULL;
    free(d->run_addr);
    d->run_addr = NULL;
    d->host_port = 0;
    core_tx_kick_runner(tx);
    if (d->deleting)
        return 0;
    if (!d->want_running) {
        if (ea->res->outcome == DMS_OUTCOME_CANCELLED)
            snprintf(why, sizeof(why), "stopped on request");
        else
            snprintf(why, sizeof(why), "container %s (a stop was requested)", what);
        return core_tx_set_state(tx, d, DROID_STOPPED, why, err);
    }
    if (d->asleep) {
        if (d->state == DROID_SNOOZED)
            return 0;
        return core_tx_set_state(tx, d, DROID_SNOOZED, "asleep: its container is stopped", err);
    }
    if (ea->intended)
        return 0; /* stopped on purpose, then woken: the runner starts it again */
    if (ea->res->outcome == DMS_OUTCOME_FAILED || ea->res->outcome == DMS_OUTCOME_ENGINE_ERROR) {
        /* It never ran (under the init, a program that cannot be executed ends this way; or the engine failed
         * to start it): a start failure, not a crash, with the start's own attempts and wording. */
        d->start_failures++;
        if (d->start_failures >= RUN_MAX_START_ATTEMPTS) {
            snprintf(why, sizeof(why), "container would not start after %d attempt%s: %s", d->start_failures,
                     d->start_failures == 1 ? "" : "s", ea->res->error);
            d->start_failures = 0;
            d->retry_at_ns = 0;
            return core_tx_set_state(tx, d, DROID_FAILED, why, err);
        }
        int64_t delay = runner_backoff_ms(d->start_failures);
        d->retry_at_ns = dmsd_now_ns() + delay * NS_PER_MS;
        ea->retry_at_ns = d->retry_at_ns;
        snprintf(why, sizeof(why), "start attempt %d/%d failed: %s; retrying in %llds", d->start_failures,
                 RUN_MAX_START_ATTEMPTS, ea->res->error, (long long)(delay / 1000));
        return core_tx_set_state(tx, d, DROID_STARTING, why, err);
    }
    d->start_failures = 0; /* it ran: starting works */
    int64_t now = dmsd_now_ns();
    /* How long it lived, from the result's own times when it has them: a run that died while dmsd was down
     * must not look long-lived because it was noticed late. */
    int64_t started = ea->res->started_at_ns ? ea->res->started_at_ns : ea->started_ns;
    int64_t ended = ea->res->finished_at_ns ? ea->res->finished_at_ns : now;
    if (started && ended - started >= (int64_t)RUN_STABLE_AFTER_MS * NS_PER_MS)
        d->crash_count = 0;
    d->crash_count++;
    if (d->crash_count > RUN_MAX_CRASH_RESTARTS) {
        snprintf(why, sizeof(why), "crash loop: container %s (restarted %d times)", what,
                 RUN_MAX_CRASH_RESTARTS);
        d->retry_at_ns = 0;
        return core_tx_set_state(tx, d, DROID_FAILED, why, err);
    }
    int64_t delay = runner_backoff_ms(d->crash_count);
    d->retry_at_ns = now + delay * NS_PER_MS;
    ea->retry_at_ns = d->retry_at_ns;
    snprintf(why, sizeof(why), "container %s; restart %d/%d in %llds", what, d->crash_count,
             RUN_MAX_CRASH_RESTARTS, (long long)(delay / 1000));
    return core_tx_set_state(tx, d, DROID_STARTING, why, err);
}

typedef struct prep_args {
    int64_t release;
    int64_t config_gen;
    int64_t restart_gen;
    char exec_id[DMS_ID_MAX + 1];
} prep_args;

static int mut_prepare(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    prep_args *pa = ud;
    int r;
    d->run_seq++;
    pa->release = d->want_release;
    pa->config_gen = d->config_gen;
    pa->restart_gen = d->restart_gen;
    d->retry_at_ns = 0;
    snprintf(pa->exec_id, sizeof(pa->exec_id), "%s-r%lld-%lld", d->id, (long long)d->want_release,
             (long long)d->run_seq);
    /* Recorded before the start: a crash right after it still knows this run (reconciliation cancels it). */
    if ((r = store_run_insert(core_tx_store(tx), pa->exec_id, d->id, d->want_release, dmsd_now_ns(), err)) <
        0)
        return r;
    if (d->state != DROID_STARTING) {
        char why[96];
        snprintf(why, sizeof(why), "starting release %lld", (long long)d->want_release);
        return core_tx_set_state(tx, d, DROID_STARTING, why, err);
    }
    return 0;
}

typedef struct started_args {
    const prep_args *pa;
    int host_port;
    const char *addr;             /* where the router dials it, or "" */
    bool unwanted;                /* out: stopped/deleted while it started */
    char old_run[DMS_ID_MAX + 1]; /* out: the run it replaces */
} started_args;

static int mut_started(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    started_args *sa = ud;
    if (d->deleting || !d->want_running) {
        sa->unwanted = true;
        return 0;
    }
    snprintf(sa->old_run, sizeof(sa->old_run), "%s", d->run_id ? d->run_id : "");
    if (dmsd_set_str(&d->run_id, sa->pa->exec_id) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    d->run_release = sa->pa->release;
    d->run_config_gen = sa->pa->config_gen;
    d->run_restart_gen = sa->pa->restart_gen;
    d->host_port = sa->host_port;
    if (dmsd_set_str(&d->run_addr, sa->addr && *sa->addr ? sa->addr : NULL) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    /* start_failures is not reset here: under the init a program that cannot be executed "starts" and then ends
     * FAILED. It is reset once a run has really run (mut_exited). */
    char why[128];
    if (sa->host_port)
        snprintf(why, sizeof(why), "running release %lld on 127.0.0.1:%d", (long long)sa->pa->release,
                 sa->host_port);
    else
        snprintf(why, sizeof(why), "running release %lld", (long long)sa->pa->release);
    core_tx_kick_runner(tx);
    return core_tx_set_state(tx, d, DROID_RUNNING, why, err);
}

typedef struct failed_args {
    const prep_args *pa;
    const char *msg;
    bool permanent;      /* the image is gone: retrying cannot help */
    int64_t retry_at_ns; /* out */
} failed_args;

static int mut_start_failed(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    failed_args *fa = ud;
    char why[REASON_MAX + 160];
    d->start_failures++;
    if (d->deleting || !d->want_running)
        return 0;
    bool give_up = fa->permanent || d->start_failures >= RUN_MAX_START_ATTEMPTS;
    if (give_up && d->run_id) {
        /* The new release will not start, but the old container still serves: keep it, and stop trying. */
        snprintf(why, sizeof(why), "release %lld would not start (%s); still serving release %lld",
                 (long long)fa->pa->release, fa->msg, (long long)d->run_release);
        d->want_release = d->run_release;
        d->config_gen = d->run_config_gen;
        d->restart_gen = d->run_restart_gen;
        d->start_failures = 0;
        return core_tx_set_state(tx, d, DROID_RUNNING, why, err);
    }
    if (give_up) {
        snprintf(why, sizeof(why), "container would not start after %d attempt%s: %s", d->start_failures,
                 d->start_failures == 1 ? "" : "s", fa->msg);
        d->retry_at_ns = 0;
        return core_tx_set_state(tx, d, DROID_FAILED, why, err);
    }
    int64_t delay = runner_backoff_ms(d->start_failures);
    d->retry_at_ns = dmsd_now_ns() + delay * NS_PER_MS;
    fa->retry_at_ns = d->retry_at_ns;
    snprintf(why, sizeof(why), "start attempt %d/%d failed: %s; retrying in %llds", d->start_failures,
             RUN_MAX_START_ATTEMPTS, fa->msg, (long long)(delay / 1000));
    return core_tx_set_state(tx, d, DROID_STARTING, why, err);
}

/* The droid's current run is exec_id no more (it was stopped). */
static void forget_run(droid *d, const char *exec_id)
{
    if (d->run_id && exec_id && strcmp(d->run_id, exec_id) == 0) {
        free(d->run_id);
        d->run_id = NULL;
        free(d->run_addr);
        d->run_addr = NULL;
        d->host_port = 0;
    }
}

static int mut_stopped(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    forget_run(d, ud);
    if (d->deleting || d->want_running || d->state == DROID_STOPPED)
        return 0;
    return core_tx_set_state(tx, d, DROID_STOPPED, "stopped on request", err);
}

/* Its container was stopped to let it sleep (or it had none). */
static int mut_asleep(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    forget_run(d, ud);
    /* No kick: a wake that came meanwhile has kicked already (and marked this droid dirty). */
    if (d->deleting || !d->want_running || !d->asleep || d->state == DROID_SNOOZED ||
        !droid_state_is_active(d->state))
        return 0;
    return core_tx_set_state(tx, d, DROID_SNOOZED, "asleep: its container is stopped", err);
}

static int mut_settle_state(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)ud;
    if (d->state == DROID_STARTING && d->run_id && d->run_release == d->want_release &&
        d->run_config_gen == d->config_gen && d->run_restart_gen == d->restart_gen)
        return core_tx_set_state(tx, d, DROID_RUNNING, "running", err);
    return 0;
}

static int mut_purge(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)d;
    (void)ud;
    (void)err;
    core_tx_purge(tx);
    return 0;
}

/* ---- engine steps (called without locks) ---- */

static void intend(runner *r, const char *exec_id)
{
    int64_t now = dmsd_mono_ms();
    pthread_mutex_lock(&r->lock);
    for (intent **pp = &r->intents; *pp;) {
        intent *i = *pp;
        if (now - i->at_ms > RUN_INTENT_TTL_MS || strcmp(i->exec_id, exec_id) == 0) {
            *pp = i->next;
            free(i);
        } else {
            pp = &i->next;
        }
    }
    intent *i = calloc(1, sizeof(*i));
    if (i) {
        snprintf(i->exec_id, sizeof(i->exec_id), "%s", exec_id);
        i->at_ms = now;
        i->next = r->intents;
        r->intents = i;
    }
    pthread_mutex_unlock(&r->lock);
}

static bool take_intent(runner *r, const char *exec_id)
{
    bool found = false;
    pthread_mutex_lock(&r->lock);
    for (intent **pp = &r->intents; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->exec_id, exec_id) == 0) {
            intent *i = *pp;
            *pp = i->next;
            free(i);
            found = true;
            break;
        }
    pthread_mutex_unlock(&r->lock);
    return found;
}

/* grace_ms: the container's own grace (< 0), or 0 to kill it at once (restart?force=1). */
static void stop_run_grace(runner *r, const char *droid_id, const char *exec_id, int64_t grace_ms)
{
    dms_error err = {0};
    intend(r, exec_id);
    int rc = dms_executor_cancel_grace(r->a->ex, exec_id, grace_ms, &err);
    if (rc < 0 && rc != -DMS_E_ALREADY_COMPLETE && rc != -DMS_E_NOT_FOUND)
        log_warn("droid=%s exec=%s op=stop error=\"%s\"", droid_id, exec_id, err.message);
    else
        log_info("droid=%s exec=%s op=stop", droid_id, exec_id);
}

static void stop_run(runner *r, const char *droid_id, const char *exec_id)
{
    stop_run_grace(r, droid_id, exec_id, -1);
}

/* Forgets finished runs beyond the newest RUN_KEEP_LOGS (their containers and captured logs). */
static void forget_old_runs(runner *r, const droid *d, bool all)
{
    store_run *runs = NULL;
    size_t n = 0;
    if (store_runs_list(r->a->st, d->id, &runs, &n, NULL) < 0)
        return;
    size_t keep = all ? 0 : RUN_KEEP_LOGS;
    for (size_t i = 0; i + keep < n; i++) {
        if (!all && d->run_id && strcmp(runs[i].exec_id, d->run_id) == 0)
            continue;
        dms_error err = {0};
        int rc = 0;
        for (int attempt = 0; attempt < DELETE_IMAGE_ATTEMPTS; attempt++) {
            rc = dms_executor_remove(r->a->ex, runs[i].exec_id, &err);
            /* "removal already in progress" (409): the executor's own clean-up is racing us; let it finish.
             */
            if (rc == 0 || rc == -DMS_E_NOT_FOUND || !strstr(err.message, "in progress"))
                break;
            usleep(DELETE_IMAGE_RETRY_MS * 1000);
        }
        if (rc == 0 || rc == -DMS_E_NOT_FOUND)
            store_run_mark_removed(r->a->st, runs[i].exec_id, NULL);
        else
            log_warn("droid=%s exec=%s op=forget error=\"%s\"", d->id, runs[i].exec_id, err.message);
    }
    free(runs);
}

static bool stopping(runner *r)
{
    pthread_mutex_lock(&r->lock);
    bool s = r->stop;
    pthread_mutex_unlock(&r->lock);
    return s;
}

/* Waits until Caddy has no request in flight to addr (at most RUN_DRAIN_MAX_MS, less if dmsd stops); returns
 * the ms waited, or -1 if requests were still in flight when it gave up. */
static int64_t drain(runner *r, const char *droid_id, const char *addr)
{
    int64_t t0 = dmsd_mono_ms();
    usleep(RUN_SWAP_SETTLE_MS * 1000);
    for (;;) {
        int64_t left = RUN_DRAIN_MAX_MS - (dmsd_mono_ms() - t0);
        if (router_drain(r->a->router, addr, left < RUN_DRAIN_SLICE_MS ? left : RUN_DRAIN_SLICE_MS) >= 0)
            return dmsd_mono_ms() - t0;
        if (stopping(r) || dmsd_mono_ms() - t0 >= RUN_DRAIN_MAX_MS) {
            log_warn("droid=%s op=drain addr=%s note=\"requests still in flight after %lld ms; stopping it "
                     "anyway\"",
                     droid_id, addr, (long long)(dmsd_mono_ms() - t0));
            return -1;
        }
    }
}

/* Records a run that ended before it became the droid's current one (it never had a watch). */
static void end_unwatched(runner *r, const char *exec_id)
{
    dms_exec_result res = {0};
    dms_error e2;
    if (dms_executor_wait(r->a->ex, exec_id, 0, &res, &e2) == 0)
        store_run_end(r->a->st, exec_id, dmsd_now_ns(), dms_outcome_name(res.outcome), res.exit_code, NULL);
    else
        store_run_end(r->a->st, exec_id, dmsd_now_ns(), "failed", -1, NULL);
    dms_exec_result_clear(&res);
}

/* Waits until the new container answers on addr (an HTTP status line when http, else a TCP connection), at
 * most timeout_ms; gives up early if it dies. 0 when it answers; -1 with why filled otherwise; -2 when dmsd
 * stops meanwhile (the new run is then left to the next start's reconciliation, which stops runs that are not
 * current). */
/* What a new container must do before requests go to it: at least what the one it replaces did. */
typedef enum {
    GATE_NONE,    /* nothing to replace, or the old one did not even accept a connection (not a server) */
    GATE_TCP,     /* accept a connection (the old one did, but gave no HTTP answer in time) */
    GATE_HTTP,    /* give any HTTP answer (the old one answered GET / with a 5xx) */
    GATE_HTTP_OK, /* answer GET / below 500, as the old one did */
} gate_mode;

static int wait_answer(runner *r, const char *exec_id, const char *addr, const char *host, gate_mode mode,
                       int64_t timeout_ms, char *why, size_t size)
{
    int64_t t0 = dmsd_mono_ms(), next_check = t0 + RUN_EXIT_CHECK_MS;
    for (;;) {
        int status = 0;
        int rc = mode == GATE_TCP ? probe_tcp(addr, RUN_HEALTH_PROBE_MS)
                                  : probe_http(addr, host, RUN_HEALTH_PROBE_MS, &status);
        if (rc == 0 && mode == GATE_HTTP_OK && status >= 500)
            rc = -1;
        int64_t now = dmsd_mono_ms();
        if (rc == 0) {
            log_info("exec=%s op=health addr=%s answered_ms=%lld", exec_id, addr, (long long)(now - t0));
            return 0;
        }
        if (now - t0 >= timeout_ms) {
            if (status >= 500)
                snprintf(why, size, "it answered %d on %s for %llds", status, addr,
                         (long long)(timeout_ms / 1000));
            else
                snprintf(why, size, "it did not answer on %s within %llds", addr,
                         (long long)(timeout_ms / 1000));
            return -1;
        }
        if (stopping(r)) {
            snprintf(why, size, "dmsd is stopping");
            return -2;
        }
        if (now >= next_check) {
            dms_exec_status st;
            if (dms_executor_status(r->a->ex, exec_id, &st, NULL) == 0 && st.state == DMS_STATE_FINISHED) {
                snprintf(why, size, "it exited before answering on %s", addr);
                return -1;
            }
            next_check = now + RUN_EXIT_CHECK_MS;
        }
        usleep(RUN_HEALTH_POLL_MS * 1000);
    }
}

static int start_run(runner *r, const droid *d0, bool forced)
{
    app *a = r->a;
    dms_error err = {0};
    prep_args pa = {0};
    store_release rel = {0};
    int rc = store_release_get(a->st, d0->id, d0->want_release, &rel, &err);
    if (rc == 0 && rel.image_removed)
        rc = dms_error_set(&err, DMS_E_IMAGE, "release", "the image of release %lld was removed",
                           (long long)rel.seq);
    if (rc < 0) {
        pa.release = d0->want_release;
        failed_args fa = {.pa = &pa, .msg = err.message, .permanent = true};
        core_mutate(a->core, NULL, d0->id, mut_start_failed, &fa, NULL, NULL);
        store_release_clear(&rel);
        return rc;
    }
    droid *d = NULL;
    if (core_mutate(a->core, NULL, d0->id, mut_prepare, &pa, &d, &err) < 0) {
        log_error("droid=%s op=prepare error=\"%s\"", d0->id, err.message);
        store_release_clear(&rel);
        return -err.code;
    }
    execreq xr;
    execreq_input in = {.d = d,
                        .exec_id = pa.exec_id,
                        .release = pa.release,
                        .image = rel.tag,
                        .confine = &a->cfg.confine,
                        .executor_id = dms_executor_id(a->ex)};
    rc = execreq_build(&xr, &in, &err);
    int64_t t_start = dmsd_mono_ms();
    if (rc == 0)
        rc = dms_executor_start(a->ex, &xr.req, &err);
    int64_t start_ms = dmsd_mono_ms() - t_start;
    execreq_clear(&xr);
    store_release_clear(&rel);
    if (rc < 0) {
        log_warn("droid=%s exec=%s op=start error=\"%s\"", d->id, pa.exec_id, err.message);
        dms_exec_result res = {0};
        dms_error e2;
        if (dms_executor_wait(a->ex, pa.exec_id, 0, &res, &e2) == 0)
            store_run_end(a->st, pa.exec_id, dmsd_now_ns(), dms_outcome_name(res.outcome), res.exit_code,
                          NULL);
        else
            store_run_end(a->st, pa.exec_id, dmsd_now_ns(), "failed", -1, NULL);
        dms_exec_result_clear(&res);
        failed_args fa = {.pa = &pa, .msg = err.message, .permanent = rc == -DMS_E_INVALID};
        core_mutate(a->core, NULL, d->id, mut_start_failed, &fa, NULL, NULL);
        if (fa.retry_at_ns)
            set_timer(r, d->id, fa.retry_at_ns);
        droid_free(d);
        return rc;
    }
    dms_exec_status st;
    int host_port = 0;
    int64_t started_ns = dmsd_now_ns();
    char addr[ROUTE_DIAL_MAX] = "", host[ROUTE_HOST_MAX];
    if (dms_executor_status(a->ex, pa.exec_id, &st, &err) == 0) {
        for (size_t i = 0; i < st.n_ports; i++)
            if (st.ports[i].container_port == d->port)
                host_port = st.ports[i].host_port;
        if (st.started_at_ns)
            started_ns = st.started_at_ns;
        if (st.ip_address[0])
            snprintf(addr, sizeof(addr), "%s:%d", st.ip_address, d->port);
    }
    if (!addr[0] && host_port)
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", host_port);
    snprintf(host, sizeof(host), "%s" CADDY_HOST_SUFFIX, d->name);
    /* The container it replaces (d is the droid as prepare left it). */
    char old_addr[ROUTE_DIAL_MAX] = "";
    if (d->run_id && d->run_addr)
        snprintf(old_addr, sizeof(old_addr), "%s", d->run_addr);
    else if (d->run_id && d->host_port)
        snprintf(old_addr, sizeof(old_addr), "127.0.0.1:%d", d->host_port);
    /* Zero downtime: the new container must do what the old one does (answer HTTP below 500, any HTTP, or at
     * least accept a connection) before any request goes to it; until then (or if it never does) the old one
     * keeps serving. */
    gate_mode gate = GATE_NONE;
    int old_status = 0;
    if (a->router && old_addr[0] && !forced) {
        if (probe_http(old_addr, host, RUN_HEALTH_PROBE_MS, &old_status) == 0)
            gate = old_status < 500 ? GATE_HTTP_OK : GATE_HTTP;
        else if (probe_tcp(old_addr, RUN_HEALTH_PROBE_MS) == 0)
            gate = GATE_TCP;
    }
    bool held = snooze_waiting(a->snooze, d->id);
    char why[256];
    if (gate && !addr[0])
        snprintf(why, sizeof(why), "it has no address: it exited at once");
    int health = gate && addr[0]
                     ? wait_answer(r, pa.exec_id, addr, host, gate, RUN_HEALTH_TIMEOUT_MS, why, sizeof(why))
                     : 0;
    if (health == -2) {
        log_info("droid=%s exec=%s op=start note=\"dmsd stops before the health check ended; the next start "
                 "reconciles\"",
                 d->id, pa.exec_id);
        droid_free(d);
        return -DMS_E_CANCELLED;
    }
    if (gate && (!addr[0] || health < 0)) {
        char msg[512];
        snprintf(msg, sizeof(msg), "the new container failed its health check: %s", why);
        log_warn("droid=%s exec=%s op=start error=\"%s\"", d->id, pa.exec_id, msg);
        stop_run_grace(r, d->id, pa.exec_id, 0);
        end_unwatched(r, pa.exec_id);
        failed_args fa = {.pa = &pa, .msg = msg};
        core_mutate(a->core, NULL, d->id, mut_start_failed, &fa, NULL, NULL);
        if (fa.retry_at_ns)
            set_timer(r, d->id, fa.retry_at_ns);
        droid_free(d);
        return -DMS_E_START_FAILED;
    }
    if (!gate && held && addr[0])
        wait_answer(r, pa.exec_id, addr, host, GATE_TCP, RUN_WAKE_PORT_MS, why, sizeof(why));
    /* Requests held while it woke go straight to it; the route follows. */
    if (held && addr[0])
        snooze_ready(a->snooze, d->id, addr);
    if (a->router && addr[0]) {
        int64_t t0 = dmsd_mono_ms();
        if (router_swap(a->router, d->id, addr, old_addr[0] ? old_addr : NULL, &err) < 0) {
            log_warn("droid=%s exec=%s op=route error=\"%s\"", d->id, pa.exec_id, err.message);
            if (gate && err.code != DMS_E_UNAVAILABLE) {
                /* The route could not move: the old container keeps serving, the new one goes. */
                stop_run_grace(r, d->id, pa.exec_id, 0);
                end_unwatched(r, pa.exec_id);
                failed_args fa = {.pa = &pa, .msg = err.message};
                core_mutate(a->core, NULL, d->id, mut_start_failed, &fa, NULL, NULL);
                if (fa.retry_at_ns)
                    set_timer(r, d->id, fa.retry_at_ns);
                droid_free(d);
                return -DMS_E_ENGINE;
            }
        } else {
            log_info("droid=%s exec=%s op=swap addr=%s old=%s swap_ms=%lld", d->id, pa.exec_id, addr,
                     old_addr[0] ? old_addr : "-", (long long)(dmsd_mono_ms() - t0));
        }
    }
    started_args sa = {.pa = &pa, .host_port = host_port, .addr = addr};
    int mrc = core_mutate(a->core, NULL, d->id, mut_started, &sa, NULL, &err);
    /* Watched only once it is the droid's current run: an exit seen earlier would not be recognised as its
     * end (the waiter of an execution that already ended is ready at once, so nothing is missed). */
    watch_add(r, pa.exec_id, d->id, started_ns);
    if (mrc < 0 || sa.unwanted) {
        /* Deleted or stopped while it started: this run is not wanted. */
        stop_run(r, d->id, pa.exec_id);
    } else if (sa.old_run[0]) {
        /* The new container serves: requests still in flight to the old one finish, then it goes. */
        if (a->router && old_addr[0]) {
            int64_t waited = drain(r, d->id, old_addr);
            log_info("droid=%s exec=%s op=drain addr=%s waited_ms=%lld", d->id, sa.old_run, old_addr,
                     (long long)waited);
        }
        stop_run(r, d->id, sa.old_run);
    }
    if (a->router)
        router_release(a->router, d->id, NULL);
    log_info("droid=%s exec=%s op=start port=%d start_ms=%lld total_ms=%lld", d->id, pa.exec_id, host_port,
             (long long)start_ms, (long long)(dmsd_mono_ms() - t_start));
    forget_old_runs(r, d, false);
    droid_free(d);
    return 0;
}

static void delete_droid(runner *r, droid *d)
{
    app *a = r->a;
    dms_error err = {0};
    bool gc = false;
    store_run *runs = NULL;
    size_t n = 0;
    /* Every run still live (the current one, and any a crash left behind), then every execution's leftovers.
     */
    if (store_runs_list(a->st, d->id, &runs, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++)
            stop_run(r, d->id, runs[i].exec_id);
        free(runs);
    }
    forget_old_runs(r, d, true);
    store_release *rel = NULL;
    if (store_releases_list(a->st, d->id, &rel, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (rel[i].image_removed)
                continue;
            /* The executor removes a finished container off its critical path; until it is gone the engine
             * refuses to remove the image (409 "being used by stopped container"): give it a moment. */
            int rc = 0;
            for (int attempt = 0; attempt < DELETE_IMAGE_ATTEMPTS; attempt++) {
                rc = dms_executor_remove_image(a->ex, rel[i].image_id, &err);
                if (rc == 0 || rc == -DMS_E_NOT_FOUND || !strstr(err.message, "being used"))
                    break;
                usleep(DELETE_IMAGE_RETRY_MS * 1000);
            }
            if (rc < 0 && rc != -DMS_E_NOT_FOUND) {
                log_warn("droid=%s op=delete image=%s error=\"%s\" note=\"retried by the image collector\"",
                         d->id, rel[i].image_id, err.message);
                store_gc_add(a->st, rel[i].image_id, d->id, NULL);
                gc = true;
            }
        }
        store_releases_free(rel, n);
    }
    for (size_t i = 0; !d->keep_volumes && i < d->n_volumes && i < DROID_VOLUMES_MAX; i++) {
        char vol[DROID_ID_SIZE + DROID_VOLUME_NAME_MAX + 2];
        droid_volume_engine_name(d, i, vol, sizeof(vol));
        int rc = dms_executor_remove_volume(a->ex, vol, &err);
        if (rc < 0 && rc != -DMS_E_NOT_FOUND)
            log_warn("droid=%s op=delete volume=%s error=\"%s\"", d->id, vol, err.message);
    }
    char dir[PATH_MAX];
    if (app_droid_dir(a, d->id, dir, sizeof(dir)) == 0)
        dms_rm_rf(dir, NULL);
    if (core_mutate(a->core, NULL, d->id, mut_purge, NULL, NULL, &err) < 0)
        log_error("droid=%s op=purge error=\"%s\"", d->id, err.message);
    else
        log_info("droid=%s op=delete", d->id);
    confine_network_release(a, d->user_id);
    if (gc)
        set_timer(r, GC_ID, dmsd_now_ns() + (int64_t)GC_BACKOFF_BASE_MS * NS_PER_MS);
}

/* Snoozed (want_running, asleep): route to the wake handler first, let requests in flight finish, then stop
 * the container through the executor. */
static void put_to_sleep(runner *r, const droid *d)
{
    app *a = r->a;
    if (!d->run_id) {
        core_mutate(a->core, NULL, d->id, mut_asleep, NULL, NULL, NULL);
        return;
    }
    char old_addr[ROUTE_DIAL_MAX] = "";
    if (d->run_addr)
        snprintf(old_addr, sizeof(old_addr), "%s", d->run_addr);
    else if (d->host_port)
        snprintf(old_addr, sizeof(old_addr), "127.0.0.1:%d", d->host_port);
    if (a->router) {
        dms_error err = {0};
        if (router_sleep(a->router, d->id, old_addr[0] ? old_addr : NULL, &err) < 0)
            log_warn("droid=%s op=route error=\"%s\"", d->id, err.message);
        if (old_addr[0])
            drain(r, d->id, old_addr);
    }
    stop_run(r, d->id, d->run_id);
    core_mutate(a->core, NULL, d->id, mut_asleep, d->run_id, NULL, NULL);
    if (a->router)
        router_release(a->router, d->id, NULL);
    log_info("droid=%s exec=%s op=sleep", d->id, d->run_id);
}

/* The image collector: removals that failed earlier (engine busy or away) are tried again with backoff. */
static void collect_images(runner *r)
{
    char **due = NULL;
    int64_t next = 0;
    dms_error err = {0};
    if (store_gc_due(r->a->st, dmsd_now_ns(), &due, &next, &err) < 0) {
        log_warn("component=runner op=gc error=\"%s\"", err.message);
        return;
    }
    for (size_t i = 0; due[i]; i++) {
        int rc = dms_executor_remove_image(r->a->ex, due[i], &err);
        /* Gone already, or not ours (then it never will be): either way nothing is left to do. CONFLICT ("in use
         * by a container") is retried. */
        bool not_ours = rc == -DMS_E_NOT_OURS;
        if (rc == 0 || rc == -DMS_E_NOT_FOUND || not_ours) {
            store_gc_done(r->a->st, due[i], NULL);
            log_info("component=runner op=gc image=%s result=%s", due[i],
                     rc == 0 ? "removed" : dms_error_code_name(-rc));
        } else {
            store_gc_retry(r->a->st, due[i], GC_BACKOFF_BASE_MS, GC_BACKOFF_MAX_MS, err.message, NULL);
            log_warn("component=runner op=gc image=%s error=\"%s\"", due[i], err.message);
        }
    }
    dms_strv_free(due);
    if (store_gc_due(r->a->st, dmsd_now_ns(), &due, &next, &err) == 0) {
        if (due[0])
            next = dmsd_now_ns() + (int64_t)GC_BACKOFF_BASE_MS * NS_PER_MS;
        dms_strv_free(due);
        if (next)
            set_timer(r, GC_ID, next);
    }
}

void runner_collect_images(runner *r)
{
    runner_kick(r, GC_ID);
}

/* One reconcile pass: one step towards what is wanted; a further step is kicked by the mutations it makes. */
static void reconcile(runner *r, const char *id)
{
    if (strcmp(id, GC_ID) == 0) {
        collect_images(r);
        return;
    }
    droid *d = core_get_copy(r->a->core, id);
    if (!d)
        return;
    if (d->deleting) {
        delete_droid(r, d);
        droid_free(d);
        return;
    }
    if (!d->want_running) {
        if (d->run_id) {
            stop_run(r, d->id, d->run_id);
            core_mutate(r->a->core, NULL, d->id, mut_stopped, d->run_id, NULL, NULL);
        } else if (d->state == DROID_STARTING || d->state == DROID_RUNNING) {
            core_mutate(r->a->core, NULL, d->id, mut_stopped, NULL, NULL, NULL);
        }
        droid_free(d);
        return;
    }
    if (d->asleep) {
        put_to_sleep(r, d);
        droid_free(d);
        return;
    }
    bool current = d->run_id && d->run_release == d->want_release && d->run_config_gen == d->config_gen &&
                   d->run_restart_gen == d->restart_gen;
    if (current) {
        core_mutate(r->a->core, NULL, d->id, mut_settle_state, NULL, NULL, NULL);
        droid_free(d);
        return;
    }
    /* A config change made together with (or during) a rebuild comes with the new release: restarting the old
     * release with it now would only cost the old container's uptime. */
    if (d->run_id && d->run_release == d->want_release && d->run_config_gen != d->config_gen) {
        store_build b = {0};
        int active = store_build_active(r->a->st, d->id, &b, NULL);
        store_build_clear(&b);
        if (active == 1) {
            droid_free(d);
            return;
        }
    }
    /* Waiting for a build, for nothing (failed), or for a retry timer: nothing to start now. */
    if (!d->want_release || d->state == DROID_FAILED || d->state == DROID_PENDING ||
        d->state == DROID_BUILDING || (d->state == DROID_STOPPED && !d->run_id)) {
        droid_free(d);
        return;
    }
    if (d->retry_at_ns > dmsd_now_ns()) {
        set_timer(r, d->id, d->retry_at_ns);
        droid_free(d);
        return;
    }
    /* A forced restart kills the old container first; anything else starts the new one first. */
    pthread_mutex_lock(&r->lock);
    rt *t = rt_get(r, d->id);
    bool force = t && t->force;
    if (t)
        t->force = false;
    pthread_mutex_unlock(&r->lock);
    if (d->run_id && force)
        stop_run_grace(r, d->id, d->run_id, 0); /* kill at once */
    start_run(r, d, force);
    droid_free(d);
}

static void fire_settles(runner *r, rt *t)
{
    settle *s = t->settles;
    t->settles = NULL;
    if (!s)
        return;
    pthread_mutex_unlock(&r->lock);
    droid *d = core_get_copy(r->a->core, t->id);
    const droid *shown = d && !d->deleting ? d : NULL;
    while (s) {
        settle *next = s->next;
        s->fn(s->ud, shown);
        free(s);
        s = next;
    }
    droid_free(d);
    pthread_mutex_lock(&r->lock);
}

static void *worker_main(void *arg)
{
    runner *r = arg;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->stop && !r->head)
            pthread_cond_wait(&r->cond, &r->lock);
        if (r->stop)
            break;
        qitem *q = r->head;
        r->head = q->next;
        if (!r->head)
            r->tail = NULL;
        rt *t = q->t;
        free(q);
        t->queued = false;
        t->busy = true;
        t->dirty = false;
        char id[DROID_ID_SIZE];
        snprintf(id, sizeof(id), "%s", t->id);
        pthread_mutex_unlock(&r->lock);
        reconcile(r, id);
        /* The route follows what the pass left (nothing is sent to Caddy when it is already so). */
        if (r->a->router && strcmp(id, GC_ID) != 0)
            router_sync(r->a->router, id, NULL);
        pthread_mutex_lock(&r->lock);
        t->busy = false;
        if (t->dirty) {
            t->dirty = false;
            enqueue(r, t);
        } else {
            fire_settles(r, t);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ---- the supervisor ---- */

static void handle_exit(runner *r, watch *wa, const dms_exec_result *res)
{
    char what[REASON_MAX];
    describe(res, what, sizeof(what));
    log_info("droid=%s exec=%s op=exit outcome=%s detail=\"%s\"", wa->droid_id, wa->exec_id,
             dms_outcome_name(res->outcome), what);
    store_run_end(r->a->st, wa->exec_id, res->finished_at_ns ? res->finished_at_ns : dmsd_now_ns(),
                  dms_outcome_name(res->outcome), res->exit_code, NULL);
    exit_args ea = {.r = r,
                    .exec_id = wa->exec_id,
                    .res = res,
                    .started_ns = wa->started_ns,
                    .intended = take_intent(r, wa->exec_id)};
    dms_error err = {0};
    if (core_mutate(r->a->core, NULL, wa->droid_id, mut_exited, &ea, NULL, &err) < 0 &&
        err.code != DMS_E_NOT_FOUND)
        log_error("droid=%s exec=%s op=exit error=\"%s\"", wa->droid_id, wa->exec_id, err.message);
    if (ea.retry_at_ns)
        set_timer(r, wa->droid_id, ea.retry_at_ns);
}

static void *supervisor_main(void *arg)
{
    runner *r = arg;
    struct pollfd *pfd = NULL;
    watch **who = NULL;
    size_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        if (r->stop) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        size_t n = 1;
        for (watch *w = r->watches; w; w = w->next)
            n++;
        if (n > cap) {
            struct pollfd *np = realloc(pfd, n * sizeof(*pfd));
            watch **nw = np ? realloc(who, n * sizeof(*who)) : NULL;
            if (np)
                pfd = np;
            if (nw) {
                who = nw;
                cap = n;
            }
        }
        size_t k = 1;
        for (watch *w = r->watches; w && k < cap; w = w->next) {
            who[k] = w;
            pfd[k++] = (struct pollfd){.fd = dms_waiter_fd(w->w), .events = POLLIN};
        }
        int64_t now = dmsd_now_ns(), next = 0;
        for (rt *t = r->rts; t; t = t->next) {
            if (!t->timer_ns)
                continue;
            if (t->timer_ns <= now) {
                t->timer_ns = 0;
                enqueue(r, t);
            } else if (!next || t->timer_ns < next) {
                next = t->timer_ns;
            }
        }
        pthread_mutex_unlock(&r->lock);
        pfd[0] = (struct pollfd){.fd = r->wake_fd, .events = POLLIN};
        int timeout = next ? (int)((next - now) / NS_PER_MS + 1) : -1;
        int rc = poll(pfd, k, timeout);
        if (rc < 0 && errno != EINTR) {
            log_error("component=runner op=poll error=\"%s\"", strerror(errno));
            sleep(1);
            continue;
        }
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            ssize_t rd = read(r->wake_fd, &v, sizeof(v));
            (void)rd;
        }
        for (size_t i = 1; i < k; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            watch *w = who[i];
            dms_exec_result res = {0};
            dms_error err = {0};
            int wr = dms_waiter_result(w->w, 0, &res, &err);
            if (wr == -DMS_E_TIMEOUT)
                continue; /* spurious */
            if (wr < 0) {
                res.outcome = DMS_OUTCOME_LOST;
                res.exit_code = -1;
                snprintf(res.error, sizeof(res.error), "%s", err.message);
            }
            /* Only this thread removes watches, so w is still in the list. */
            pthread_mutex_lock(&r->lock);
            for (watch **pp = &r->watches; *pp; pp = &(*pp)->next)
                if (*pp == w) {
                    *pp = w->next;
                    break;
                }
            pthread_mutex_unlock(&r->lock);
            handle_exit(r, w, &res);
            dms_exec_result_clear(&res);
            dms_waiter_free(w->w);
            free(w);
        }
    }
    free(pfd);
    free(who);
    return NULL;
}

/* ---- startup: re-adopt what runs, cancel what nobody owns ---- */

static void adopt(runner *r)
{
    app *a = r->a;
    dms_error err = {0};
    size_t adopted = 0;
    if (dms_executor_recover(a->ex, &adopted, &err) < 0)
        log_warn("component=runner op=recover error=\"%s\"", err.message);
    else
        log_info("component=runner op=recover adopted=%zu", adopted);
    char **ids = core_ids(a->core);
    for (size_t i = 0; ids && ids[i]; i++) {
        droid *d = core_get_copy(a->core, ids[i]);
        if (d && d->run_id) {
            dms_exec_status st;
            int64_t started = 0;
            if (dms_executor_status(a->ex, d->run_id, &st, &err) == 0)
                started = st.started_at_ns;
            /* A run that ended while dmsd was down shows up at once as a result: handled like any exit. */
            watch_add(r, d->run_id, d->id, started);
        }
        droid_free(d);
    }
    /* Runs recorded but not current (a crash between start and record, or a replaced run still up): stop
     * them. */
    store_run *runs = NULL;
    size_t n = 0;
    if (store_runs_all(a->st, &runs, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) {
            droid *d = core_get_copy(a->core, runs[i].droid_id);
            bool current = d && d->run_id && strcmp(d->run_id, runs[i].exec_id) == 0;
            dms_exec_status st;
            if (!current && dms_executor_status(a->ex, runs[i].exec_id, &st, &err) == 0 &&
                st.state != DMS_STATE_FINISHED) {
                log_info("droid=%s exec=%s op=reconcile action=stop-orphan", runs[i].droid_id,
                         runs[i].exec_id);
                stop_run(r, runs[i].droid_id, runs[i].exec_id);
            }
            droid_free(d);
        }
        free(runs);
        runs = NULL;
    }
    n = 0;
    /* Executions of this executor that the store does not know at all (never recorded): stop and forget. */
    dms_exec_status *all = NULL;
    size_t na = 0;
    if (store_runs_all(a->st, &runs, &n, NULL) == 0 && dms_executor_list(a->ex, &all, &na, &err) == 0) {
        for (size_t i = 0; i < na; i++) {
            bool known = false;
            for (size_t j = 0; j < n && !known; j++)
                known = strcmp(runs[j].exec_id, all[i].execution_id) == 0;
            /* A build job's live steps are the jobs module's: it stops and re-runs them itself (jobs_start).
             */
            if (known || (JOB_ID_IS(all[i].job_id) && all[i].state != DMS_STATE_FINISHED))
                continue;
            log_info("exec=%s job=%s op=reconcile action=remove-unknown", all[i].execution_id, all[i].job_id);
            if (all[i].state != DMS_STATE_FINISHED)
                stop_run(r, all[i].job_id, all[i].execution_id);
            dms_executor_remove(a->ex, all[i].execution_id, NULL);
        }
    }
    free(all);
    free(runs);
    confine_network_release_legacy(a);
    for (size_t i = 0; ids && ids[i]; i++)
        runner_kick(r, ids[i]);
    dms_strv_free(ids);
    runner_kick(r, GC_ID);
}

int runner_start(runner **out, app *a, dms_error *err)
{
    runner *r = calloc(1, sizeof(*r));
    if (!r)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    r->a = a;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->wake_fd < 0) {
        int rc = dms_error_set_errno(err, DMS_E_IO, errno, "eventfd");
        runner_stop(r);
        return rc;
    }
    if (pthread_create(&r->supervisor, NULL, supervisor_main, r) != 0) {
        runner_stop(r);
        return dms_error_set(err, DMS_E_IO, NULL, "cannot start the supervisor thread");
    }
    r->supervisor_started = true;
    adopt(r);
    for (int i = 0; i < RUN_WORKERS; i++) {
        if (pthread_create(&r->workers[i], NULL, worker_main, r) != 0) {
            runner_stop(r);
            return dms_error_set(err, DMS_E_IO, NULL, "cannot start a runner worker");
        }
        r->n_workers++;
    }
    *out = r;
    return 0;
}

void runner_stop(runner *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (r->wake_fd >= 0)
        wake_supervisor(r);
    for (int i = 0; i < r->n_workers; i++)
        pthread_join(r->workers[i], NULL);
    if (r->supervisor_started)
        pthread_join(r->supervisor, NULL);
    /* Containers keep running: a restart re-adopts them. Pending settles are answered as they are. */
    while (r->rts) {
        rt *t = r->rts;
        r->rts = t->next;
        pthread_mutex_lock(&r->lock);
        fire_settles(r, t);
        pthread_mutex_unlock(&r->lock);
        free(t);
    }
    while (r->head) {
        qitem *q = r->head;
        r->head = q->next;
        free(q);
    }
    while (r->watches) {
        watch *w = r->watches;
        r->watches = w->next;
        dms_waiter_free(w->w);
        free(w);
    }
    while (r->intents) {
        intent *i = r->intents;
        r->intents = i->next;
        free(i);
    }
    if (r->wake_fd >= 0)
        close(r->wake_fd);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
