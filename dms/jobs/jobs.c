/* jobs.c - the job queue and its workers (see jobs.h).
 *
 * A worker claims the next job (the fair claim: jobstore.h), holds it in its slot with a cancel token, and
 * runs it (jobrun.h); one job's steps and their containers are jobrun.c's and jobstep.c's, its log
 * joblog.c's. */
#include "jobs.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dms/backend.h>

#include "../common.h"
#include "artifact.h"
#include "jobrun.h"
#include "jobstore.h"

#define QUEUE_POLL_MAX_MS 60000 /* re-read the queue at least this often (kicks do the work) */
#define BYTES_PER_MB      (1024 * 1024)

struct jobs {
    jobrun_env env;          /* what each job's run needs of the queue: the store, the executor, ... */
    const char *executor_id; /* DMS_EXECUTOR_ID, for the cache volumes' names */
    int user_max_running;
    int user_max_jobs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    int n_workers;
    pthread_t *threads;
    job_slot *slots; /* one per worker */
};

int jobs_artifact_path(jobs *js, const char *id, char *buf, size_t size)
{
    return jobrun_dir(js->env.data_dir, id, ARTIFACT_NAME, buf, size);
}

int jobs_artifact_open(jobs *js, const char *id, int64_t *bytes, dms_error *err)
{
    char dir[PATH_MAX];
    if (jobrun_dir(js->env.data_dir, id, NULL, dir, sizeof(dir)) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "the data dir path is too long");
    return artifact_open(dir, bytes, err);
}

int jobs_default_user_max(int concurrency)
{
    return concurrency > 1 ? concurrency - 1 : 1;
}

/* ---- workers ---- */

