/* jobstep.c - a step that runs in a container (see jobstep.h). */
#include "jobstep.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <dms/backend.h>

#include "../common.h"
#include "jobs.h"

#define STEP_POLL_MS     250  /* a step's loop wakes at least this often (log flushes) */
#define LOG_DRAIN_MAX_MS 5000 /* after the end, how long the rest of the output may take to arrive */

const char *jobs_builder_image(job_pm pm)
{
    switch (pm) {
    case JOB_PM_NPM:
    case JOB_PM_YARN:
    case JOB_PM_PNPM:
        return JOB_IMAGE_NODE;
    case JOB_PM_PIP:
        return JOB_IMAGE_PYTHON;
    default:
        return JOB_IMAGE_BASE;
    }
}

/* ---- the request ---- */

int jobstep_request(jobstep_req *out, const jobstep_in *in, char *reason, size_t size)
{
    const job *j = in->j;
    const char *name = job_step_name(in->step);
    memset(out, 0, sizeof(*out));
    snprintf(out->exec_id, sizeof(out->exec_id), "%s-%s-%d", j->id, name, j->attempt);
    snprintf(out->label_job, sizeof(out->label_job), "dms.build-job=%s", j->id);
    snprintf(out->label_step, sizeof(out->label_step), "dms.step=%s", name);
    out->labels[0] = out->label_job;
    out->labels[1] = out->label_step;
    /* The package step reads the workspace and writes only /out; it needs no cache (and none of the tools a
     * build may have planted there). */
    bool package = in->step == JOB_STEP_PACKAGE;
    size_t nm = 0;
    out->mounts[nm++] =
        (dms_mount){.type = DMS_MOUNT_BIND, .source = in->src, .target = JOB_WORKSPACE, .read_only = package};
    if (j->cache_volume && !package)
        out->mounts[nm++] =
            (dms_mount){.type = DMS_MOUNT_VOLUME, .source = j->cache_volume, .target = JOB_CACHE_DIR};
    if (package)
        out->mounts[nm++] = (dms_mount){.type = DMS_MOUNT_BIND, .source = in->out, .target = JOB_OUT_DIR};
    out->env = job_step_env(j, in->step, in->artifact_max_mb);
    out->cmd[0] = JOB_SHELL;
    out->cmd[1] = "-c";
    out->cmd[2] = (char *)in->script;
    /* Its user's network (today: the default bridge, shared by every user's jobs), the job limits and the
     * security part of every container dmsd runs for users (confine/). */
    dms_error nerr = {0};
    int nr = confine_user_network(in->executor_id, j->user_id, out->net, sizeof(out->net), &nerr);
    out->req = (dms_exec_request){
        .job_id = j->id,
        .execution_id = out->exec_id,
        .engine = {.image = jobs_builder_image(j->pm),
                   .cmd = out->cmd,
                   .env = out->env,
                   .working_dir = JOB_WORKSPACE},
        .resources = confine_resources(in->limits),
        .mounts = out->mounts,
        .n_mounts = nm,
        .network_mode = DMS_NET_NAMED,
        .network_name = out->net,
        .labels = out->labels,
        .timeout_ms = in->timeout_ms,
        .stop_grace_ms = JOB_STOP_GRACE_MS,
        /* An init as PID 1 passes a cancel's SIGTERM on to the shell; a shell as PID 1 would ignore it and
         * every cancel would wait for the SIGKILL. */
        .init = true,
        .security = *confine_security(),
    };
    if (nr < 0) {
        snprintf(reason, size, "step %s: %s", name, nerr.message);
        return -1;
    }
    if (!out->env) {
        snprintf(reason, size, "out of memory");
        return -1;
    }
    return 0;
}

void jobstep_request_clear(jobstep_req *r)
{
    dmsu_strv_free(r->env);
    r->env = NULL;
}

/* ---- the run ---- */

static void describe_end(const dms_exec_result *res, char *buf, size_t size)
{
    switch (res->outcome) {
    case DMS_OUTCOME_EXITED:
        snprintf(buf, size, "exited with code %d", res->exit_code);
        break;
    case DMS_OUTCOME_SIGNALED:
        snprintf(buf, size, "killed by signal %d", res->signal);
        break;
    case DMS_OUTCOME_OOM_KILLED:
        snprintf(buf, size, "killed: out of memory");
        break;
    case DMS_OUTCOME_TIMED_OUT:
        snprintf(buf, size, "timed out");
        break;
    default:
        snprintf(buf, size, "%s%s%s", dms_outcome_name(res->outcome), res->error[0] ? ": " : "", res->error);
    }
}

