/* jobs.c - the job queue workers (see jobs.h).
 *
 * One worker runs one job, step by step. A step that runs in a container is watched without blocking on any
 * one thing: poll() over the execution's waiter fd (its end), its log stream fd (new output, copied into the
 * job's log) and the job's cancel token fd (a cancel request). */
#include "jobs.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../build/git.h"
#include "../common.h"
#include "../confine/confine.h"
#include "artifact.h"
#include "jobstore.h"

#define QUEUE_POLL_MAX_MS     60000 /* re-read the queue at least this often (kicks do the work) */
#define STEP_POLL_MS          250   /* a step's loop wakes at least this often (log flushes) */
#define LOG_FLUSH_MS          250   /* output is written to the store at least this often */
#define LOG_CHUNK_BYTES       (16 * 1024)
#define LOG_DRAIN_MAX_MS      5000 /* after the end, how long the rest of the output may take to arrive */
#define CLONE_ATTEMPTS        3
#define CLONE_BACKOFF_BASE_MS 2000
#define REASON_MAX            JOB_REASON_MAX
#define CACHE_WARM_MARK       "[dms] dependency cache: warm"
#define BYTES_PER_MB          (1024 * 1024)

typedef struct slot {
    char job_id[JOB_ID_SIZE];
    dms_cancel_token *token;
    bool stopping; /* dmsd stops: not a user's cancel */
} slot;

struct jobs {
    app *a;
    int64_t step_timeout_ms;
    int user_max_running;
    int user_max_jobs;
    int artifact_max_mb;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    int n_workers;
    pthread_t *threads;
    slot *slots; /* one per worker */
};

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

static int job_dir(jobs *js, const char *id, const char *sub, char *buf, size_t size)
{
    return dms_snprintf_ok(buf, size, "%s/jobs/%s%s%s", js->a->cfg.data_dir, id, sub ? "/" : "",
                           sub ? sub : "") < 0
               ? -DMS_E_INVALID
               : 0;
}

int jobs_artifact_path(jobs *js, const char *id, char *buf, size_t size)
{
    return job_dir(js, id, ARTIFACT_NAME, buf, size);
}

int jobs_artifact_open(jobs *js, const char *id, int64_t *bytes, dms_error *err)
{
    char dir[PATH_MAX];
    if (job_dir(js, id, NULL, dir, sizeof(dir)) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "the data dir path is too long");
    return artifact_open(dir, bytes, err);
}

int jobs_default_user_max(int concurrency)
{
    return concurrency > 1 ? concurrency - 1 : 1;
}

/* ---- the job's log: chunks in the store ---- */

typedef struct logw {
    store *st;
    const char *id;
    int64_t seq;
    dms_buf buf;
    int64_t last_flush_ms;
    size_t total;
    bool truncated;
    bool watch_cache; /* the install step: look for the cache report */
    bool cache_warm;
} logw;

static void logw_flush(logw *w)
{
    if (!w->buf.len)
        return;
    dms_error err = {0};
    if (jobstore_log_append(w->st, w->id, w->seq + 1, dmsd_now_ns(), w->buf.data, w->buf.len, &err) < 0)
        log_warn("job=%s op=log error=\"%s\"", w->id, err.message);
    else
        w->seq++;
    dms_buf_reset(&w->buf);
    w->last_flush_ms = dmsd_mono_ms();
}

static void logw_write(logw *w, const char *data, size_t len)
{
    if (w->truncated)
        return;
    if (w->total + len > JOB_LOG_MAX_BYTES) {
        static const char note[] = "\n[dms] the log reached its size limit; further output is not kept\n";
        w->truncated = true;
        dms_buf_append(&w->buf, note, sizeof(note) - 1);
        logw_flush(w);
        return;
    }
    if (w->watch_cache && len >= strlen(CACHE_WARM_MARK) &&
        memcmp(data, CACHE_WARM_MARK, strlen(CACHE_WARM_MARK)) == 0)
        w->cache_warm = true;
    w->total += len;
    dms_buf_append(&w->buf, data, len);
    if (w->buf.len >= LOG_CHUNK_BYTES)
        logw_flush(w);
}

