/* start.c - starting a new run of a droid and making it the current one (see run_priv.h).
 *
 * The steps of run_start_new, in order: the release's image, prepare (a new execution id, recorded before the
 * start), start (execreq.c builds the request), find the new run's address, pass the health gate (health.c),
 * move the route (swap.c), take over (the droid's current run; the old one is drained and stopped). Each step
 * that fails records why on the droid (mut_start_failed) and ends the start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../router/router.h"
#include "../snooze/snooze.h"
#include "execreq.h"
#include "health.h"
#include "run_priv.h"

typedef struct prep_args {
    int64_t release;
    int64_t config_gen;
    int64_t restart_gen;
    char exec_id[DMS_ID_MAX + 1];
    const char *service; /* a compose droid's routed service, or NULL */
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
    if ((r = store_run_insert_service(core_tx_store(tx), pa->exec_id, d->id, pa->service, d->want_release,
                                      dms_now_ns(), err)) < 0)
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
    /* start_failures is not reset here: under the init a program that cannot be executed "starts" and then
     * ends FAILED. It is reset once a run has really run (mut_exited). */
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
    d->retry_at_ns = dms_now_ns() + delay * NS_PER_MS;
    fa->retry_at_ns = d->retry_at_ns;
    snprintf(why, sizeof(why), "start attempt %d/%d failed: %s; retrying in %llds", d->start_failures,
             RUN_MAX_START_ATTEMPTS, fa->msg, (long long)(delay / 1000));
    return core_tx_set_state(tx, d, DROID_STARTING, why, err);
}

/* Records a run that ended before it became the droid's current one (it never had a watch). */
static void end_unwatched(runner *r, const char *exec_id)
{
    dms_exec_result res = {0};
    dms_error e2;
    if (dms_executor_wait(r->dep.ex, exec_id, 0, &res, &e2) == 0)
        store_run_end(r->dep.st, exec_id, dms_now_ns(), dms_outcome_name(res.outcome), res.exit_code, NULL);
    else
        store_run_end(r->dep.st, exec_id, dms_now_ns(), "failed", -1, NULL);
    dms_exec_result_clear(&res);
}

/* One start, as its steps fill it in. */
typedef struct start_ctx {
    runner *r;
    droid *d; /* the droid as prepare left it (owned; its run_* fields are still the old run's) */
    bool forced;
    prep_args pa;
    int64_t t_start, start_ms;
    int host_port;
    int64_t started_ns;
    char addr[ROUTE_DIAL_MAX];     /* where the new run is dialled, or "" */
    char host[ROUTE_HOST_MAX];     /* <name>.localhost */
    char old_addr[ROUTE_DIAL_MAX]; /* where the run it replaces is dialled, or "" */
    gate_mode gate;
    int port;     /* the container port the route dials: the droid's, or the routed service's */
    bool compose; /* a compose droid: cr holds its release */
    compose_release cr;
    char routed_hash[17]; /* its routed service's request */
} start_ctx;

/* The start failed: the droid records why, and retries later (or gives up). */
static void start_failed(start_ctx *c, const char *droid_id, const char *msg, bool permanent)
{
    failed_args fa = {.pa = &c->pa, .msg = msg, .permanent = permanent};
    core_mutate(c->r->dep.core, NULL, droid_id, mut_start_failed, &fa, NULL, NULL);
    if (fa.retry_at_ns)
        run_set_timer(c->r, droid_id, fa.retry_at_ns);
}

/* The new run started but must not serve: kill it, record its end, and record why on the droid. */
static void abandon(start_ctx *c, const char *msg)
{
    run_stop_grace(c->r, c->d->id, c->pa.exec_id, 0);
    end_unwatched(c->r, c->pa.exec_id);
    start_failed(c, c->d->id, msg, false);
}