/* Copies what the stream has now into the log; 0 at its end, 1 if more may come, < 0 on error. */
static int drain(dms_log_stream *ls, joblog *w)
{
    for (;;) {
        dms_log_frame f;
        dms_error err = {0};
        int r = dms_log_stream_next(ls, 0, &f, &err);
        if (r == 1) {
            joblog_write(w, f.data, f.len);
            continue;
        }
        if (r == 0)
            return 0;
        return r == -DMS_E_TIMEOUT ? 1 : r;
    }
}

/* Why a step that did not exit 0 failed, into c->reason: our own checks' exit codes say it in words. */
static void step_failure(run_ctx *c, job_step step, const dms_exec_result *res, const char *how)
{
    int code = res->outcome == DMS_OUTCOME_EXITED ? res->exit_code : -1;
    const char *name = job_step_name(step);
    if (code == JOB_EXIT_NO_MANIFEST && step == JOB_STEP_INSTALL)
        snprintf(c->reason, sizeof(c->reason), "step install: the %s project file is missing (see the log)",
                 job_pm_name(c->j->pm));
    else if (code == JOB_EXIT_NO_DIST && step == JOB_STEP_PACKAGE)
        snprintf(c->reason, sizeof(c->reason), "the dist directory \"%s\" does not exist after the build",
                 c->j->dist_dir);
    else if (code == JOB_EXIT_DIST_OUT && step == JOB_STEP_PACKAGE)
        snprintf(c->reason, sizeof(c->reason), "the dist directory %s leads out of the repository",
                 c->j->dist_dir);
    else if (code == JOB_EXIT_TOO_BIG && step == JOB_STEP_PACKAGE)
        snprintf(c->reason, sizeof(c->reason), "the artifact is larger than %d MB (DMS_JOB_ARTIFACT_MAX_MB)",
                 c->env->artifact_max_mb);
    else if (res->outcome == DMS_OUTCOME_TIMED_OUT)
        snprintf(c->reason, sizeof(c->reason), "step %s timed out after %llds", name,
                 (long long)(c->env->step_timeout_ms / 1000));
    else
        snprintf(c->reason, sizeof(c->reason), "step %s %s", name, how);
}

/* A started step as its loop watches it. */
typedef struct step_watch {
    dms_executor *ex;
    const char *exec_id;
    const char *name;
    dms_waiter *wt;     /* NULL: the loop falls back to timed waits */
    dms_log_stream *ls; /* NULL: the step runs with no output in the log, and says so */
    bool stream_open;
    bool cancel_sent;
    dms_exec_result res;
} step_watch;

/* The execution starts; -1 with c->kind/c->reason set if it does not (what it left is removed). */
static int start_step(run_ctx *c, const jobstep_req *sp, const char *name)
{
    dms_executor *ex = c->env->ex;
    dms_error err = {0};
    if (dms_executor_start(ex, &sp->req, &err) == 0)
        return 0;
    c->kind = JOBRUN_FAILED;
    if (err.code == DMS_E_IMAGE)
        snprintf(c->reason, sizeof(c->reason),
                 "step %s: the builder image %s is missing (make it with scripts/stack-images): %s", name,
                 sp->req.engine.image, err.message);
    else if (err.code == DMS_E_CANCELLED)
        jobrun_set_cancelled(c, name);
    else
        snprintf(c->reason, sizeof(c->reason), "step %s could not start: %s", name, err.message);
    dms_executor_remove(ex, sp->exec_id, NULL);
    return -1;
}

/* Without a waiter the loop falls back to timed waits; without a stream the step runs with no output in the
 * log, and says so. */
static void open_watch(run_ctx *c, step_watch *w)
{
    dms_error err = {0};
    dms_log_options lo = DMS_LOG_OPTIONS_INIT;
    lo.follow = true;
    if (dms_executor_waiter(w->ex, w->exec_id, &w->wt, &err) < 0)
        log_warn("job=%s exec=%s op=waiter error=\"%s\"", c->j->id, w->exec_id, err.message);
    if (dms_executor_log_stream(w->ex, w->exec_id, &lo, &w->ls, &err) < 0) {
        log_warn("job=%s exec=%s op=log-stream error=\"%s\"", c->j->id, w->exec_id, err.message);
        joblog_say(&c->log, "step %s: its output cannot be followed (%s)", w->name, err.message);
    }
    w->stream_open = w->ls != NULL;
}

/* A cancel (the token fired): the step is stopped, once. */
static void send_cancel(run_ctx *c, step_watch *w)
{
    w->cancel_sent = true;
    /* dmsd stopping kills at once: the job runs again from the start at the next start anyway. */
    int64_t grace = jobrun_stopping(c) ? 0 : JOB_STOP_GRACE_MS;
    if (!jobrun_stopping(c))
        joblog_say(&c->log, "cancel requested: stopping step %s (SIGTERM, SIGKILL after %lld ms)", w->name,
                   (long long)grace);
    joblog_flush(&c->log);
    dms_executor_cancel_grace(w->ex, w->exec_id, grace, NULL);
}