typedef struct worker_arg {
    jobs *js;
    int index;
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    jobs *js = wa->js;
    job_slot *sl = &js->slots[wa->index];
    free(wa);
    pthread_mutex_lock(&js->lock);
    while (!js->stop) {
        pthread_mutex_unlock(&js->lock);
        job j;
        job_init(&j);
        dms_error err = {0};
        dms_cancel_token *t = NULL;
        int r = dms_cancel_token_new(&t, &err);
        if (r == 0)
            r = jobstore_claim_next(js->env.st, js->user_max_running, &j, &err);
        if (r < 0)
            log_error("component=jobs op=queue error=\"%s\"", err.message);
        pthread_mutex_lock(&js->lock);
        if (r == 1) {
            snprintf(sl->job_id, sizeof(sl->job_id), "%s", j.id);
            sl->token = t;
            sl->stopping = false;
            if (js->stop) {
                sl->stopping = true;
                dms_cancel_token_cancel(t);
            }
            pthread_mutex_unlock(&js->lock);
            log_info("job=%s op=run attempt=%d", j.id, j.attempt);
            jobrun_run(&js->env, sl, &j);
            pthread_mutex_lock(&js->lock);
            sl->job_id[0] = '\0';
            sl->token = NULL;
            /* The user of this job runs one fewer: an idle worker may now take that user's next job. */
            pthread_cond_broadcast(&js->cond);
            pthread_mutex_unlock(&js->lock);
            dms_cancel_token_free(t);
            job_clear(&j);
            pthread_mutex_lock(&js->lock);
            continue;
        }
        dms_cancel_token_free(t);
        job_clear(&j);
        if (js->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t deadline =
            (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec + (int64_t)QUEUE_POLL_MAX_MS * NS_PER_MS;
        ts.tv_sec = deadline / NS_PER_SEC;
        ts.tv_nsec = deadline % NS_PER_SEC;
        pthread_cond_timedwait(&js->cond, &js->lock, &ts);
    }
    pthread_mutex_unlock(&js->lock);
    return NULL;
}

static void kick(jobs *js)
{
    pthread_mutex_lock(&js->lock);
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
}

/* What an interrupted attempt may have left running (dmsd was killed): stopped at once and forgotten. */
static void stop_leftovers(jobs *js, const char *id, int attempt)
{
    static const job_step steps[] = {JOB_STEP_INSTALL, JOB_STEP_BUILD, JOB_STEP_PACKAGE};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(steps); i++) {
        char exec_id[DMS_ID_MAX + 1];
        snprintf(exec_id, sizeof(exec_id), "%s-%s-%d", id, job_step_name(steps[i]), attempt);
        if (dms_executor_cancel_grace(js->env.ex, exec_id, 0, NULL) == 0)
            log_info("job=%s exec=%s op=stop-leftover", id, exec_id);
        dms_executor_remove(js->env.ex, exec_id, NULL);
    }
}

/* What a restart finds: interrupted jobs queued again (what they left running stopped), and artifacts an
 * older dmsd left in out/ taken out. */
static int recover(jobs *js, dms_error *err)
{
    char **ids = NULL;
    int *attempts = NULL;
    int r = jobstore_requeue_interrupted(js->env.st, &ids, &attempts, err);
    if (r < 0)
        return r;
    for (size_t i = 0; ids && ids[i]; i++) {
        stop_leftovers(js, ids[i], attempts[i]);
        log_info("job=%s op=requeue note=\"interrupted by a restart\"", ids[i]);
    }
    dmsu_strv_free(ids);
    free(attempts);
    char jobs_dir[PATH_MAX];
    if (dmsu_snprintf_ok(jobs_dir, sizeof(jobs_dir), "%s/jobs", js->env.data_dir) == 0) {
        int adopted = artifact_adopt_legacy(jobs_dir, (int64_t)js->env.artifact_max_mb * BYTES_PER_MB);
        if (adopted)
            log_info("component=jobs op=adopt-artifacts count=%d note=\"taken out of an older dmsd's out/\"",
                     adopted);
    }
    return 0;
}

int jobs_start(jobs **out, store *st, dms_executor *ex, const jobs_config *cfg, dms_error *err)
{
    int concurrency = cfg->concurrency;
    if (concurrency < 1 || concurrency > JOBS_MAX_CONCURRENCY)
        return dms_error_set(err, DMS_E_INVALID, "DMS_JOB_CONCURRENCY", "job concurrency must be 1-%d",
                             JOBS_MAX_CONCURRENCY);
    if (cfg->user_max_jobs < 1)
        return dms_error_set(err, DMS_E_INVALID, "DMS_USER_MAX_JOBS", "DMS_USER_MAX_JOBS must be at least 1");
    if (cfg->artifact_max_mb < 1 || cfg->artifact_max_mb > JOBS_MAX_ARTIFACT_MAX_MB)
        return dms_error_set(err, DMS_E_INVALID, "DMS_JOB_ARTIFACT_MAX_MB",
                             "DMS_JOB_ARTIFACT_MAX_MB must be 1-%d", JOBS_MAX_ARTIFACT_MAX_MB);
    jobs *js = calloc(1, sizeof(*js));
    if (!js)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    js->executor_id = cfg->executor_id;
    js->env = (jobrun_env){.st = st,
                           .ex = ex,
                           .data_dir = cfg->data_dir,
                           .limits = cfg->step_limits,
                           .lock = &js->lock,
                           .step_timeout_ms = cfg->step_timeout_ms,
                           .artifact_max_mb = cfg->artifact_max_mb};
    js->user_max_running =
        cfg->user_max_running > 0 ? cfg->user_max_running : jobs_default_user_max(concurrency);
    js->user_max_jobs = cfg->user_max_jobs;
    pthread_mutex_init(&js->lock, NULL);
    pthread_cond_init(&js->cond, NULL);
    js->threads = calloc((size_t)concurrency, sizeof(*js->threads));
    js->slots = calloc((size_t)concurrency, sizeof(*js->slots));
    if (!js->threads || !js->slots) {
        jobs_stop(js);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    int r = recover(js, err);
    if (r < 0) {
        jobs_stop(js);
        return r;
    }
    for (int i = 0; i < concurrency; i++) {
        worker_arg *wa = malloc(sizeof(*wa));
        if (wa)
            *wa = (worker_arg){js, i};
        if (!wa || pthread_create(&js->threads[i], NULL, worker, wa) != 0) {
            free(wa);
            jobs_stop(js);
            return dms_error_set(err, DMS_E_IO, NULL, "cannot start the job workers");
        }
        js->n_workers++;
    }
    *out = js;
    return 0;
}

void jobs_stop(jobs *js)
{
    if (!js)
        return;
    pthread_mutex_lock(&js->lock);
    js->stop = true;
    for (int i = 0; js->slots && i < js->n_workers; i++)
        if (js->slots[i].token) {
            js->slots[i].stopping = true;
            dms_cancel_token_cancel(js->slots[i].token);
        }
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
    for (int i = 0; i < js->n_workers; i++)
        pthread_join(js->threads[i], NULL);
    pthread_cond_destroy(&js->cond);
    pthread_mutex_destroy(&js->lock);
    free(js->threads);
    free(js->slots);
    free(js);
}

int jobs_create(jobs *js, job *j, dms_error *err)
{
    int r;
    if (dmsu_random_id(j->id, sizeof(j->id), "j") < 0)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "a job id does not fit in %zu bytes", sizeof(j->id));
    j->status = JOB_QUEUED;
    j->created_ns = dms_now_ns();
    if (j->pm != JOB_PM_NONE) {
        char vol[DMS_ID_MAX + 1];
        r = job_cache_volume_name(js->executor_id, j->user_id, j->project_id, vol, sizeof(vol), err);
        if (r < 0 || (r = dmsd_set_str(&j->cache_volume, vol)) < 0)
            return r < 0 && err && err->code ? r : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    char line[1024];
    snprintf(line, sizeof(line), "[dms] job %s queued: project %s, deployment %s, branch %s of %s\n", j->id,
             j->project_id, j->deployment_id, j->branch, j->repo_url);
    if ((r = store_begin(js->env.st, err)) < 0)
        return r;
    if ((r = jobstore_check_quota(js->env.st, j->user_id, js->user_max_jobs, err)) < 0 ||
        (r = jobstore_insert(js->env.st, j, err)) < 0 ||
        (r = jobstore_log_append(js->env.st, j->id, 1, j->created_ns, line, strlen(line), err)) < 0) {
        store_rollback(js->env.st);
        return r;
    }
    if ((r = store_commit(js->env.st, err)) < 0)
        return r;
    log_info("job=%s user=%s op=create project=%s deployment=%s", j->id, j->user_id, j->project_id,
             j->deployment_id);
    kick(js);
    return 0;
}

int jobs_cancel(jobs *js, const char *user, const char *id, dms_error *err)
{
    job_status was;
    char jid[JOB_ID_SIZE] = "";
    int r = jobstore_request_cancel(js->env.st, user, id, "cancelled before it started", &was, jid, err);
    if (r < 0)
        return r;
    if (was == JOB_RUNNING) {
        pthread_mutex_lock(&js->lock);
        for (int i = 0; i < js->n_workers; i++)
            if (js->slots[i].token && strcmp(js->slots[i].job_id, jid) == 0)
                dms_cancel_token_cancel(js->slots[i].token);
        pthread_mutex_unlock(&js->lock);
    }
    log_info("job=%s user=%s op=cancel was=%s", jid, user, job_status_name(was));
    return 0;
}
