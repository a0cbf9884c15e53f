/* snooze.c - schedules, activity, sleep and wake (see snooze.h).
 *
 * Lock order: core's locks are never held when s->lock is taken, except by snooze_describe()/snooze_status(),
 * which run under core's read lock and take only s->lock (nothing here calls core while holding s->lock). */
#include "snooze.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common.h"
#include "../router/router.h"
#include "schedule.h"
#include "wake.h"

#define REASON_MAX 256

/* What snooze knows of one droid, in memory (its schedule and asleep flag are in the store). */
typedef struct sstate {
    char id[DROID_ID_SIZE];
    int64_t last_active_ns; /* the last moment something was connected (a request ended, or in flight) */
    int64_t awake_since_ns; /* since when it runs awake (seen by a tick); 0 while not */
    int open_conns;         /* connections the wake handler splices to it */
    int waiters;            /* requests held while it wakes */
    uint64_t ready_gen;     /* bumped by snooze_ready */
    char ready_addr[ROUTE_DIAL_MAX];
} sstate;

struct snooze {
    core *core;
    router *router; /* set by snooze_start before the tick thread runs; NULL: no routing */
    wake *w;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* readiness, stop */
    bool stop;
    pthread_t thread;
    bool thread_started;
    sstate *st;
    size_t n, cap;
};

/* Under s->lock. */
static sstate *get(snooze *s, const char *id, bool create)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->st[i].id, id) == 0)
            return &s->st[i];
    if (!create)
        return NULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        sstate *ns = realloc(s->st, cap * sizeof(*ns));
        if (!ns)
            return NULL;
        s->st = ns;
        s->cap = cap;
    }
    sstate *e = &s->st[s->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    return e;
}

/* ---- mutations ---- */

static int mut_sleep(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    const char *why = ud;
    if (d->deleting || !d->want_running || d->asleep || d->state != DROID_RUNNING || !d->snooze_json)
        return 0; /* changed meanwhile: not now */
    d->asleep = true;
    core_tx_kick_runner(tx);
    return core_tx_set_state(tx, d, DROID_SNOOZED, why, err);
}

typedef struct wake_args {
    const char *why;
    bool woken; /* out */
} wake_args;

static int mut_wake(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    wake_args *wa = ud;
    if (!d->asleep || d->deleting)
        return 0;
    d->asleep = false;
    d->woken_ns = dms_now_ns();
    wa->woken = true;
    core_tx_kick_runner(tx);
    if (d->state == DROID_SNOOZED && d->want_running)
        return core_tx_set_state(tx, d, DROID_STARTING, wa->why, err);
    return 0;
}

static bool wake_droid(snooze *s, const char *id, const char *why)
{
    wake_args wa = {.why = why};
    dms_error err = {0};
    if (core_mutate(s->core, NULL, id, mut_wake, &wa, NULL, &err) < 0)
        log_warn("droid=%s op=wake error=\"%s\"", id, err.message);
    else if (wa.woken)
        log_info("droid=%s op=wake reason=\"%s\"", id, why);
    return wa.woken;
}

/* ---- the tick ---- */

typedef struct tick_droid {
    droid *d;
    snooze_schedule sched;
    bool open;           /* something connected now */
    int64_t last_end_ns; /* latest request end seen in the access log this tick */
} tick_droid;

typedef struct access_ctx {
    tick_droid *v;
    size_t n;
} access_ctx;

static void on_access(void *ud, const char *host, int64_t end_ns)
{
    access_ctx *ac = ud;
    size_t sl = strlen(CADDY_HOST_SUFFIX), hl = strlen(host);
    if (hl <= sl || strcmp(host + hl - sl, CADDY_HOST_SUFFIX) != 0)
        return;
    for (size_t i = 0; i < ac->n; i++) {
        const char *name = ac->v[i].d->name;
        if (name && strlen(name) == hl - sl && strncmp(host, name, hl - sl) == 0 &&
            end_ns > ac->v[i].last_end_ns)
            ac->v[i].last_end_ns = end_ns;
    }
}

static void describe_window(int64_t end_s, char *buf, size_t size)
{
    char t[32];
    dmsd_format_time(end_s * NS_PER_SEC, t, sizeof(t));
    snprintf(buf, size, "in its snooze window (until %s) with nothing connected", t);
}

