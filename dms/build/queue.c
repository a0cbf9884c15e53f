/* queue.c - the build workers' slots, the fair pick and the time limits (see queue.h). */
#include "queue.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common.h"

/* Look at the queue at least this often: a safety net, kicks do the work. */
#define QUEUE_POLL_MAX_MS 60000
#define STORE_RETRY_MS    1000 /* after the store failed to answer */

typedef struct slot {
    bool busy;
    int64_t build;
    char droid_id[DROID_ID_SIZE];
    char user_id[DROID_USER_ID_MAX + 1];
    dms_cancel_token *token;
    buildq_end why;
    char reason[BUILDQ_REASON_MAX];
    int timeout_s;
    int64_t deadline_ms; /* monotonic; 0: no limit (yet) */
} slot;

struct buildq {
    store *st;
    int workers;
    int user_max;
    pthread_mutex_t lock;
    pthread_cond_t cond;    /* workers wait here for a build */
    pthread_cond_t wd_cond; /* the watchdog waits here for the next deadline */
    bool stop;
    bool wd_started;
    pthread_t watchdog;
    slot slots[BUILD_WORKERS_MAX];
};

/* ---- the fair pick ---- */

static bool droid_busy(const char *droid_id, const buildq_busy *busy, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(busy[i].droid_id, droid_id) == 0)
            return true;
    return false;
}

static int user_running(const char *user_id, const buildq_busy *busy, size_t n)
{
    int count = 0;
    for (size_t i = 0; i < n; i++)
        count += strcmp(busy[i].user_id, user_id) == 0;
    return count;
}

int buildq_pick(const store_build_cand *cands, size_t n, const buildq_busy *busy, size_t n_busy, int user_max)
{
    int best = -1, best_running = INT_MAX;
    for (size_t i = 0; i < n; i++) {
        if (droid_busy(cands[i].droid_id, busy, n_busy))
            continue;
        int running = user_running(cands[i].user_id, busy, n_busy);
        /* Strictly fewer: among equals the first, i.e. the longest waiting, keeps its place. */
        if (running < user_max && running < best_running) {
            best = (int)i;
            best_running = running;
        }
    }
    return best;
}

/* ---- slots (all under q->lock) ---- */

static bool cancel_slot(slot *s, buildq_end why, const char *reason)
{
    if (!s->busy || s->why != BUILDQ_NOT_CANCELLED)
        return false;
    s->why = why;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
    dms_cancel_token_cancel(s->token);
    return true;
}

static slot *slot_of(buildq *q, const char *droid_id)
{
    for (int i = 0; i < q->workers; i++)
        if (q->slots[i].busy && strcmp(q->slots[i].droid_id, droid_id) == 0)
            return &q->slots[i];
    return NULL;
}

static size_t busy_list(buildq *q, buildq_busy *out)
{
    size_t n = 0;
    for (int i = 0; i < q->workers; i++)
        if (q->slots[i].busy)
            out[n++] = (buildq_busy){q->slots[i].droid_id, q->slots[i].user_id};
    return n;
}

static void cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t at = (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec + ms * NS_PER_MS;
    ts.tv_sec = at / NS_PER_SEC;
    ts.tv_nsec = at % NS_PER_SEC;
    pthread_cond_timedwait(c, m, &ts);
}

/* The picked build goes into a free slot (a worker that takes holds none, so there is one). 0 when the row
 * is no longer queued (cancelled or superseded since the candidates were read): look again at once. */
static int claim(buildq *q, const store_build_cand *c, buildq_job *job, int64_t *wait_ms)
{
    dms_error err = {0};
    int r = store_build_get(q->st, c->id, &job->b, &err);
    if (r != 1 || job->b.status != BUILD_QUEUED) {
        store_build_clear(&job->b);
        if (r < 0)
            log_error("component=builder op=queue error=\"%s\"", err.message);
        *wait_ms = r < 0 ? STORE_RETRY_MS : 0;
        return 0;
    }
    dms_cancel_token *t = NULL;
    if (dms_cancel_token_new(&t, &err) < 0) {
        store_build_clear(&job->b);
        log_error("component=builder error=\"%s\"", err.message);
        *wait_ms = STORE_RETRY_MS;
        return 0;
    }
    int i = 0;
    while (q->slots[i].busy)
        i++;
    slot *s = &q->slots[i];
    memset(s, 0, sizeof(*s));
    s->busy = true;
    s->build = c->id;
    snprintf(s->droid_id, sizeof(s->droid_id), "%s", c->droid_id);
    snprintf(s->user_id, sizeof(s->user_id), "%s", c->user_id);
    s->token = t;
    job->slot = i;
    job->token = t;
    return 1;
}

static int pick_locked(buildq *q, buildq_job *job, int64_t *wait_ms)
{
    store_build_cand *cands = NULL;
    size_t n = 0;
    int64_t due = 0, now = dms_now_ns();
    dms_error err = {0};
    *wait_ms = QUEUE_POLL_MAX_MS;
    if (store_build_candidates(q->st, now, q->user_max, &cands, &n, &due, &err) < 0) {
        log_error("component=builder op=queue error=\"%s\"", err.message);
        *wait_ms = STORE_RETRY_MS;
        return 0;
    }
    if (due > 0 && (due - now) / NS_PER_MS < *wait_ms)
        *wait_ms = (due - now) / NS_PER_MS + 1;
    buildq_busy busy[BUILD_WORKERS_MAX];
    size_t n_busy = busy_list(q, busy);
    int i = buildq_pick(cands, n, busy, n_busy, q->user_max);
    int r = i < 0 ? 0 : claim(q, &cands[i], job, wait_ms);
    free(cands);
    return r;
}

