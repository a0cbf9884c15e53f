/* runner.c - the reconcile workers (see runner.h): kicked droids wait in one queue, and a small pool of
 * workers takes them one at a time per droid; each pass brings a droid one step closer to what is wanted
 * (start.c, swap.c), stops it, or deletes it. The image collector is one more entry of the queue (GC_ID). The
 * supervisor (supervisor.c) and startup (adopt.c) share the runner object through run_priv.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../confine/network.h"
#include "../router/router.h"
#include "run_priv.h"

int64_t runner_backoff_ms(int failures)
{
    int64_t ms = RUN_BACKOFF_BASE_MS;
    for (int i = 1; i < failures && ms < RUN_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < RUN_BACKOFF_MAX_MS ? ms : RUN_BACKOFF_MAX_MS;
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

void run_enqueue(runner *r, rt *t)
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
        run_enqueue(r, t);
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
        run_enqueue(r, t);
    }
    pthread_mutex_unlock(&r->lock);
    if (!t) {
        free(s);
        droid *d = core_get_copy(r->dep.core, droid_id);
        fn(ud, d && !d->deleting ? d : NULL);
        droid_free(d);
    }
}

int64_t run_dep_wait(runner *r, const char *droid_id, bool waiting)
{
    int64_t now = dms_mono_ms(), waited = 0;
    pthread_mutex_lock(&r->lock);
    rt *t = rt_get(r, droid_id);
    if (t && waiting && !t->dep_wait_since_ms)
        t->dep_wait_since_ms = now;
    if (t && waiting)
        waited = now - t->dep_wait_since_ms;
    if (t && !waiting)
        t->dep_wait_since_ms = 0;
    pthread_mutex_unlock(&r->lock);
    return waited;
}

void run_set_timer(runner *r, const char *droid_id, int64_t due_ns)
{
    pthread_mutex_lock(&r->lock);
    rt *t = rt_get(r, droid_id);
    if (t && (t->timer_ns == 0 || due_ns < t->timer_ns))
        t->timer_ns = due_ns;
    pthread_mutex_unlock(&r->lock);
    run_wake_supervisor(r);
}

bool run_stopping(runner *r)
{
    pthread_mutex_lock(&r->lock);
    bool s = r->stop;
    pthread_mutex_unlock(&r->lock);
    return s;
}

/* ---- mutators ---- */

void run_forget_current(droid *d, const char *exec_id)
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
    run_forget_current(d, ud);
    if (d->deleting || d->want_running || d->state == DROID_STOPPED)
        return 0;
    return core_tx_set_state(tx, d, DROID_STOPPED, "stopped on request", err);
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

/* Forgets finished runs beyond the newest RUN_KEEP_LOGS (their containers and captured logs). */
void run_forget_old(runner *r, const droid *d, bool all)
{
    store_run *runs = NULL;
    size_t n = 0;
    if (store_runs_list(r->dep.st, d->id, &runs, &n, NULL) < 0)
        return;
    size_t keep = all ? 0 : RUN_KEEP_LOGS;
    for (size_t i = 0; i + keep < n; i++) {
        if (!all &&
            ((d->run_id && strcmp(runs[i].exec_id, d->run_id) == 0) || run_services_owns(d, runs[i].exec_id)))
            continue;
        dms_error err = {0};
        int rc = 0;
        for (int attempt = 0; attempt < DELETE_IMAGE_ATTEMPTS; attempt++) {
            rc = dms_executor_remove(r->dep.ex, runs[i].exec_id, &err);
            /* "removal already in progress" (409): the executor's own clean-up is racing us; let it finish.
             */
            if (rc == 0 || rc == -DMS_E_NOT_FOUND || !strstr(err.message, "in progress"))
                break;
            usleep(DELETE_IMAGE_RETRY_MS * 1000);
        }
        if (rc == 0 || rc == -DMS_E_NOT_FOUND)
            store_run_mark_removed(r->dep.st, runs[i].exec_id, NULL);
        else
            log_warn("droid=%s exec=%s op=forget error=\"%s\"", d->id, runs[i].exec_id, err.message);
    }
    free(runs);
}

/* Removes one image of a deleted droid, giving the engine a moment while a container still holds it; what
 * it refuses goes to the image collector. True when it went there. */