/* The wanted release and its image, which must still be there (a missing one is a permanent failure). */
static int load_release(start_ctx *c, const droid *d0, store_release *rel)
{
    dms_error err = {0};
    int rc = store_release_get(c->r->dep.st, d0->id, d0->want_release, rel, &err);
    if (rc == 0 && rel->image_removed)
        rc = dms_error_set(&err, DMS_E_IMAGE, "release", "the image of release %lld was removed",
                           (long long)rel->seq);
    if (rc == 0 && rel->compose_json) {
        c->compose = true;
        rc = run_services_load(c->r, d0, d0->want_release, &c->cr, &err);
    }
    if (rc < 0) {
        c->pa.release = d0->want_release;
        start_failed(c, d0->id, err.message, true);
        return rc;
    }
    c->port = c->compose ? compose_release_port(&c->cr) : d0->port;
    if (c->compose)
        c->pa.service = c->cr.f->services[compose_release_primary(&c->cr)].name;
    return 0;
}

/* A compose droid's services of phase (services.c); a failure fails the start, naming the service. */
static int converge(start_ctx *c, const droid *d0, svc_phase phase)
{
    char why[REASON_MAX];
    int rc = c->compose
                 ? run_services_converge(c->r, d0->id, &c->cr, d0->want_release, phase, why, sizeof(why))
                 : 0;
    int64_t waited = run_dep_wait(c->r, d0->id, rc == 1);
    if (rc == 0)
        return 0;
    if (rc == 1 && waited < RUN_DEP_TIMEOUT_MS) {
        /* Not yet: the worker moves on, and the droid is looked at again in a moment. */
        log_info("droid=%s op=services note=\"%s\" waited_ms=%lld", d0->id, why, (long long)waited);
        run_set_timer(c->r, d0->id, dms_now_ns() + (int64_t)RUN_DEP_RETRY_MS * NS_PER_MS);
        return -DMS_E_TIMEOUT;
    }
    if (rc == 1) {
        size_t n = strlen(why);
        snprintf(why + n, sizeof(why) - n, ", for %d s", RUN_DEP_TIMEOUT_MS / 1000);
        run_dep_wait(c->r, d0->id, false);
    }
    log_warn("droid=%s op=services error=\"%s\"", d0->id, why);
    c->pa.release = d0->want_release;
    start_failed(c, d0->id, why, false);
    return -DMS_E_START_FAILED;
}

/* A new execution id, recorded in the store before the start; c->d becomes the droid as it is then. */
static int prepare(start_ctx *c, const droid *d0)
{
    dms_error err = {0};
    if (core_mutate(c->r->dep.core, NULL, d0->id, mut_prepare, &c->pa, &c->d, &err) < 0) {
        log_error("droid=%s op=prepare error=\"%s\"", d0->id, err.message);
        return -err.code;
    }
    return 0;
}

/* Builds the request and starts it. */
static int launch(start_ctx *c, const store_release *rel)
{
    const runner_deps *dep = &c->r->dep;
    dms_error err = {0};
    execreq xr;
    execreq_input in = {.d = c->d,
                        .exec_id = c->pa.exec_id,
                        .release = c->pa.release,
                        .image = rel->tag,
                        .confine = dep->confine,
                        .executor_id = dms_executor_id(dep->ex)};
    int rc = c->compose
                 ? run_services_routed_request(c->r, c->d, &c->cr, c->pa.release, c->pa.exec_id, &xr, &err)
                 : execreq_build(&xr, &in, &err);
    c->t_start = dms_mono_ms();
    if (rc == 0)
        rc = dms_executor_start(dep->ex, &xr.req, &err);
    c->start_ms = dms_mono_ms() - c->t_start;
    execreq_clear(&xr);
    if (rc < 0) {
        log_warn("droid=%s exec=%s op=start error=\"%s\"", c->d->id, c->pa.exec_id, err.message);
        end_unwatched(c->r, c->pa.exec_id);
        start_failed(c, c->d->id, err.message, rc == -DMS_E_INVALID);
    }
    return rc;
}