static void decide(snooze *s, tick_droid *td, int64_t now)
{
    droid *d = td->d;
    const snooze_schedule *sc = &td->sched;
    int64_t ws = 0, we = 0;
    bool windows = sc->n_windows > 0;
    bool in_win = windows && schedule_window_at(sc, now / NS_PER_SEC, &ws, &we);
    pthread_mutex_lock(&s->lock);
    sstate *st = get(s, d->id, true);
    if (!st) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    bool open = td->open || st->open_conns > 0 || st->waiters > 0;
    if (open)
        st->last_active_ns = now;
    if (td->last_end_ns > st->last_active_ns)
        st->last_active_ns = td->last_end_ns;
    bool awake = !d->asleep && d->state == DROID_RUNNING;
    if (!awake)
        st->awake_since_ns = 0;
    else if (!st->awake_since_ns)
        st->awake_since_ns = now;
    int64_t idle_ref = st->last_active_ns;
    if (st->awake_since_ns > idle_ref)
        idle_ref = st->awake_since_ns;
    if (d->woken_ns > idle_ref)
        idle_ref = d->woken_ns;
    pthread_mutex_unlock(&s->lock);

    char why[REASON_MAX];
    if (d->asleep) {
        if (windows && !in_win)
            wake_droid(s, d->id, "woken: its snooze window ended");
        return;
    }
    if (!awake)
        return;
    if (windows && !in_win)
        return;
    bool woken_in_window = windows && d->woken_ns >= ws * NS_PER_SEC;
    if (windows && !woken_in_window) {
        if (open)
            return;
        describe_window(we, why, sizeof(why));
    } else {
        int64_t idle_s = (now - idle_ref) / NS_PER_SEC;
        if (open || idle_s < sc->idle_timeout_s)
            return;
        snprintf(why, sizeof(why), "idle for %llds (idle_timeout_s %lld)", (long long)idle_s,
                 (long long)sc->idle_timeout_s);
    }
    dms_error err = {0};
    if (core_mutate(s->core, NULL, d->id, mut_sleep, why, NULL, &err) < 0)
        log_warn("droid=%s op=sleep error=\"%s\"", d->id, err.message);
}

static void tick(snooze *s)
{
    char **ids = core_ids(s->core);
    size_t n = 0;
    while (ids && ids[n])
        n++;
    tick_droid *v = calloc(n ? n : 1, sizeof(*v));
    size_t k = 0, scheduled = 0;
    for (size_t i = 0; v && i < n; i++) {
        droid *d = core_get_copy(s->core, ids[i]);
        if (!d || d->deleting) {
            droid_free(d);
            continue;
        }
        v[k].d = d;
        if (d->snooze_json && d->want_running &&
            schedule_parse_string(d->snooze_json, &v[k].sched, NULL) == 0 && !schedule_is_empty(&v[k].sched))
            scheduled++;
        else
            memset(&v[k].sched, 0, sizeof(v[k].sched));
        k++;
    }
    dmsu_strv_free(ids);
    /* Forget what is known of droids that are gone (and hold nothing). */
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n;) {
        bool known = false;
        for (size_t j = 0; j < k && !known; j++)
            known = strcmp(v[j].d->id, s->st[i].id) == 0;
        if (!known && !s->st[i].waiters && !s->st[i].open_conns)
            s->st[i] = s->st[--s->n];
        else
            i++;
    }
    pthread_mutex_unlock(&s->lock);
    /* The access log is read every tick (also with no schedule) so that its position stays current. */
    access_ctx ac = {.v = v, .n = k};
    if (s->router)
        router_access_poll(s->router, on_access, &ac);
    if (scheduled && s->router) {
        router_upstream *u = NULL;
        size_t nu = 0;
        if (router_upstreams(s->router, &u, &nu, NULL) == 0) {
            for (size_t i = 0; i < k; i++)
                for (size_t j = 0; v[i].d->run_addr && j < nu; j++)
                    if (u[j].num_requests > 0 && strcmp(u[j].addr, v[i].d->run_addr) == 0)
                        v[i].open = true;
        }
        free(u);
        int64_t now = dms_now_ns();
        for (size_t i = 0; i < k; i++)
            if (!schedule_is_empty(&v[i].sched))
                decide(s, &v[i], now);
    }
    for (size_t i = 0; i < k; i++)
        droid_free(v[i].d);
    free(v);
}

static void *tick_main(void *arg)
{
    snooze *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pthread_mutex_unlock(&s->lock);
        tick(s);
        pthread_mutex_lock(&s->lock);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)SNOOZE_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (!s->stop)
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- lifecycle ---- */

int snooze_open(snooze **out, core *c, dms_error *err)
{
    snooze *s = calloc(1, sizeof(*s));
    if (!s)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    s->core = c;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    int r = wake_open(&s->w, s, err);
    if (r < 0) {
        snooze_close(s);
        return r;
    }
    *out = s;
    return 0;
}

const char *snooze_wake_addr(const snooze *s)
{
    return wake_addr(s->w);
}

int snooze_start(snooze *s, router *rt, dms_error *err)
{
    s->router = rt;
    int r = wake_start(s->w, err);
    if (r < 0)
        return r;
    if (pthread_create(&s->thread, NULL, tick_main, s) != 0)
        return dms_error_set(err, DMS_E_IO, NULL, "cannot start the snooze thread");
    s->thread_started = true;
    return 0;
}