static bool remove_image(runner *r, const char *droid_id, const char *image)
{
    dms_error err = {0};
    int rc = 0;
    for (int attempt = 0; attempt < DELETE_IMAGE_ATTEMPTS; attempt++) {
        rc = dms_executor_remove_image(r->dep.ex, image, &err);
        if (rc == 0 || rc == -DMS_E_NOT_FOUND || !strstr(err.message, "being used"))
            break;
        usleep(DELETE_IMAGE_RETRY_MS * 1000);
    }
    if (rc == 0 || rc == -DMS_E_NOT_FOUND || rc == -DMS_E_NOT_OURS)
        return false;
    log_warn("droid=%s op=delete image=%s error=\"%s\" note=\"retried by the image collector\"", droid_id,
             image, err.message);
    store_gc_add(r->dep.st, image, droid_id, NULL);
    return true;
}

/* A compose droid's: the images its releases built, the volumes of its file, its network. */
static void remove_compose_leftovers(runner *r, droid *d)
{
    store_release *rel = NULL;
    size_t n = 0;
    bool compose = false;
    if (store_releases_list(r->dep.st, d->id, &rel, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (!rel[i].compose_json)
            continue;
        compose = true;
        char **built = compose_release_built(rel[i].compose_json);
        for (size_t k = 0; built && built[k]; k++)
            if (remove_image(r, d->id, built[k]))
                run_set_timer(r, GC_ID, dms_now_ns() + (int64_t)GC_BACKOFF_BASE_MS * NS_PER_MS);
        dmsu_strv_free(built);
        compose_release cr = {0};
        if (!d->keep_volumes && run_services_load(r, d, rel[i].seq, &cr, NULL) == 0)
            for (size_t v = 0; v < cr.f->n_volumes; v++) {
                char vol[DMS_ID_MAX + 1];
                snprintf(vol, sizeof(vol), "%s-%s", d->id, cr.f->volumes[v].name);
                dms_executor_remove_volume(r->dep.ex, vol, NULL);
            }
        compose_release_clear(&cr);
    }
    store_releases_free(rel, n);
    char net[CONFINE_NETWORK_MAX];
    if (compose && confine_droid_network(dms_executor_id(r->dep.ex), d->id, net, sizeof(net), NULL) == 0)
        dms_executor_remove_network(r->dep.ex, net, NULL);
}

static void delete_droid(runner *r, droid *d)
{
    const runner_deps *dep = &r->dep;
    dms_error err = {0};
    bool gc = false;
    store_run *runs = NULL;
    size_t n = 0;
    /* Every run still live (the current one, and any a crash left behind), then every execution's leftovers.
     */
    if (store_runs_list(dep->st, d->id, &runs, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++)
            run_stop(r, d->id, runs[i].exec_id);
        free(runs);
    }
    run_forget_old(r, d, true);
    store_release *rel = NULL;
    if (store_releases_list(dep->st, d->id, &rel, &n, NULL) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (rel[i].image_removed)
                continue;
            /* The executor removes a finished container off its critical path; until it is gone the engine
             * refuses to remove the image (409 "being used by stopped container"): give it a moment. */
            int rc = 0;
            for (int attempt = 0; attempt < DELETE_IMAGE_ATTEMPTS; attempt++) {
                rc = dms_executor_remove_image(dep->ex, rel[i].image_id, &err);
                if (rc == 0 || rc == -DMS_E_NOT_FOUND || !strstr(err.message, "being used"))
                    break;
                usleep(DELETE_IMAGE_RETRY_MS * 1000);
            }
            if (rc < 0 && rc != -DMS_E_NOT_FOUND) {
                log_warn("droid=%s op=delete image=%s error=\"%s\" note=\"retried by the image collector\"",
                         d->id, rel[i].image_id, err.message);
                store_gc_add(dep->st, rel[i].image_id, d->id, NULL);
                gc = true;
            }
        }
        store_releases_free(rel, n);
    }
    remove_compose_leftovers(r, d);
    for (size_t i = 0; !d->keep_volumes && i < d->n_volumes && i < DROID_VOLUMES_MAX; i++) {
        char vol[DROID_ID_SIZE + DROID_VOLUME_NAME_MAX + 2];
        droid_volume_engine_name(d, i, vol, sizeof(vol));
        int rc = dms_executor_remove_volume(dep->ex, vol, &err);
        if (rc < 0 && rc != -DMS_E_NOT_FOUND)
            log_warn("droid=%s op=delete volume=%s error=\"%s\"", d->id, vol, err.message);
    }
    char dir[PATH_MAX];
    if (dmsd_droid_dir(dep->data_dir, d->id, dir, sizeof(dir)) == 0)
        dms_rm_rf(dir, NULL);
    if (core_mutate(dep->core, NULL, d->id, mut_purge, NULL, NULL, &err) < 0)
        log_error("droid=%s op=purge error=\"%s\"", d->id, err.message);
    else
        log_info("droid=%s op=delete", d->id);
    confine_network_release(dep->ex, dep->core, d->user_id);
    if (gc)
        run_set_timer(r, GC_ID, dms_now_ns() + (int64_t)GC_BACKOFF_BASE_MS * NS_PER_MS);
}