/* Where the new run is dialled and since when it runs, and where the run it replaces is dialled. */
static void find_address(start_ctx *c)
{
    const droid *d = c->d;
    dms_exec_status st;
    dms_error err = {0};
    c->started_ns = dms_now_ns();
    if (dms_executor_status(c->r->dep.ex, c->pa.exec_id, &st, &err) == 0) {
        for (size_t i = 0; i < st.n_ports; i++)
            if (st.ports[i].container_port == c->port)
                c->host_port = st.ports[i].host_port;
        if (st.started_at_ns)
            c->started_ns = st.started_at_ns;
        if (st.ip_address[0] && c->port > 0) /* none: a compose droid of workers only */
            snprintf(c->addr, sizeof(c->addr), "%s:%d", st.ip_address, c->port);
    }
    if (!c->addr[0] && c->host_port)
        snprintf(c->addr, sizeof(c->addr), "127.0.0.1:%d", c->host_port);
    snprintf(c->host, sizeof(c->host), "%s" CADDY_HOST_SUFFIX, d->name);
    /* The container it replaces (d is the droid as prepare left it). */
    run_dial_addr(d, c->old_addr, sizeof(c->old_addr));
}

static bool stopping_cb(void *ud)
{
    return run_stopping(ud);
}

/* Zero downtime: the new container must do what the old one does (answer HTTP below 500, any HTTP, or at
 * least accept a connection) before any request goes to it; until then (or if it never does) the old one
 * keeps serving. A droid woken by a request gets its port a moment to open. 0, or CANCELLED (dmsd stops) or
 * START_FAILED (recorded). */
static int pass_gate(start_ctx *c)
{
    const runner_deps *dep = &c->r->dep;
    const droid *d = c->d;
    if (dep->router && c->old_addr[0] && !c->forced)
        c->gate = health_gate(c->old_addr, c->host);
    bool held = snooze_waiting(dep->snooze, d->id);
    health_target t = {.ex = dep->ex,
                       .exec_id = c->pa.exec_id,
                       .addr = c->addr,
                       .host = c->host,
                       .stopping = stopping_cb,
                       .ud = c->r};
    char why[256];
    if (c->gate && !c->addr[0])
        snprintf(why, sizeof(why), "it has no address: it exited at once");
    int health =
        c->gate && c->addr[0] ? health_wait(&t, c->gate, RUN_HEALTH_TIMEOUT_MS, why, sizeof(why)) : 0;
    if (health == -2) {
        log_info("droid=%s exec=%s op=start note=\"dmsd stops before the health check ended; the next start "
                 "reconciles\"",
                 d->id, c->pa.exec_id);
        return -DMS_E_CANCELLED;
    }
    if (c->gate && (!c->addr[0] || health < 0)) {
        char msg[512];
        snprintf(msg, sizeof(msg), "the new container failed its health check: %s", why);
        log_warn("droid=%s exec=%s op=start error=\"%s\"", d->id, c->pa.exec_id, msg);
        abandon(c, msg);
        return -DMS_E_START_FAILED;
    }
    if (!c->gate && held && c->addr[0])
        health_wait(&t, GATE_TCP, RUN_WAKE_PORT_MS, why, sizeof(why));
    /* Requests held while it woke go straight to it; the route follows. */
    if (held && c->addr[0])
        snooze_ready(dep->snooze, d->id, c->addr);
    return 0;
}

/* Moves the route to the new run. A gated replacement whose route cannot move is abandoned (ENGINE): the old
 * container keeps serving. */
static int move_route(start_ctx *c)
{
    const runner_deps *dep = &c->r->dep;
    if (!dep->router || !c->addr[0])
        return 0;
    dms_error err = {0};
    int64_t t0 = dms_mono_ms();
    if (router_swap(dep->router, c->d->id, c->addr, c->old_addr[0] ? c->old_addr : NULL, &err) < 0) {
        log_warn("droid=%s exec=%s op=route error=\"%s\"", c->d->id, c->pa.exec_id, err.message);
        if (c->gate && err.code != DMS_E_UNAVAILABLE) {
            /* The route could not move: the old container keeps serving, the new one goes. */
            abandon(c, err.message);
            return -DMS_E_ENGINE;
        }
    } else {
        log_info("droid=%s exec=%s op=swap addr=%s old=%s swap_ms=%lld", c->d->id, c->pa.exec_id, c->addr,
                 c->old_addr[0] ? c->old_addr : "-", (long long)(dms_mono_ms() - t0));
    }
    return 0;
}