/* Until the step ends: its output into the log, a cancel passed on. */
static void watch_step(run_ctx *c, step_watch *w)
{
    bool done = false;
    while (!done) {
        struct pollfd p[3];
        nfds_t n = 0;
        p[n++] = (struct pollfd){.fd = dms_cancel_token_fd(c->sl->token), .events = POLLIN};
        if (w->wt)
            p[n++] = (struct pollfd){.fd = dms_waiter_fd(w->wt), .events = POLLIN};
        if (w->stream_open)
            p[n++] = (struct pollfd){.fd = dms_log_stream_fd(w->ls), .events = POLLIN};
        poll(p, n, STEP_POLL_MS);
        if (w->stream_open && drain(w->ls, &c->log) <= 0)
            w->stream_open = false;
        if (!w->cancel_sent && dms_cancel_token_cancelled(c->sl->token))
            send_cancel(c, w);
        if (w->wt)
            done = dms_waiter_result(w->wt, 0, &w->res, NULL) == 0;
        else
            done = dms_executor_wait(w->ex, w->exec_id, STEP_POLL_MS, &w->res, NULL) == 0;
        joblog_tick(&c->log);
    }
    /* The follow ends with the workload; what it still holds comes now. */
    for (int64_t t = dms_mono_ms(); w->stream_open && dms_mono_ms() - t < LOG_DRAIN_MAX_MS;) {
        struct pollfd p = {.fd = dms_log_stream_fd(w->ls), .events = POLLIN};
        poll(&p, 1, STEP_POLL_MS);
        w->stream_open = drain(w->ls, &c->log) > 0;
    }
}

/* How the step ended, into the log or c->kind/c->reason: 0 when it exited 0. */
static int step_result(run_ctx *c, job_step step, step_watch *w, int64_t ms)
{
    const dms_exec_result *res = &w->res;
    char how[DMS_ERROR_MSG_MAX + 64];
    describe_end(res, how, sizeof(how));
    if (res->outcome == DMS_OUTCOME_EXITED && res->exit_code == 0) {
        joblog_say(&c->log, "step %s done in %.1fs", w->name, (double)ms / 1000);
        return 0;
    }
    if (res->outcome == DMS_OUTCOME_CANCELLED || w->cancel_sent) {
        jobrun_set_cancelled(c, w->name);
        return -1;
    }
    c->kind = JOBRUN_FAILED;
    c->j->exit_code = res->outcome == DMS_OUTCOME_EXITED ? res->exit_code : -1;
    step_failure(c, step, res, how);
    return -1;
}

int jobstep_run(run_ctx *c, job_step step, const char *script, int64_t *ms_out)
{
    job *j = c->j;
    const char *name = job_step_name(step);
    jobrun_begin_step(c, step);
    if (jobrun_cancel_asked(c)) {
        jobrun_set_cancelled(c, name);
        return -1;
    }
    jobstep_in in = {.j = j,
                     .step = step,
                     .script = script,
                     .src = c->src,
                     .out = c->out,
                     .executor_id = dms_executor_id(c->env->ex),
                     .limits = c->env->limits,
                     .timeout_ms = c->env->step_timeout_ms,
                     .artifact_max_mb = c->env->artifact_max_mb};
    jobstep_req sp;
    if (jobstep_request(&sp, &in, c->reason, sizeof(c->reason)) < 0) {
        c->kind = JOBRUN_FAILED;
        jobstep_request_clear(&sp);
        return -1;
    }
    if (step == JOB_STEP_BUILD)
        joblog_say(&c->log, "step build in %s: %s", sp.req.engine.image, j->build_command);
    else
        joblog_say(&c->log, "step %s in %s", name, sp.req.engine.image);
    int64_t t0 = dms_mono_ms();
    if (start_step(c, &sp, name) < 0) {
        jobstep_request_clear(&sp);
        return -1;
    }
    step_watch w = {.ex = c->env->ex, .exec_id = sp.exec_id, .name = name};
    open_watch(c, &w);
    c->log.watch_cache = step == JOB_STEP_INSTALL;
    watch_step(c, &w);
    c->log.watch_cache = false;
    dms_log_stream_free(w.ls);
    dms_waiter_free(w.wt);
    int64_t ms = dms_mono_ms() - t0;
    if (ms_out)
        *ms_out = ms;
    int rc = step_result(c, step, &w, ms);
    dms_exec_result_clear(&w.res);
    /* Its output is in the job's log now: the container and the executor's copy can go. */
    dms_executor_remove(w.ex, sp.exec_id, NULL);
    jobstep_request_clear(&sp);
    return rc;
}