/* The image collector: removals that failed earlier (engine busy or away) are tried again with backoff. */
static void collect_images(runner *r)
{
    char **due = NULL;
    int64_t next = 0;
    dms_error err = {0};
    if (store_gc_due(r->dep.st, dms_now_ns(), &due, &next, &err) < 0) {
        log_warn("component=runner op=gc error=\"%s\"", err.message);
        return;
    }
    for (size_t i = 0; due[i]; i++) {
        int rc = dms_executor_remove_image(r->dep.ex, due[i], &err);
        /* Gone already, or not ours (then it never will be): either way nothing is left to do. CONFLICT ("in
         * use by a container") is retried. */
        bool not_ours = rc == -DMS_E_NOT_OURS;
        if (rc == 0 || rc == -DMS_E_NOT_FOUND || not_ours) {
            store_gc_done(r->dep.st, due[i], NULL);
            log_info("component=runner op=gc image=%s result=%s", due[i],
                     rc == 0 ? "removed" : dms_error_code_name(-rc));
        } else {
            store_gc_retry(r->dep.st, due[i], GC_BACKOFF_BASE_MS, GC_BACKOFF_MAX_MS, err.message, NULL);
            log_warn("component=runner op=gc image=%s error=\"%s\"", due[i], err.message);
        }
    }
    dmsu_strv_free(due);
    if (store_gc_due(r->dep.st, dms_now_ns(), &due, &next, &err) == 0) {
        if (due[0])
            next = dms_now_ns() + (int64_t)GC_BACKOFF_BASE_MS * NS_PER_MS;
        dmsu_strv_free(due);
        if (next)
            run_set_timer(r, GC_ID, next);
    }
}

void runner_collect_images(runner *r)
{
    runner_kick(r, GC_ID);
}

/* Not wanted running: stop its run (or settle a state that says otherwise). */
static void reconcile_stopped(runner *r, const droid *d)
{
    run_services_stop(r, d, "stopped");
    if (d->run_id) {
        run_stop(r, d->id, d->run_id);
        core_mutate(r->dep.core, NULL, d->id, mut_stopped, d->run_id, NULL, NULL);
    } else if (d->state == DROID_STARTING || d->state == DROID_RUNNING) {
        core_mutate(r->dep.core, NULL, d->id, mut_stopped, NULL, NULL, NULL);
    }
}

/* A compose droid whose routed service runs as wanted: its other services follow (a crash's restart, a
 * service that could not start before). */
static void converge_services(runner *r, const droid *d)
{
    if (!d->services_json)
        return;
    compose_release cr;
    dms_error err = {0};
    char why[REASON_MAX];
    int rc = run_services_load(r, d, d->run_release, &cr, &err);
    if (rc < 0)
        log_warn("droid=%s op=services error=\"%s\"", d->id, err.message);
    else if ((rc = run_services_converge(r, d->id, &cr, d->run_release, SVC_ALL, why, sizeof(why))) < 0)
        log_warn("droid=%s op=services error=\"%s\"", d->id, why);
    int64_t waited = run_dep_wait(r, d->id, rc == 1);
    if (rc == 1 && waited < RUN_DEP_TIMEOUT_MS)
        run_set_timer(r, d->id, dms_now_ns() + (int64_t)RUN_DEP_RETRY_MS * NS_PER_MS);
    else if (rc == 1) /* given up until something changes (a kick, a restart) */
        log_warn("droid=%s op=services error=\"%s, for %d s\"", d->id, why, RUN_DEP_TIMEOUT_MS / 1000);
    compose_release_clear(&cr);
}