/* The new run becomes the droid's current one and is watched; the one it replaces drains and stops. */
static void take_over(start_ctx *c)
{
    runner *r = c->r;
    const runner_deps *dep = &r->dep;
    const droid *d = c->d;
    dms_error err = {0};
    started_args sa = {.pa = &c->pa, .host_port = c->host_port, .addr = c->addr};
    int mrc = core_mutate(dep->core, NULL, d->id, mut_started, &sa, NULL, &err);
    /* Watched only once it is the droid's current run: an exit seen earlier would not be recognised as its
     * end (the waiter of an execution that already ended is ready at once, so nothing is missed). */
    run_watch_add(r, c->pa.exec_id, d->id, c->started_ns);
    if (mrc < 0 || sa.unwanted) {
        /* Deleted or stopped while it started: this run is not wanted. */
        run_stop(r, d->id, c->pa.exec_id);
    } else if (sa.old_run[0]) {
        /* The new container serves: requests still in flight to the old one finish, then it goes. */
        if (dep->router && c->old_addr[0]) {
            int64_t waited = run_drain(r, d->id, c->old_addr);
            log_info("droid=%s exec=%s op=drain addr=%s waited_ms=%lld", d->id, sa.old_run, c->old_addr,
                     (long long)waited);
        }
        run_stop(r, d->id, sa.old_run);
    }
    if (dep->router)
        router_release(dep->router, d->id, NULL);
    log_info("droid=%s exec=%s op=start port=%d start_ms=%lld total_ms=%lld", d->id, c->pa.exec_id,
             c->host_port, (long long)c->start_ms, (long long)(dms_mono_ms() - c->t_start));
    run_forget_old(r, d, false);
}

typedef struct keep_args {
    int64_t release, config_gen;
    bool unwanted; /* out */
} keep_args;

/* The routed service runs on as the new release's: only what the droid records of its run moves. */
static int mut_keep_routed(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    keep_args *ka = ud;
    if (d->deleting || !d->want_running || !d->run_id) {
        ka->unwanted = true;
        return 0;
    }
    d->run_release = ka->release;
    d->run_config_gen = ka->config_gen;
    d->retry_at_ns = 0;
    char why[128];
    snprintf(why, sizeof(why), "running release %lld (its routed service unchanged)", (long long)ka->release);
    core_tx_kick_runner(tx);
    return core_tx_set_state(tx, d, DROID_RUNNING, why, err);
}

/* A compose droid's new release or config that leaves its routed service's request as it is (and it runs):
 * true when it was kept, without a new container or a swap. A restart asked for, or a forced one, replaces it
 * anyway. */
static bool keep_routed(start_ctx *c, const droid *d0)
{
    bool same = run_services_routed_unchanged(c->r, d0, &c->cr, d0->want_release, c->routed_hash);
    if (!same || c->forced || d0->run_restart_gen != d0->restart_gen)
        return false;
    keep_args ka = {.release = d0->want_release, .config_gen = d0->config_gen};
    if (core_mutate(c->r->dep.core, NULL, d0->id, mut_keep_routed, &ka, NULL, NULL) < 0 || ka.unwanted)
        return false;
    log_info("droid=%s exec=%s op=keep release=%lld note=\"routed service unchanged\"", d0->id, d0->run_id,
             (long long)d0->want_release);
    return true;
}

int run_start_new(runner *r, const droid *d0, bool forced)
{
    start_ctx c = {.r = r, .forced = forced};
    store_release rel = {0};
    int rc = load_release(&c, d0, &rel);
    if (rc == 0)
        rc = converge(&c, d0, SVC_BEFORE);
    if (rc == 0 && c.compose && keep_routed(&c, d0))
        rc = 1; /* kept: no new run of it */
    if (rc == 0)
        rc = prepare(&c, d0);
    if (rc == 0)
        rc = launch(&c, &rel);
    store_release_clear(&rel);
    if (rc == 0) {
        find_address(&c);
        rc = pass_gate(&c);
    }
    if (rc == 0)
        rc = move_route(&c);
    if (rc == 0)
        take_over(&c);
    if (rc >= 0 && c.compose)
        run_services_mark_routed(r, d0->id, &c.cr, c.routed_hash);
    if (rc >= 0 && c.compose && converge(&c, d0, SVC_AFTER) == 0)
        run_services_prune(r, d0->id, &c.cr);
    compose_release_clear(&c.cr);
    droid_free(c.d);
    return rc < 0 ? rc : 0;
}
