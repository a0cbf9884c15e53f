/* jobrun.c - one job, step by step (see jobrun.h). */
#include "jobrun.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../build/git.h"
#include "../common.h"
#include "artifact.h"
#include "jobstep.h"
#include "jobstore.h"

#define CLONE_ATTEMPTS        3
#define CLONE_BACKOFF_BASE_MS 2000
#define BYTES_PER_MB          (1024 * 1024)

int jobrun_dir(const char *data_dir, const char *id, const char *sub, char *buf, size_t size)
{
    return dmsu_snprintf_ok(buf, size, "%s/jobs/%s%s%s", data_dir, id, sub ? "/" : "", sub ? sub : "") < 0
               ? -DMS_E_INVALID
               : 0;
}

bool jobrun_stopping(run_ctx *c)
{
    pthread_mutex_lock(c->env->lock);
    bool s = c->sl->stopping;
    pthread_mutex_unlock(c->env->lock);
    return s;
}

/* A cancel asked through the store (it may have come before the worker had its token). */
bool jobrun_cancel_asked(run_ctx *c)
{
    if (dms_cancel_token_cancelled(c->sl->token))
        return true;
    job now;
    job_init(&now);
    bool asked = jobstore_get(c->env->st, c->j->id, &now, NULL) == 0 && now.cancel_requested;
    job_clear(&now);
    if (asked)
        dms_cancel_token_cancel(c->sl->token);
    return asked;
}

void jobrun_set_cancelled(run_ctx *c, const char *during)
{
    if (jobrun_stopping(c)) {
        c->kind = JOBRUN_INTERRUPTED;
        snprintf(c->reason, sizeof(c->reason), "interrupted: dmsd is stopping");
        return;
    }
    c->kind = JOBRUN_CANCELLED;
    snprintf(c->reason, sizeof(c->reason), "cancelled during %s", during);
}

void jobrun_persist(run_ctx *c)
{
    dms_error err = {0};
    if (jobstore_update(c->env->st, c->j, &err) < 0)
        log_warn("job=%s op=update error=\"%s\"", c->j->id, err.message);
}

void jobrun_begin_step(run_ctx *c, job_step step)
{
    dmsd_set_str(&c->j->step, job_step_name(step));
    jobrun_persist(c);
}

static int clone_step(run_ctx *c)
{
    job *j = c->j;
    jobrun_begin_step(c, JOB_STEP_CLONE);
    if (jobrun_cancel_asked(c)) { /* asked between the claim and the worker's token */
        jobrun_set_cancelled(c, "clone");
        return -1;
    }
    joblog_say(&c->log, "cloning %s (branch %s)", j->repo_url, j->branch);
    char sha[GIT_SHA_HEX + 1] = "";
    for (int attempt = 1;; attempt++) {
        dms_error err = {0};
        dms_rm_rf(c->src, NULL);
        int r = gitx_clone(j->repo_url, j->branch, NULL, c->src, c->sl->token, sha, &err);
        if (r == 0)
            break;
        if (r == -DMS_E_CANCELLED || jobrun_cancel_asked(c)) {
            jobrun_set_cancelled(c, "clone");
            return -1;
        }
        if (!err.retryable || attempt >= CLONE_ATTEMPTS) {
            c->kind = JOBRUN_FAILED;
            snprintf(c->reason, sizeof(c->reason), "clone failed: %s", err.message);
            return -1;
        }
        int64_t delay = CLONE_BACKOFF_BASE_MS << (attempt - 1);
        joblog_say(&c->log, "clone attempt %d/%d failed (%s); retrying in %llds", attempt, CLONE_ATTEMPTS,
                   err.message, (long long)(delay / 1000));
        struct pollfd p = {.fd = dms_cancel_token_fd(c->sl->token), .events = POLLIN};
        poll(&p, 1, (int)delay);
    }
    dmsd_set_str(&j->commit_sha, sha);
    jobrun_persist(c);
    joblog_say(&c->log, "checked out %s", sha);
    return 0;
}

/* The artifact out of the package step's tree into the job's own directory, once: the container that wrote
 * it has ended, so nothing changes it any more; what it is is checked all the same (artifact.h). */
static int take_out(run_ctx *c)
{
    dms_error err = {0};
    int64_t bytes = 0;
    int64_t max = (int64_t)c->env->artifact_max_mb * BYTES_PER_MB;
    if (artifact_take_out(c->out, c->base, max, &bytes, &err) < 0) {
        c->kind = JOBRUN_FAILED;
        if (err.code == DMS_E_INVALID) { /* what the workload left: the user's to know */
            snprintf(c->reason, sizeof(c->reason), "%s", err.message);
        } else { /* ours: the message names host paths, which stay in dmsd's log */
            log_warn("job=%s op=take-out error=\"%s\"", c->j->id, err.message);
            snprintf(c->reason, sizeof(c->reason), "dmsd could not take the artifact out (%s)",
                     dms_error_code_name(err.code));
        }
        return -1;
    }
    c->j->artifact_bytes = bytes;
    return 0;
}

/* The clone (with its dependencies) is big and no longer needed, nor is the package step's tree: only the
 * artifact dmsd took out stays. Before the job is final, so that a finished job has nothing else on disk.
 * dms_rm_rf unlinks what the workload left (links, FIFOs, device nodes) without following or opening it. */