/* ---- the watchdog: time limits ---- */

static void *watchdog(void *arg)
{
    buildq *q = arg;
    pthread_mutex_lock(&q->lock);
    while (!q->stop) {
        int64_t now = dms_mono_ms(), next = 0;
        for (int i = 0; i < q->workers; i++) {
            slot *s = &q->slots[i];
            if (!s->busy || !s->deadline_ms || s->why != BUILDQ_NOT_CANCELLED)
                continue;
            if (s->deadline_ms > now) {
                next = next && next < s->deadline_ms ? next : s->deadline_ms;
                continue;
            }
            char why[64];
            snprintf(why, sizeof(why), "build timed out after %d s", s->timeout_s);
            cancel_slot(s, BUILDQ_TIMED_OUT, why);
            log_info("droid=%s build=%lld op=timeout limit_s=%d", s->droid_id, (long long)s->build,
                     s->timeout_s);
        }
        if (next)
            cond_wait_ms(&q->wd_cond, &q->lock, next - now);
        else
            pthread_cond_wait(&q->wd_cond, &q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

/* ---- the object ---- */

static void init_monotonic_cond(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

int buildq_open(buildq **out, store *st, int workers, int user_max, dms_error *err)
{
    if (workers < 1 || workers > BUILD_WORKERS_MAX || user_max < 1 || user_max > workers)
        return dms_error_set(err, DMS_E_INVALID, NULL, "build workers %d (1-%d), per user %d (1-workers)",
                             workers, BUILD_WORKERS_MAX, user_max);
    buildq *q = calloc(1, sizeof(*q));
    if (!q)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    q->st = st;
    q->workers = workers;
    q->user_max = user_max;
    pthread_mutex_init(&q->lock, NULL);
    init_monotonic_cond(&q->cond);
    init_monotonic_cond(&q->wd_cond);
    if (pthread_create(&q->watchdog, NULL, watchdog, q) != 0) {
        buildq_close(q);
        return dms_error_set(err, DMS_E_IO, NULL, "cannot start the build watchdog");
    }
    q->wd_started = true;
    *out = q;
    return 0;
}

void buildq_stop(buildq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    for (int i = 0; i < q->workers; i++)
        cancel_slot(&q->slots[i], BUILDQ_STOPPING, "interrupted: dmsd is stopping");
    pthread_cond_broadcast(&q->cond);
    pthread_cond_broadcast(&q->wd_cond);
    pthread_mutex_unlock(&q->lock);
}

void buildq_close(buildq *q)
{
    if (!q)
        return;
    buildq_stop(q);
    if (q->wd_started)
        pthread_join(q->watchdog, NULL);
    pthread_cond_destroy(&q->cond);
    pthread_cond_destroy(&q->wd_cond);
    pthread_mutex_destroy(&q->lock);
    free(q);
}

int buildq_take(buildq *q, buildq_job *job)
{
    memset(job, 0, sizeof(*job));
    pthread_mutex_lock(&q->lock);
    while (!q->stop) {
        int64_t wait_ms;
        if (pick_locked(q, job, &wait_ms) == 1) {
            pthread_mutex_unlock(&q->lock);
            return 1;
        }
        if (wait_ms > 0)
            cond_wait_ms(&q->cond, &q->lock, wait_ms);
    }
    pthread_mutex_unlock(&q->lock);
    return 0;
}

void buildq_done(buildq *q, buildq_job *job)
{
    pthread_mutex_lock(&q->lock);
    slot *s = &q->slots[job->slot];
    dms_cancel_token *t = s->token;
    memset(s, 0, sizeof(*s));
    /* A slot is free, and the user and droid it held may be picked again. */
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    dms_cancel_token_free(t);
    job->token = NULL;
}

void buildq_kick(buildq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void buildq_arm(buildq *q, const buildq_job *job, int timeout_s)
{
    pthread_mutex_lock(&q->lock);
    slot *s = &q->slots[job->slot];
    s->timeout_s = timeout_s;
    s->deadline_ms = timeout_s > 0 ? dms_mono_ms() + (int64_t)timeout_s * 1000 : 0;
    pthread_cond_signal(&q->wd_cond);
    pthread_mutex_unlock(&q->lock);
}

buildq_end buildq_why(buildq *q, const buildq_job *job, char *buf, size_t size)
{
    pthread_mutex_lock(&q->lock);
    const slot *s = &q->slots[job->slot];
    buildq_end why = s->why;
    snprintf(buf, size, "%s", s->reason);
    pthread_mutex_unlock(&q->lock);
    return why;
}

int64_t buildq_running(buildq *q, const char *droid_id)
{
    pthread_mutex_lock(&q->lock);
    const slot *s = slot_of(q, droid_id);
    int64_t id = s ? s->build : 0;
    pthread_mutex_unlock(&q->lock);
    return id;
}

bool buildq_supersede(buildq *q, const char *droid_id, int64_t build_id)
{
    pthread_mutex_lock(&q->lock);
    slot *s = slot_of(q, droid_id);
    bool done = build_id > 0 && s && s->build == build_id &&
                cancel_slot(s, BUILDQ_SUPERSEDED, "superseded: newer code is wanted");
    pthread_mutex_unlock(&q->lock);
    return done;
}

bool buildq_cancel(buildq *q, const char *droid_id, const char *reason)
{
    pthread_mutex_lock(&q->lock);
    slot *s = slot_of(q, droid_id);
    if (s)
        cancel_slot(s, BUILDQ_CANCELLED, reason);
    pthread_mutex_unlock(&q->lock);
    return s != NULL;
}