/* Wanted running, awake, and its run is not the wanted one: is there something to start now? */
static bool start_due(runner *r, const droid *d)
{
    /* A config change made together with (or during) a rebuild comes with the new release: restarting the old
     * release with it now would only cost the old container's uptime. */
    if (d->run_id && d->run_release == d->want_release && d->run_config_gen != d->config_gen) {
        store_build b = {0};
        int active = store_build_active(r->dep.st, d->id, &b, NULL);
        store_build_clear(&b);
        if (active == 1)
            return false;
    }
    /* Waiting for a build, for nothing (failed), or for a retry timer: nothing to start now. */
    if (!d->want_release || d->state == DROID_FAILED || d->state == DROID_PENDING ||
        d->state == DROID_BUILDING || (d->state == DROID_STOPPED && !d->run_id))
        return false;
    if (d->retry_at_ns > dms_now_ns()) {
        run_set_timer(r, d->id, d->retry_at_ns);
        return false;
    }
    return true;
}

/* Wanted running and awake: settle the state of a current run, or start the wanted one. */
static void reconcile_running(runner *r, const droid *d)
{
    bool current = d->run_id && d->run_release == d->want_release && d->run_config_gen == d->config_gen &&
                   d->run_restart_gen == d->restart_gen;
    if (current) {
        core_mutate(r->dep.core, NULL, d->id, mut_settle_state, NULL, NULL, NULL);
        converge_services(r, d);
        return;
    }
    if (!start_due(r, d))
        return;
    /* A forced restart kills the old container first; anything else starts the new one first. */
    pthread_mutex_lock(&r->lock);
    rt *t = rt_get(r, d->id);
    bool force = t && t->force;
    if (t)
        t->force = false;
    pthread_mutex_unlock(&r->lock);
    if (d->run_id && force)
        run_stop_grace(r, d->id, d->run_id, 0); /* kill at once */
    run_start_new(r, d, force);
}

/* One reconcile pass: one step towards what is wanted; a further step is kicked by the mutations it makes. */
static void reconcile(runner *r, const char *id)
{
    if (strcmp(id, GC_ID) == 0) {
        collect_images(r);
        return;
    }
    droid *d = core_get_copy(r->dep.core, id);
    if (!d)
        return;
    if (d->deleting)
        delete_droid(r, d);
    else if (!d->want_running)
        reconcile_stopped(r, d);
    else if (d->asleep)
        run_put_to_sleep(r, d);
    else
        reconcile_running(r, d);
    droid_free(d);
}

static void fire_settles(runner *r, rt *t)
{
    settle *s = t->settles;
    t->settles = NULL;
    if (!s)
        return;
    pthread_mutex_unlock(&r->lock);
    droid *d = core_get_copy(r->dep.core, t->id);
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
        if (r->dep.router && strcmp(id, GC_ID) != 0)
            router_sync(r->dep.router, id, NULL);
        pthread_mutex_lock(&r->lock);
        t->busy = false;
        if (t->dirty) {
            t->dirty = false;
            run_enqueue(r, t);
        } else {
            fire_settles(r, t);
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ---- start and stop ---- */

int runner_start(runner **out, const runner_deps *deps, dms_error *err)
{
    runner *r = calloc(1, sizeof(*r));
    if (!r)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    r->dep = *deps;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->wake_fd < 0) {
        int rc = dms_error_set_errno(err, DMS_E_IO, errno, "eventfd");
        runner_stop(r);
        return rc;
    }
    if (pthread_create(&r->supervisor, NULL, run_supervisor_main, r) != 0) {
        runner_stop(r);
        return dms_error_set(err, DMS_E_IO, NULL, "cannot start the supervisor thread");
    }
    r->supervisor_started = true;
    run_adopt(r);
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
        run_wake_supervisor(r);
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