static void remove_trees(run_ctx *c)
{
    const char *trees[] = {c->src, c->out};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(trees); i++) {
        dms_error err = {0};
        if (trees[i][0] && dms_rm_rf(trees[i], &err) < 0)
            log_warn("job=%s op=remove-tree error=\"%s\"", c->j->id, err.message);
    }
}

/* The run's log (continued where it is: the queue line, an earlier attempt) and directories; what an earlier
 * attempt left (a restart interrupted it) goes. -1 with c->reason set. */
static int open_run(run_ctx *c)
{
    const jobrun_env *env = c->env;
    job *j = c->j;
    c->log.st = env->st;
    c->log.id = j->id;
    c->log.last_flush_ms = dms_mono_ms();
    c->log.buf.max = 0;
    /* Continue the log where it is (the queue line, an earlier attempt). */
    jobstore_log_last_seq(env->st, j->id, &c->log.seq, NULL);
    char artifact[PATH_MAX];
    if (jobrun_dir(env->data_dir, j->id, NULL, c->base, sizeof(c->base)) < 0 ||
        jobrun_dir(env->data_dir, j->id, "src", c->src, sizeof(c->src)) < 0 ||
        jobrun_dir(env->data_dir, j->id, "out", c->out, sizeof(c->out)) < 0 ||
        jobrun_dir(env->data_dir, j->id, ARTIFACT_NAME, artifact, sizeof(artifact)) < 0) {
        snprintf(c->reason, sizeof(c->reason), "the data dir path is too long");
        return -1;
    }
    dms_error err = {0};
    /* What an earlier attempt left (a restart interrupted it). */
    dms_rm_rf(c->out, NULL);
    unlink(artifact);
    if (dms_mkdir_p(c->out, false, &err) < 0) {
        snprintf(c->reason, sizeof(c->reason), "cannot make %s: %s", c->out, err.message);
        return -1;
    }
    return 0;
}

/* The steps in order: clone, install (if the package manager has one), build, package, the artifact taken
 * out. c->kind is JOBRUN_OK when all went well. */
static void run_steps(run_ctx *c)
{
    job *j = c->j;
    joblog_say(&c->log, "job %s attempt %d started: project %s, deployment %s, package manager %s", j->id,
               j->attempt, j->project_id, j->deployment_id, job_pm_name(j->pm));
    j->artifact_bytes = -1;
    j->install_ms = j->build_ms = -1;
    j->exit_code = -1;
    j->cache_warm = false;
    if (clone_step(c) < 0)
        return;
    const char *install = job_install_script(j->pm);
    if (install) {
        if (j->cache_volume)
            joblog_say(&c->log, "dependency cache: volume %s at %s", j->cache_volume, JOB_CACHE_DIR);
        if (jobstep_run(c, JOB_STEP_INSTALL, install, &j->install_ms) < 0)
            return;
        j->cache_warm = c->log.cache_warm;
        jobrun_persist(c);
    }
    if (jobstep_run(c, JOB_STEP_BUILD, j->build_command, &j->build_ms) < 0)
        return;
    jobrun_persist(c);
    if (jobstep_run(c, JOB_STEP_PACKAGE, job_package_script(), NULL) < 0 || take_out(c) < 0)
        return;
    c->kind = JOBRUN_OK;
}

/* However it ended: the trees go, the row and the log say how; interrupted, it stays "running" instead. */
static void end_run(run_ctx *c)
{
    job *j = c->j;
    if (c->kind == JOBRUN_INTERRUPTED) {
        /* Stays "running": the next start of dmsd queues it again. */
        joblog_flush(&c->log);
        dmsu_buf_free(&c->log.buf);
        log_info("job=%s op=run result=interrupted", j->id);
        return;
    }
    remove_trees(c);
    j->finished_ns = dms_now_ns();
    j->status = c->kind == JOBRUN_OK          ? JOB_SUCCEEDED
                : c->kind == JOBRUN_CANCELLED ? JOB_CANCELLED
                                              : JOB_FAILED;
    dmsd_set_str(&j->reason, c->kind == JOBRUN_OK ? NULL : c->reason);
    if (c->kind == JOBRUN_OK)
        joblog_say(&c->log, "job %s succeeded in %.1fs: artifact %lld bytes (GET /job/%s/artifact)", j->id,
                   (double)(j->finished_ns - j->started_ns) / NS_PER_SEC, (long long)j->artifact_bytes,
                   j->id);
    else
        joblog_say(&c->log, "job %s %s: %s", j->id, job_status_name(j->status), c->reason);
    joblog_flush(&c->log);
    dmsu_buf_free(&c->log.buf);
    jobrun_persist(c);
    log_info("job=%s op=run result=%s reason=\"%s\"", j->id, job_status_name(j->status), c->reason);
}

void jobrun_run(const jobrun_env *env, job_slot *sl, job *j)
{
    run_ctx c = {.env = env, .sl = sl, .j = j, .kind = JOBRUN_FAILED};
    if (open_run(&c) == 0)
        run_steps(&c);
    end_run(&c);
}