void snooze_close(snooze *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    wake_close(s->w);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s->st);
    free(s);
}

/* ---- the wake handler's side ---- */

int snooze_wait_awake(snooze *s, const char *droid_id, int64_t timeout_ms, char *addr, size_t size,
                      dms_error *err)
{
    int64_t deadline = dms_mono_ms() + timeout_ms;
    pthread_mutex_lock(&s->lock);
    sstate *st = get(s, droid_id, true);
    if (!st) {
        pthread_mutex_unlock(&s->lock);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    st->waiters++;
    uint64_t gen0 = st->ready_gen;
    pthread_mutex_unlock(&s->lock);
    int rc = 0;
    for (;;) {
        droid *d = core_get_copy(s->core, droid_id);
        if (!d || d->deleting) {
            rc = dms_error_set(err, DMS_E_NOT_FOUND, "id", "no droid %s", droid_id);
        } else if (!d->want_running) {
            rc = dms_error_set(err, DMS_E_CONFLICT, "status", "droid %s is stopped", d->name);
        } else if (d->state == DROID_FAILED) {
            rc = dms_error_set(err, DMS_E_CONFLICT, "status", "droid %s failed: %s", d->name,
                               d->reason ? d->reason : "");
        } else if (d->asleep) {
            wake_droid(s, droid_id, "woken by a request");
        }
        pthread_mutex_lock(&s->lock);
        /* st may have moved (the table grows): look it up again. */
        st = get(s, droid_id, false);
        if (rc == 0) {
            if (st && st->ready_gen != gen0 && st->ready_addr[0]) {
                snprintf(addr, size, "%s", st->ready_addr);
                rc = 1;
            } else if (d && !d->asleep && d->state == DROID_RUNNING && d->run_id && d->run_addr) {
                snprintf(addr, size, "%s", d->run_addr); /* it serves already (woken by another request) */
                rc = 1;
            } else if (s->stop) {
                rc = dms_error_set(err, DMS_E_CANCELLED, NULL, "dmsd is stopping");
            } else if (dms_mono_ms() >= deadline) {
                rc = dms_error_set(err, DMS_E_TIMEOUT, NULL, "droid %s did not wake within %lld ms", droid_id,
                                   (long long)timeout_ms);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += (long)SNOOZE_WAIT_POLL_MS * 1000000L;
                ts.tv_sec += ts.tv_nsec / 1000000000L;
                ts.tv_nsec %= 1000000000L;
                pthread_cond_timedwait(&s->cond, &s->lock, &ts);
            }
        }
        if (rc != 0 && st)
            st->waiters--;
        pthread_mutex_unlock(&s->lock);
        droid_free(d);
        if (rc != 0)
            return rc > 0 ? 0 : rc;
    }
}

void snooze_conn_open(snooze *s, const char *droid_id)
{
    pthread_mutex_lock(&s->lock);
    sstate *st = get(s, droid_id, true);
    if (st)
        st->open_conns++;
    pthread_mutex_unlock(&s->lock);
}

void snooze_conn_close(snooze *s, const char *droid_id)
{
    pthread_mutex_lock(&s->lock);
    sstate *st = get(s, droid_id, false);
    if (st) {
        st->open_conns--;
        st->last_active_ns = dms_now_ns();
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- the runner's side ---- */

bool snooze_waiting(snooze *s, const char *droid_id)
{
    if (!s)
        return false;
    pthread_mutex_lock(&s->lock);
    sstate *st = get(s, droid_id, false);
    bool w = st && st->waiters > 0;
    pthread_mutex_unlock(&s->lock);
    return w;
}

void snooze_ready(snooze *s, const char *droid_id, const char *addr)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    sstate *st = get(s, droid_id, true);
    if (st) {
        snprintf(st->ready_addr, sizeof(st->ready_addr), "%s", addr);
        st->ready_gen++;
        st->last_active_ns = dms_now_ns();
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* ---- the API's side ---- */

typedef struct set_args {
    char *json; /* canonical, or NULL to clear */
} set_args;

static int mut_set(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    set_args *sa = ud;
    if (dmsd_set_str(&d->snooze_json, sa->json) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    char why[REASON_MAX + 64];
    snprintf(why, sizeof(why), "snooze schedule %s%.200s", sa->json ? "set: " : "cleared",
             sa->json ? sa->json : "");
    int r = core_tx_note(tx, d, why, err);
    if (r < 0)
        return r;
    if (!sa->json && d->asleep) {
        /* No schedule, no sleep. */
        d->asleep = false;
        d->woken_ns = dms_now_ns();
        core_tx_kick_runner(tx);
        if (d->state == DROID_SNOOZED && d->want_running)
            return core_tx_set_state(tx, d, DROID_STARTING, "woken: its snooze schedule was cleared", err);
    }
    return 0;
}

int snooze_set(snooze *s, const char *user, const char *droid_id, json_t *body, droid **out, dms_error *err)
{
    (void)s;
    snooze_schedule sc;
    int r = schedule_parse(body, &sc, err);
    if (r < 0)
        return r;
    set_args sa = {.json = schedule_is_empty(&sc) ? NULL : schedule_to_string(&sc)};
    if (!schedule_is_empty(&sc) && !sa.json)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    r = core_mutate(s->core, user, droid_id, mut_set, &sa, out, err);
    free(sa.json);
    return r;
}

static void iso(int64_t ns, char *buf, size_t size)
{
    dmsd_format_time(ns, buf, size);
}

typedef struct view {
    bool has;
    bool asleep;
    bool in_window;
    int64_t next_sleep_ns; /* 0 = none known */
    int64_t next_wake_ns;
    int64_t idle_for_s; /* -1 unknown */
} view;

static view compute_view(snooze *s, const droid *d, snooze_schedule *sc)
{
    view v = {.idle_for_s = -1};
    if (!d->snooze_json || schedule_parse_string(d->snooze_json, sc, NULL) < 0 || schedule_is_empty(sc))
        return v;
    v.has = true;
    v.asleep = d->asleep;
    int64_t now = dms_now_ns(), ws = 0, we = 0;
    bool windows = sc->n_windows > 0;
    v.in_window = windows && schedule_window_at(sc, now / NS_PER_SEC, &ws, &we);
    pthread_mutex_lock(&s->lock);
    sstate *st = get(s, d->id, false);
    int64_t idle_ref = st ? st->last_active_ns : 0;
    if (st && st->awake_since_ns > idle_ref)
        idle_ref = st->awake_since_ns;
    pthread_mutex_unlock(&s->lock);
    if (d->woken_ns > idle_ref)
        idle_ref = d->woken_ns;
    if (!idle_ref)
        idle_ref = now;
    if (d->asleep) {
        if (v.in_window)
            v.next_wake_ns = we * NS_PER_SEC; /* then on schedule; before that, on a request */
        return v;
    }
    v.idle_for_s = (now - idle_ref) / NS_PER_SEC;
    if (!d->want_running)
        return v;
    int64_t by_idle = idle_ref + sc->idle_timeout_s * NS_PER_SEC;
    if (!windows)
        v.next_sleep_ns = by_idle;
    else if (!v.in_window)
        v.next_sleep_ns = schedule_next_start(sc, now / NS_PER_SEC) * NS_PER_SEC;
    else if (d->woken_ns >= ws * NS_PER_SEC)
        v.next_sleep_ns = by_idle < we * NS_PER_SEC ? by_idle : 0;
    else
        v.next_sleep_ns = now; /* as soon as nothing is connected */
    if (v.next_sleep_ns && v.next_sleep_ns < now)
        v.next_sleep_ns = now;
    return v;
}

/* An instant as the API shows it, or null for none (0). */
static json_t *iso_or_null(int64_t ns)
{
    if (!ns)
        return json_null();
    char t[32];
    iso(ns, t, sizeof(t));
    return json_string(t);
}

void snooze_describe(snooze *s, const droid *d, json_t *obj)
{
    snooze_schedule sc;
    view v = compute_view(s, d, &sc);
    if (!v.has) {
        json_object_set_new(obj, "snooze", json_null());
        return;
    }
    json_t *j = schedule_to_json(&sc);
    if (!j)
        return;
    json_object_set_new(j, "asleep", json_boolean(v.asleep));
    json_object_set_new(j, "in_window", json_boolean(v.in_window));
    json_object_set_new(j, "next_sleep_at", iso_or_null(v.next_sleep_ns));
    json_object_set_new(j, "next_wake_at", iso_or_null(v.next_wake_ns));
    json_object_set_new(j, "wakes_on_request", json_true());
    json_object_set_new(j, "idle_for_s", v.idle_for_s >= 0 ? json_integer(v.idle_for_s) : json_null());
    json_object_set_new(obj, "snooze", j);
}

void snooze_status(snooze *s, const droid *d, json_t *obj)
{
    snooze_schedule sc;
    view v = compute_view(s, d, &sc);
    if (!v.has) {
        json_object_set_new(obj, "snooze", json_null());
        return;
    }
    json_object_set_new(obj, "snooze",
                        json_pack("{s:b, s:b, s:o, s:o}", "asleep", v.asleep, "in_window", v.in_window,
                                  "next_wake_at", iso_or_null(v.next_wake_ns), "next_sleep_at",
                                  iso_or_null(v.next_sleep_ns)));
}
