/* retain.c - the retention sweeper (see retain.h). */
#include "retain.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dms/backend.h>

#include "common.h"
#include "store/prune.h"

#define RETAIN_BATCH_ROWS     500 /* rows one statement deletes at most */
#define RETAIN_BATCH_JOBS     50  /* finished jobs looked up at once */
#define RETAIN_BATCH_PAUSE_MS 5   /* after a full batch: whoever waits for the store goes first */
#define NS_PER_DAY            (86400LL * NS_PER_SEC)

struct retain {
    store *st;
    char *data_dir;
    retain_config cfg;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
};

typedef int (*prune_fn)(store *s, const char *id, int keep, int batch, int *n, dms_error *err);

static bool stopping(const atomic_bool *stop)
{
    return stop && atomic_load(stop);
}

/* Calls fn batch after batch until one comes back short (or a stop is asked); adds what went to *total. */
static int prune_all(store *st, prune_fn fn, const char *id, int keep, const atomic_bool *stop, long *total,
                     dms_error *err)
{
    int n = RETAIN_BATCH_ROWS;
    while (n == RETAIN_BATCH_ROWS && !stopping(stop)) {
        int r = fn(st, id, keep, RETAIN_BATCH_ROWS, &n, err);
        if (r < 0)
            return r;
        *total += n;
        if (n == RETAIN_BATCH_ROWS)
            usleep(RETAIN_BATCH_PAUSE_MS * 1000);
    }
    return 0;
}

static int sweep_droids(store *st, const retain_config *cfg, const atomic_bool *stop, retain_counts *c,
                        dms_error *err)
{
    _cleanup_strv_ char **ids = NULL;
    int r = prune_droid_ids(st, &ids, err);
    for (size_t i = 0; r == 0 && ids[i] && !stopping(stop); i++) {
        if ((r = prune_all(st, prune_events, ids[i], cfg->events, stop, &c->events, err)) < 0 ||
            (r = prune_all(st, prune_builds, ids[i], cfg->builds, stop, &c->builds, err)) < 0 ||
            (r = prune_all(st, prune_releases, ids[i], cfg->builds, stop, &c->releases, err)) < 0)
            break;
        r = prune_all(st, prune_runs, ids[i], cfg->runs, stop, &c->runs, err);
    }
    return r;
}

static int job_logs(store *st, const char *id, int keep, int batch, int *n, dms_error *err)
{
    (void)keep;
    return prune_job_logs(st, id, batch, n, err);
}

/* A job goes with its directory (clone, artifact) first, then its log, then its row: a sweep cut short
 * anywhere finds the job again the next time. */
static int prune_one_job(store *st, const char *data_dir, const char *id, const atomic_bool *stop, long *jobs,
                         dms_error *err)
{
    char dir[PATH_MAX];
    if (!dmsd_is_slug(id) || dmsu_snprintf_ok(dir, sizeof(dir), "%s/jobs/%s", data_dir, id) < 0)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "job id %.32s is not one of dmsd's", id);
    long logs = 0;
    int n = 0, r = dms_rm_rf(dir, err);
    if (r < 0 || (r = prune_all(st, job_logs, id, 0, stop, &logs, err)) < 0 || stopping(stop) ||
        (r = prune_job(st, id, &n, err)) < 0)
        return r;
    *jobs += n;
    return 0;
}

static int sweep_jobs(store *st, const char *data_dir, const retain_config *cfg, const atomic_bool *stop,
                      retain_counts *c, dms_error *err)
{
    if (cfg->jobs <= 0 && cfg->jobs_days <= 0)
        return 0;
    int64_t before = cfg->jobs_days > 0 ? dms_now_ns() - cfg->jobs_days * NS_PER_DAY : 0;
    for (;;) {
        _cleanup_strv_ char **ids = NULL;
        int r = prune_jobs_due(st, cfg->jobs, before, RETAIN_BATCH_JOBS, &ids, err);
        size_t n = r == 0 ? dmsu_strv_len(ids) : 0;
        long was = c->jobs;
        for (size_t i = 0; r == 0 && i < n && !stopping(stop); i++)
            r = prune_one_job(st, data_dir, ids[i], stop, &c->jobs, err);
        /* A full batch of which nothing went would come back the same: never loop on it. */
        if (r < 0 || n < RETAIN_BATCH_JOBS || c->jobs == was || stopping(stop))
            return r;
    }
}

int retain_sweep(store *st, const char *data_dir, const retain_config *cfg, const atomic_bool *stop,
                 retain_counts *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    int r = sweep_droids(st, cfg, stop, out, err);
    return r < 0 ? r : sweep_jobs(st, data_dir, cfg, stop, out, err);
}

static void *sweeper(void *ud)
{
    retain *rt = ud;
    pthread_mutex_lock(&rt->lock);
    while (!atomic_load(&rt->stop)) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += rt->cfg.interval_s;
        while (!atomic_load(&rt->stop) && pthread_cond_timedwait(&rt->wake, &rt->lock, &until) != ETIMEDOUT)
            ;
        if (atomic_load(&rt->stop))
            break;
        pthread_mutex_unlock(&rt->lock);
        retain_counts c;
        dms_error err = {0};
        int64_t t0 = dms_mono_ms();
        if (retain_sweep(rt->st, rt->data_dir, &rt->cfg, &rt->stop, &c, &err) < 0)
            log_warn("component=retain op=sweep error=\"%s\"", err.message);
        else if (c.events + c.builds + c.releases + c.runs + c.jobs > 0)
            log_info("component=retain op=sweep events=%ld builds=%ld releases=%ld runs=%ld jobs=%ld ms=%lld",
                     c.events, c.builds, c.releases, c.runs, c.jobs, (long long)(dms_mono_ms() - t0));
        pthread_mutex_lock(&rt->lock);
    }
    pthread_mutex_unlock(&rt->lock);
    return NULL;
}

int retain_start(retain **out, store *st, const char *data_dir, const retain_config *cfg, dms_error *err)
{
    retain *rt = calloc(1, sizeof(*rt));
    if (!rt || !(rt->data_dir = strdup(data_dir))) {
        free(rt);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    rt->st = st;
    rt->cfg = *cfg;
    if (rt->cfg.interval_s <= 0)
        rt->cfg.interval_s = RETAIN_DEFAULT_INTERVAL_S;
    atomic_init(&rt->stop, false);
    pthread_mutex_init(&rt->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&rt->thread, NULL, sweeper, rt) != 0) {
        pthread_cond_destroy(&rt->wake);
        pthread_mutex_destroy(&rt->lock);
        free(rt->data_dir);
        free(rt);
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "cannot start the retention thread");
    }
    *out = rt;
    return 0;
}

void retain_stop(retain *rt)
{
    if (!rt)
        return;
    pthread_mutex_lock(&rt->lock);
    atomic_store(&rt->stop, true);
    pthread_cond_broadcast(&rt->wake);
    pthread_mutex_unlock(&rt->lock);
    pthread_join(rt->thread, NULL);
    pthread_cond_destroy(&rt->wake);
    pthread_mutex_destroy(&rt->lock);
    free(rt->data_dir);
    free(rt);
}
