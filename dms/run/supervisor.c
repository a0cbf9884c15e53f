/* supervisor.c - the supervisor thread and what it watches (see run_priv.h): one waiter fd per live run, all
 * polled by one thread (no thread per droid), plus the retry timers of every droid. An exit of a droid's
 * current run is a crash (restart with backoff, bounded), a stop, or a sleep; an exit the runner caused on
 * purpose (an intent) is none of these. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_priv.h"

void run_wake_supervisor(runner *r)
{
    uint64_t one = 1;
    ssize_t n = write(r->wake_fd, &one, sizeof(one));
    (void)n;
}

/* ---- watches: the supervisor polls one waiter fd per live run ---- */

static void handle_exit(runner *r, watch *wa, const dms_exec_result *res);

void run_watch_add(runner *r, const char *exec_id, const char *droid_id, int64_t started_ns)
{
    dms_waiter *w = NULL;
    dms_error err = {0};
    if (dms_executor_waiter(r->dep.ex, exec_id, &w, &err) < 0) {
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
    run_wake_supervisor(r);
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

/* ---- exits ---- */

typedef struct exit_args {
    runner *r;
    const char *exec_id;
    const dms_exec_result *res;
    int64_t started_ns;
    bool intended;       /* the runner stopped it on purpose */
    int64_t retry_at_ns; /* out */
} exit_args;

/* It never ran (under the init, a program that cannot be executed ends this way; or the engine failed to
 * start it): a start failure, not a crash, with the start's own attempts and wording. */
static int exit_never_ran(core_tx *tx, droid *d, exit_args *ea, dms_error *err)
{
    char why[REASON_MAX + 128];
    d->start_failures++;
    if (d->start_failures >= RUN_MAX_START_ATTEMPTS) {
        snprintf(why, sizeof(why), "container would not start after %d attempt%s: %s", d->start_failures,
                 d->start_failures == 1 ? "" : "s", ea->res->error);
        d->start_failures = 0;
        d->retry_at_ns = 0;
        return core_tx_set_state(tx, d, DROID_FAILED, why, err);
    }
    int64_t delay = runner_backoff_ms(d->start_failures);
    d->retry_at_ns = dms_now_ns() + delay * NS_PER_MS;
    ea->retry_at_ns = d->retry_at_ns;
    snprintf(why, sizeof(why), "start attempt %d/%d failed: %s; retrying in %llds", d->start_failures,
             RUN_MAX_START_ATTEMPTS, ea->res->error, (long long)(delay / 1000));
    return core_tx_set_state(tx, d, DROID_STARTING, why, err);
}

/* It ran, then died: restart with backoff, or give up after RUN_MAX_CRASH_RESTARTS. */
static int exit_crashed(core_tx *tx, droid *d, exit_args *ea, const char *what, dms_error *err)
{
    char why[REASON_MAX + 128];
    d->start_failures = 0; /* it ran: starting works */
    int64_t now = dms_now_ns();
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

/* The supervisor learned that a run ended. If it was the droid's current run and the droid is wanted running,
 * it crashed: restart with backoff, or give up after RUN_MAX_CRASH_RESTARTS. */
static int mut_exited(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    exit_args *ea = ud;
    if (!d->run_id || strcmp(d->run_id, ea->exec_id) != 0) {
        /* A compose droid's other service, or an old run we replaced or stopped. */
        int rc = run_services_exited(tx, d, ea->exec_id, ea->res, ea->intended, &ea->retry_at_ns, err);
        return rc < 0 ? rc : 0;
    }
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
    if (ea->res->outcome == DMS_OUTCOME_FAILED || ea->res->outcome == DMS_OUTCOME_ENGINE_ERROR)
        return exit_never_ran(tx, d, ea, err);
    return exit_crashed(tx, d, ea, what, err);
}

/* ---- stops on purpose ---- */

static void intend(runner *r, const char *exec_id)
{
    int64_t now = dms_mono_ms();
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
void run_stop_grace(runner *r, const char *droid_id, const char *exec_id, int64_t grace_ms)
{
    dms_error err = {0};
    intend(r, exec_id);
    int rc = dms_executor_cancel_grace(r->dep.ex, exec_id, grace_ms, &err);
    if (rc < 0 && rc != -DMS_E_ALREADY_COMPLETE && rc != -DMS_E_NOT_FOUND)
        log_warn("droid=%s exec=%s op=stop error=\"%s\"", droid_id, exec_id, err.message);
    else
        log_info("droid=%s exec=%s op=stop", droid_id, exec_id);
}

void run_stop(runner *r, const char *droid_id, const char *exec_id)
{
    run_stop_grace(r, droid_id, exec_id, -1);
}

/* ---- the supervisor ---- */

static void handle_exit(runner *r, watch *wa, const dms_exec_result *res)
{
    char what[REASON_MAX];
    describe(res, what, sizeof(what));
    log_info("droid=%s exec=%s op=exit outcome=%s detail=\"%s\"", wa->droid_id, wa->exec_id,
             dms_outcome_name(res->outcome), what);
    store_run_end(r->dep.st, wa->exec_id, res->finished_at_ns ? res->finished_at_ns : dms_now_ns(),
                  dms_outcome_name(res->outcome), res->exit_code, NULL);
    exit_args ea = {.r = r,
                    .exec_id = wa->exec_id,
                    .res = res,
                    .started_ns = wa->started_ns,
                    .intended = take_intent(r, wa->exec_id)};
    dms_error err = {0};
    if (core_mutate(r->dep.core, NULL, wa->droid_id, mut_exited, &ea, NULL, &err) < 0 &&
        err.code != DMS_E_NOT_FOUND)
        log_error("droid=%s exec=%s op=exit error=\"%s\"", wa->droid_id, wa->exec_id, err.message);
    if (ea.retry_at_ns)
        run_set_timer(r, wa->droid_id, ea.retry_at_ns);
}

/* The poll set: the wake fd, then one waiter fd per watch (who[k] is the watch of pfd[k]). Under r->lock.
 * Grows the arrays as needed (on OOM some watches wait for the next round); returns how many entries it
 * filled. */
static size_t fill_poll_set(runner *r, struct pollfd **pfd, watch ***who, size_t *cap)
{
    size_t n = 1;
    for (watch *w = r->watches; w; w = w->next)
        n++;
    if (n > *cap) {
        struct pollfd *np = realloc(*pfd, n * sizeof(**pfd));
        // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
        watch **nw = np ? realloc(*who, n * sizeof(**who)) : NULL;
        if (np)
            *pfd = np;
        if (nw) {
            *who = nw;
            *cap = n;
        }
    }
    size_t k = 1;
    for (watch *w = r->watches; w && k < *cap; w = w->next) {
        (*who)[k] = w;
        (*pfd)[k++] = (struct pollfd){.fd = dms_waiter_fd(w->w), .events = POLLIN};
    }
    return k;
}

/* Under r->lock: kicks every droid whose timer is due; returns the next timer (wall clock), or 0 for none. */
static int64_t fire_timers(runner *r, int64_t now)
{
    int64_t next = 0;
    for (rt *t = r->rts; t; t = t->next) {
        if (!t->timer_ns)
            continue;
        if (t->timer_ns <= now) {
            t->timer_ns = 0;
            run_enqueue(r, t);
        } else if (!next || t->timer_ns < next) {
            next = t->timer_ns;
        }
    }
    return next;
}

/* The waiter of w is ready: takes its result, drops the watch, and handles the exit. */
static void take_exit(runner *r, watch *w)
{
    dms_exec_result res = {0};
    dms_error err = {0};
    int wr = dms_waiter_result(w->w, 0, &res, &err);
    if (wr == -DMS_E_TIMEOUT)
        return; /* spurious */
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

void *run_supervisor_main(void *arg)
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
        size_t k = fill_poll_set(r, &pfd, &who, &cap);
        int64_t now = dms_now_ns(), next = fire_timers(r, now);
        pthread_mutex_unlock(&r->lock);
        if (cap == 0) { /* not even the wake fd's entry: out of memory, try again in a moment */
            log_error("component=runner op=poll error=\"out of memory for the poll set\"");
            sleep(1);
            continue;
        }
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
        for (size_t i = 1; i < k; i++)
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                take_exit(r, who[i]);
    }
    free(pfd);
    free(who);
    return NULL;
}