static void logw_tick(logw *w)
{
    if (w->buf.len && dmsd_mono_ms() - w->last_flush_ms >= LOG_FLUSH_MS)
        logw_flush(w);
}

static void say(logw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(logw *w, const char *fmt, ...)
{
    char line[1024] = "[dms] ";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + 6, sizeof(line) - 7, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    line[n++] = '\n';
    logw_write(w, line, n);
}

/* ---- one job ---- */

typedef enum end_kind { END_OK, END_FAILED, END_CANCELLED, END_INTERRUPTED } end_kind;

typedef struct run_ctx {
    jobs *js;
    slot *sl;
    job *j;
    logw log;
    char base[PATH_MAX]; /* jobs/<id>: dmsd's own; no container sees it, only its src/ and out/ */
    char src[PATH_MAX];
    char out[PATH_MAX];
    end_kind kind;
    char reason[REASON_MAX];
} run_ctx;

static bool stopping(run_ctx *c)
{
    pthread_mutex_lock(&c->js->lock);
    bool s = c->sl->stopping;
    pthread_mutex_unlock(&c->js->lock);
    return s;
}

/* A cancel asked through the store (it may have come before the worker had its token). */
static bool cancel_asked(run_ctx *c)
{
    if (dms_cancel_token_cancelled(c->sl->token))
        return true;
    job now;
    job_init(&now);
    bool asked = jobstore_get(c->js->a->st, c->j->id, &now, NULL) == 0 && now.cancel_requested;
    job_clear(&now);
    if (asked)
        dms_cancel_token_cancel(c->sl->token);
    return asked;
}

static void set_cancelled(run_ctx *c, const char *during)
{
    if (stopping(c)) {
        c->kind = END_INTERRUPTED;
        snprintf(c->reason, sizeof(c->reason), "interrupted: dmsd is stopping");
        return;
    }
    c->kind = END_CANCELLED;
    snprintf(c->reason, sizeof(c->reason), "cancelled during %s", during);
}

static void persist(run_ctx *c)
{
    dms_error err = {0};
    if (jobstore_update(c->js->a->st, c->j, &err) < 0)
        log_warn("job=%s op=update error=\"%s\"", c->j->id, err.message);
}

static void begin_step(run_ctx *c, job_step step)
{
    dmsd_set_str(&c->j->step, job_step_name(step));
    persist(c);
}

static int clone_step(run_ctx *c)
{
    job *j = c->j;
    begin_step(c, JOB_STEP_CLONE);
    if (cancel_asked(c)) { /* asked between the claim and the worker's token */
        set_cancelled(c, "clone");
        return -1;
    }
    say(&c->log, "cloning %s (branch %s)", j->repo_url, j->branch);
    char sha[GIT_SHA_HEX + 1] = "";
    for (int attempt = 1;; attempt++) {
        dms_error err = {0};
        dms_rm_rf(c->src, NULL);
        int r = gitx_clone(j->repo_url, j->branch, NULL, c->src, c->sl->token, sha, &err);
        if (r == 0)
            break;
        if (r == -DMS_E_CANCELLED || cancel_asked(c)) {
            set_cancelled(c, "clone");
            return -1;
        }
        if (!err.retryable || attempt >= CLONE_ATTEMPTS) {
            c->kind = END_FAILED;
            snprintf(c->reason, sizeof(c->reason), "clone failed: %s", err.message);
            return -1;
        }
        int64_t delay = CLONE_BACKOFF_BASE_MS << (attempt - 1);
        say(&c->log, "clone attempt %d/%d failed (%s); retrying in %llds", attempt, CLONE_ATTEMPTS,
            err.message, (long long)(delay / 1000));
        struct pollfd p = {.fd = dms_cancel_token_fd(c->sl->token), .events = POLLIN};
        poll(&p, 1, (int)delay);
    }
    dmsd_set_str(&j->commit_sha, sha);
    persist(c);
    say(&c->log, "checked out %s", sha);
    return 0;
}

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
static int drain(dms_log_stream *ls, logw *w)
{
    for (;;) {
        dms_log_frame f;
        dms_error err = {0};
        int r = dms_log_stream_next(ls, 0, &f, &err);
        if (r == 1) {
            logw_write(w, f.data, f.len);
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
                 c->js->artifact_max_mb);
    else if (res->outcome == DMS_OUTCOME_TIMED_OUT)
        snprintf(c->reason, sizeof(c->reason), "step %s timed out after %llds", name,
                 (long long)(c->js->step_timeout_ms / 1000));
    else
        snprintf(c->reason, sizeof(c->reason), "step %s %s", name, how);
}

/* Runs one step's script in the builder image; 0 when it exited 0, else sets c->kind/c->reason. */
static int container_step(run_ctx *c, job_step step, const char *script, int64_t *ms_out)
{
    jobs *js = c->js;
    job *j = c->j;
    dms_executor *ex = js->a->ex;
    const char *name = job_step_name(step);
    begin_step(c, step);
    if (cancel_asked(c)) {
        set_cancelled(c, name);
        return -1;
    }
    char exec_id[DMS_ID_MAX + 1], label_job[64], label_step[64];
    snprintf(exec_id, sizeof(exec_id), "%s-%s-%d", j->id, name, j->attempt);
    snprintf(label_job, sizeof(label_job), "dms.build-job=%s", j->id);
    snprintf(label_step, sizeof(label_step), "dms.step=%s", name);
    char *labels[] = {label_job, label_step, NULL};
    /* The package step reads the workspace and writes only /out; it needs no cache (and none of the tools a
     * build may have planted there). */
    bool package = step == JOB_STEP_PACKAGE;
    dms_mount mounts[3];
    size_t nm = 0;
    mounts[nm++] =
        (dms_mount){.type = DMS_MOUNT_BIND, .source = c->src, .target = JOB_WORKSPACE, .read_only = package};
    if (j->cache_volume && !package)
        mounts[nm++] =
            (dms_mount){.type = DMS_MOUNT_VOLUME, .source = j->cache_volume, .target = JOB_CACHE_DIR};
    if (package)
        mounts[nm++] = (dms_mount){.type = DMS_MOUNT_BIND, .source = c->out, .target = JOB_OUT_DIR};
    _cleanup_strv_ char **env = job_step_env(j, step, js->artifact_max_mb);
    char *cmd[] = {JOB_SHELL, "-c", (char *)script, NULL};
    const char *image = jobs_builder_image(j->pm);
    /* Its user's network (today: the default bridge, shared by every user's jobs), the job limits and the
     * security part of every container dmsd runs for users (confine/). */
    char net[CONFINE_NETWORK_MAX] = "";
    dms_error nerr = {0};
    int nr = confine_user_network(dms_executor_id(ex), j->user_id, net, sizeof(net), &nerr);
    dms_exec_request req = {
        .job_id = j->id,
        .execution_id = exec_id,
        .engine = {.image = image, .cmd = cmd, .env = env, .working_dir = JOB_WORKSPACE},
        .resources = confine_resources(js->a->cfg.confine.job),
        .mounts = mounts,
        .n_mounts = nm,
        .network_mode = DMS_NET_NAMED,
        .network_name = net,
        .labels = labels,
        .timeout_ms = js->step_timeout_ms,
        .stop_grace_ms = JOB_STOP_GRACE_MS,
        /* An init as PID 1 passes a cancel's SIGTERM on to the shell; a shell as PID 1 would ignore it and
         * every cancel would wait for the SIGKILL. */
        .init = true,
        .security = *confine_security(),
    };
    if (nr < 0) {
        c->kind = END_FAILED;
        snprintf(c->reason, sizeof(c->reason), "step %s: %s", name, nerr.message);
        return -1;
    }
    if (!env) {
        c->kind = END_FAILED;
        snprintf(c->reason, sizeof(c->reason), "out of memory");
        return -1;
    }
    if (step == JOB_STEP_BUILD)
        say(&c->log, "step build in %s: %s", image, j->build_command);
    else
        say(&c->log, "step %s in %s", name, image);
    int64_t t0 = dmsd_mono_ms();
    dms_error err = {0};
    if (dms_executor_start(ex, &req, &err) < 0) {
        c->kind = END_FAILED;
        if (err.code == DMS_E_IMAGE)
            snprintf(c->reason, sizeof(c->reason),
                     "step %s: the builder image %s is missing (make it with scripts/stack-images): %s", name,
                     image, err.message);
        else if (err.code == DMS_E_CANCELLED)
            set_cancelled(c, name);
        else
            snprintf(c->reason, sizeof(c->reason), "step %s could not start: %s", name, err.message);
        dms_executor_remove(ex, exec_id, NULL);
        return -1;
    }
    dms_waiter *wt = NULL;
    dms_log_stream *ls = NULL;
    dms_log_options lo = DMS_LOG_OPTIONS_INIT;
    lo.follow = true;
    /* Without a waiter the loop falls back to timed waits; without a stream the step runs with no output in
     * the log, and says so. */
    if (dms_executor_waiter(ex, exec_id, &wt, &err) < 0)
        log_warn("job=%s exec=%s op=waiter error=\"%s\"", j->id, exec_id, err.message);
    if (dms_executor_log_stream(ex, exec_id, &lo, &ls, &err) < 0) {
        log_warn("job=%s exec=%s op=log-stream error=\"%s\"", j->id, exec_id, err.message);
        say(&c->log, "step %s: its output cannot be followed (%s)", name, err.message);
    }
    dms_exec_result res = {0};
    bool done = false, cancel_sent = false, stream_open = ls != NULL;
    c->log.watch_cache = step == JOB_STEP_INSTALL;
    while (!done) {
        struct pollfd p[3];
        nfds_t n = 0;
        p[n++] = (struct pollfd){.fd = dms_cancel_token_fd(c->sl->token), .events = POLLIN};
        if (wt)
            p[n++] = (struct pollfd){.fd = dms_waiter_fd(wt), .events = POLLIN};
        if (stream_open)
            p[n++] = (struct pollfd){.fd = dms_log_stream_fd(ls), .events = POLLIN};
        poll(p, n, STEP_POLL_MS);
        if (stream_open && drain(ls, &c->log) <= 0)
            stream_open = false;
        if (!cancel_sent && dms_cancel_token_cancelled(c->sl->token)) {
            cancel_sent = true;
            /* dmsd stopping kills at once: the job runs again from the start at the next start anyway. */
            int64_t grace = stopping(c) ? 0 : JOB_STOP_GRACE_MS;
            if (!stopping(c))
                say(&c->log, "cancel requested: stopping step %s (SIGTERM, SIGKILL after %lld ms)", name,
                    (long long)grace);
            logw_flush(&c->log);
            dms_executor_cancel_grace(ex, exec_id, grace, NULL);
        }
        if (wt)
            done = dms_waiter_result(wt, 0, &res, NULL) == 0;
        else
            done = dms_executor_wait(ex, exec_id, STEP_POLL_MS, &res, NULL) == 0;
        logw_tick(&c->log);
    }
    /* The follow ends with the workload; what it still holds comes now. */
    for (int64_t t = dmsd_mono_ms(); stream_open && dmsd_mono_ms() - t < LOG_DRAIN_MAX_MS;) {
        struct pollfd p = {.fd = dms_log_stream_fd(ls), .events = POLLIN};
        poll(&p, 1, STEP_POLL_MS);
        stream_open = drain(ls, &c->log) > 0;
    }
    c->log.watch_cache = false;
    dms_log_stream_free(ls);
    dms_waiter_free(wt);
    int64_t ms = dmsd_mono_ms() - t0;
    if (ms_out)
        *ms_out = ms;
    char how[DMS_ERROR_MSG_MAX + 64];
    describe_end(&res, how, sizeof(how));
    int rc = 0;
    if (res.outcome == DMS_OUTCOME_EXITED && res.exit_code == 0) {
        say(&c->log, "step %s done in %.1fs", name, (double)ms / 1000);
    } else if (res.outcome == DMS_OUTCOME_CANCELLED || cancel_sent) {
        set_cancelled(c, name);
        rc = -1;
    } else {
        c->kind = END_FAILED;
        j->exit_code = res.outcome == DMS_OUTCOME_EXITED ? res.exit_code : -1;
        step_failure(c, step, &res, how);
        rc = -1;
    }
    dms_exec_result_clear(&res);
    /* Its output is in the job's log now: the container and the executor's copy can go. */
    dms_executor_remove(ex, exec_id, NULL);
    return rc;
}

/* The artifact out of the package step's tree into the job's own directory, once: the container that wrote
 * it has ended, so nothing changes it any more; what it is is checked all the same (artifact.h). */
static int take_out(run_ctx *c)
{
    dms_error err = {0};
    int64_t bytes = 0;
    int64_t max = (int64_t)c->js->artifact_max_mb * BYTES_PER_MB;
    if (artifact_take_out(c->out, c->base, max, &bytes, &err) < 0) {
        c->kind = END_FAILED;
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

static void run_job(jobs *js, slot *sl, job *j)
{
    run_ctx c = {.js = js, .sl = sl, .j = j, .kind = END_FAILED};
    c.log.st = js->a->st;
    c.log.id = j->id;
    c.log.last_flush_ms = dmsd_mono_ms();
    c.log.buf.max = 0;
    /* Continue the log where it is (the queue line, an earlier attempt). */
    jobstore_log_last_seq(js->a->st, j->id, &c.log.seq, NULL);
    char artifact[PATH_MAX];
    if (job_dir(js, j->id, NULL, c.base, sizeof(c.base)) < 0 ||
        job_dir(js, j->id, "src", c.src, sizeof(c.src)) < 0 ||
        job_dir(js, j->id, "out", c.out, sizeof(c.out)) < 0 ||
        job_dir(js, j->id, ARTIFACT_NAME, artifact, sizeof(artifact)) < 0) {
        snprintf(c.reason, sizeof(c.reason), "the data dir path is too long");
        goto end;
    }
    dms_error err = {0};
    /* What an earlier attempt left (a restart interrupted it). */
    dms_rm_rf(c.out, NULL);
    unlink(artifact);
    if (dms_mkdir_p(c.out, false, &err) < 0) {
        snprintf(c.reason, sizeof(c.reason), "cannot make %s: %s", c.out, err.message);
        goto end;
    }
    say(&c.log, "job %s attempt %d started: project %s, deployment %s, package manager %s", j->id, j->attempt,
        j->project_id, j->deployment_id, job_pm_name(j->pm));
    j->artifact_bytes = -1;
    j->install_ms = j->build_ms = -1;
    j->exit_code = -1;
    j->cache_warm = false;
    if (clone_step(&c) < 0)
        goto end;
    const char *install = job_install_script(j->pm);
    if (install) {
        if (j->cache_volume)
            say(&c.log, "dependency cache: volume %s at %s", j->cache_volume, JOB_CACHE_DIR);
        if (container_step(&c, JOB_STEP_INSTALL, install, &j->install_ms) < 0)
            goto end;
        j->cache_warm = c.log.cache_warm;
        persist(&c);
    }
    if (container_step(&c, JOB_STEP_BUILD, j->build_command, &j->build_ms) < 0)
        goto end;
    persist(&c);
    if (container_step(&c, JOB_STEP_PACKAGE, job_package_script(), NULL) < 0 || take_out(&c) < 0)
        goto end;
    c.kind = END_OK;
end:
    if (c.kind == END_INTERRUPTED) {
        /* Stays "running": the next start of dmsd queues it again. */
        logw_flush(&c.log);
        dms_buf_free(&c.log.buf);
        log_info("job=%s op=run result=interrupted", j->id);
        return;
    }
    remove_trees(&c);
    j->finished_ns = dmsd_now_ns();
    j->status = c.kind == END_OK ? JOB_SUCCEEDED : c.kind == END_CANCELLED ? JOB_CANCELLED : JOB_FAILED;
    dmsd_set_str(&j->reason, c.kind == END_OK ? NULL : c.reason);
    if (c.kind == END_OK)
        say(&c.log, "job %s succeeded in %.1fs: artifact %lld bytes (GET /job/%s/artifact)", j->id,
            (double)(j->finished_ns - j->started_ns) / NS_PER_SEC, (long long)j->artifact_bytes, j->id);
    else
        say(&c.log, "job %s %s: %s", j->id, job_status_name(j->status), c.reason);
    logw_flush(&c.log);
    dms_buf_free(&c.log.buf);
    persist(&c);
    log_info("job=%s op=run result=%s reason=\"%s\"", j->id, job_status_name(j->status), c.reason);
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
    slot *sl = &js->slots[wa->index];
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
            r = jobstore_claim_next(js->a->st, js->user_max_running, &j, &err);
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
            run_job(js, sl, &j);
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
        if (dms_executor_cancel_grace(js->a->ex, exec_id, 0, NULL) == 0)
            log_info("job=%s exec=%s op=stop-leftover", id, exec_id);
        dms_executor_remove(js->a->ex, exec_id, NULL);
    }
}

int jobs_start(jobs **out, app *a, const jobs_config *cfg, dms_error *err)
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
    js->a = a;
    js->step_timeout_ms = cfg->step_timeout_ms;
    js->user_max_running =
        cfg->user_max_running > 0 ? cfg->user_max_running : jobs_default_user_max(concurrency);
    js->user_max_jobs = cfg->user_max_jobs;
    js->artifact_max_mb = cfg->artifact_max_mb;
    pthread_mutex_init(&js->lock, NULL);
    pthread_cond_init(&js->cond, NULL);
    js->threads = calloc((size_t)concurrency, sizeof(*js->threads));
    js->slots = calloc((size_t)concurrency, sizeof(*js->slots));
    if (!js->threads || !js->slots) {
        jobs_stop(js);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    char **ids = NULL;
    int *attempts = NULL;
    int r = jobstore_requeue_interrupted(a->st, &ids, &attempts, err);
    if (r < 0) {
        jobs_stop(js);
        return r;
    }
    for (size_t i = 0; ids && ids[i]; i++) {
        stop_leftovers(js, ids[i], attempts[i]);
        log_info("job=%s op=requeue note=\"interrupted by a restart\"", ids[i]);
    }
    dms_strv_free(ids);
    free(attempts);
    char jobs_dir[PATH_MAX];
    if (dms_snprintf_ok(jobs_dir, sizeof(jobs_dir), "%s/jobs", a->cfg.data_dir) == 0) {
        int adopted = artifact_adopt_legacy(jobs_dir, (int64_t)js->artifact_max_mb * BYTES_PER_MB);
        if (adopted)
            log_info("component=jobs op=adopt-artifacts count=%d note=\"taken out of an older dmsd's out/\"",
                     adopted);
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
    char hex[2 * JOB_ID_HEX_BYTES + 1];
    int r;
    if ((r = dmsd_random_hex(hex, JOB_ID_HEX_BYTES, err)) < 0)
        return r;
    snprintf(j->id, sizeof(j->id), "j%s", hex);
    j->status = JOB_QUEUED;
    j->created_ns = dmsd_now_ns();
    if (j->pm != JOB_PM_NONE) {
        char vol[DMS_ID_MAX + 1];
        if ((r = job_cache_volume_name(js->a->cfg.executor_id, j->user_id, j->project_id, vol, sizeof(vol),
                                       err)) < 0 ||
            (r = dmsd_set_str(&j->cache_volume, vol)) < 0)
            return r < 0 && err && err->code ? r : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    char line[1024];
    snprintf(line, sizeof(line), "[dms] job %s queued: project %s, deployment %s, branch %s of %s\n", j->id,
             j->project_id, j->deployment_id, j->branch, j->repo_url);
    if ((r = store_begin(js->a->st, err)) < 0)
        return r;
    if ((r = jobstore_check_quota(js->a->st, j->user_id, js->user_max_jobs, err)) < 0 ||
        (r = jobstore_insert(js->a->st, j, err)) < 0 ||
        (r = jobstore_log_append(js->a->st, j->id, 1, j->created_ns, line, strlen(line), err)) < 0) {
        store_rollback(js->a->st);
        return r;
    }
    if ((r = store_commit(js->a->st, err)) < 0)
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
    int r = jobstore_request_cancel(js->a->st, user, id, "cancelled before it started", &was, jid, err);
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
