/* builder.c - the build workers (see builder.h).
 *
 * One build, step by step: mark it running (droid -> building), clone into <droid dir>/src, check for a
 * Dockerfile, build through the executor with the output going to build.out/build.err as it comes, then
 * record the release and hand the droid to the runner (-> starting). The old container, if any, keeps serving
 * through all of it: only the runner replaces it, once the new one runs. Which build a worker runs next, and
 * what cancels it (a user, newer code, its time limit, dmsd stopping), is queue.c's; the log files are
 * buildlog.c's. */
#include "builder.h"

#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "../confine/quota.h"
#include "../run/runner.h"
#include "buildlog.h"
#include "buildopts.h"
#include "detect.h"
#include "git.h"
#include "queue.h"
#include "recipe.h"

#define REASON_MAX   BUILDQ_REASON_MAX
#define BYTES_PER_MB (1024LL * 1024)

struct builder {
    app *a;
    buildq *q;
    pthread_t threads[BUILD_WORKERS_MAX];
    int n_threads;
};

int64_t builder_backoff_ms(int attempts)
{
    int64_t ms = BUILD_BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && ms < BUILD_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < BUILD_BACKOFF_MAX_MS ? ms : BUILD_BACKOFF_MAX_MS;
}

/* ---- build output files ---- */

/* build.out and build.err, each capped (DMS_BUILD_LOG_MAX_MB) and rotated once (buildlog.h). */
typedef struct outputs {
    buildlog out;
    buildlog err;
} outputs;

static void on_output(void *ud, dms_stream_type stream, const char *line, size_t len)
{
    outputs *o = ud;
    buildlog_line(stream == DMS_STREAM_STDERR ? &o->err : &o->out, line, len);
}

/* A line of our own in build.out, so the log tells the whole story (even past the cap: buildlog_note). */
static void say(outputs *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(outputs *o, const char *fmt, ...)
{
    char line[BUILDLOG_NOTE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    buildlog_note(&o->out, "%s", line);
}

/* ---- state changes ---- */

typedef struct begin_args {
    store_build *b;
    char reason[REASON_MAX];
} begin_args;

static int mut_begin(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    begin_args *ba = ud;
    /* Cancelled or superseded between the pick and now: it must not come back to life. */
    store_build cur = {0};
    int r = store_build_get(core_tx_store(tx), ba->b->id, &cur, err);
    build_status was = cur.status;
    store_build_clear(&cur);
    if (r < 0)
        return r;
    if (r == 0 || was != BUILD_QUEUED)
        return dms_error_set(err, DMS_E_CONFLICT, NULL, "build %lld is no longer queued (%s)",
                             (long long)ba->b->id, r ? build_status_name(was) : "gone");
    ba->b->status = BUILD_RUNNING;
    ba->b->attempt++;
    ba->b->started_ns = dmsd_now_ns();
    free(ba->b->reason);
    ba->b->reason = NULL;
    if ((r = store_build_update(core_tx_store(tx), ba->b, err)) < 0)
        return r;
    return core_tx_set_state(tx, d, DROID_BUILDING, ba->reason, err);
}

static int mut_branch(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    if (!d->branch && dmsd_set_str(&d->branch, ud) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return 0;
}

typedef enum end_kind { END_OK, END_USER_FAULT, END_RETRY, END_CANCELLED } end_kind;

typedef struct end_args {
    builder *bld;
    store_build *b;
    end_kind kind;
    char reason[REASON_MAX];
    int64_t release;     /* out (END_OK) */
    int64_t image_bytes; /* END_OK: the image's size as the engine reports it (the disk quota counts it) */
    bool orphan;         /* out: the droid is being deleted; what the build made must go */
    bool superseded; /* cancelled for a newer build, which is queued: the droid's state is left to it */
} end_args;

static int mut_end(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    end_args *ea = ud;
    store *st = core_tx_store(tx);
    store_build *b = ea->b;
    char why[REASON_MAX + 128];
    int r;
    b->finished_ns = dmsd_now_ns();
    if (dmsd_set_str(&b->reason, ea->kind == END_OK ? NULL : ea->reason) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    /* An older release still runs, or sleeps (snooze) and serves when a request wakes it. */
    bool serving = d->run_id != NULL || (d->asleep && d->want_running);
    droid_state serving_state = d->asleep ? DROID_SNOOZED : DROID_RUNNING;
    if (d->deleting) {
        ea->orphan = true;
        b->status = BUILD_CANCELLED;
        return store_build_update(st, b, err);
    }
    switch (ea->kind) {
    case END_OK: {
        b->status = BUILD_SUCCEEDED;
        _cleanup_free_ char *resources = droid_resources_to_json(&d->resources);
        store_release rel = {.seq = d->release_seq + 1,
                             .build_id = b->id,
                             .image_id = b->image_id,
                             .tag = b->tag,
                             .commit_sha = b->commit_sha,
                             .env_json = d->env_json,
                             .port = d->port,
                             .resources_json = resources,
                             .image_bytes = ea->image_bytes,
                             .created_ns = b->finished_ns};
        snprintf(rel.droid_id, sizeof(rel.droid_id), "%s", d->id);
        if ((r = store_build_update(st, b, err)) < 0 || (r = store_release_insert(st, &rel, err)) < 0)
            return r;
        d->release_seq = rel.seq;
        d->want_release = rel.seq;
        d->crash_count = d->start_failures = 0;
        d->retry_at_ns = 0;
        if (dmsd_set_str(&d->commit_sha, b->commit_sha) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        ea->release = rel.seq;
        snprintf(why, sizeof(why), "build %lld succeeded: release %lld (commit %.12s)", (long long)b->id,
                 (long long)rel.seq, b->commit_sha ? b->commit_sha : "?");
        core_tx_kick_runner(tx);
        if (!d->want_running)
            return core_tx_set_state(tx, d, DROID_STOPPED, why, err);
        return core_tx_set_state(tx, d, DROID_STARTING, why, err);
    }
    case END_RETRY:
        if (b->attempt < BUILD_MAX_ATTEMPTS) {
            int64_t delay = builder_backoff_ms(b->attempt);
            b->status = BUILD_QUEUED;
            b->next_try_ns = dmsd_now_ns() + delay * NS_PER_MS;
            snprintf(why, sizeof(why), "build %lld attempt %d/%d failed: %s; retrying in %llds",
                     (long long)b->id, b->attempt, BUILD_MAX_ATTEMPTS, ea->reason, (long long)(delay / 1000));
            if ((r = store_build_update(st, b, err)) < 0)
                return r;
            if (serving)
                return core_tx_set_state(tx, d, serving_state, why, err);
            return core_tx_set_state(tx, d, DROID_PENDING, why, err);
        }
        snprintf(why, sizeof(why), "build %lld failed after %d attempts: %s", (long long)b->id, b->attempt,
                 ea->reason);
        b->status = BUILD_FAILED;
        break;
    case END_USER_FAULT:
        b->status = BUILD_FAILED;
        snprintf(why, sizeof(why), "build %lld failed: %s", (long long)b->id, ea->reason);
        break;
    case END_CANCELLED:
        b->status = BUILD_CANCELLED;
        snprintf(why, sizeof(why), "%s", ea->reason);
        break;
    }
    if ((r = store_build_update(st, b, err)) < 0)
        return r;
    if (d->deleting || ea->superseded)
        return 0;
    if (serving) {
        /* The old release keeps serving; say so, and say what happened to the build. */
        char note[REASON_MAX + 200];
        snprintf(note, sizeof(note), "%s; still serving release %lld", why, (long long)d->run_release);
        return core_tx_set_state(tx, d, d->state == DROID_BUILDING ? serving_state : d->state, note, err);
    }
    if (ea->kind == END_CANCELLED || !d->want_running)
        return core_tx_set_state(tx, d, DROID_STOPPED, why, err);
    return core_tx_set_state(tx, d, DROID_FAILED, why, err);
}

/* ---- one build ---- */

/* A new file (a new inode) for every build: a follower still reading the previous build's log (or the empty
 * one it made while the build was queued) sees the name point elsewhere and starts over on the new one
 * (api/logs.c). The previous build's is kept as build.out.1 / build.err.1. */
static int open_outputs(builder *bld, const char *dir, outputs *o, dms_error *err)
{
    int64_t max = (int64_t)bld->a->cfg.build_log_max_mb * BYTES_PER_MB;
    int r;
    if ((r = dms_mkdir_p(dir, false, err)) < 0 ||
        (r = buildlog_open(&o->out, dir, "build.out", max, err)) < 0 ||
        (r = buildlog_open(&o->err, dir, "build.err", max, err)) < 0)
        return r;
    return 0;
}

/* Removes images of releases beyond the newest keep_releases, never the one that runs or is wanted. */
static void prune_releases(builder *bld, const char *droid_id)
{
    app *a = bld->a;
    droid *d = core_get_copy(a->core, droid_id);
    store_release *rel = NULL;
    size_t n = 0;
    dms_error err = {0};
    if (!d || store_releases_list(a->st, droid_id, &rel, &n, &err) < 0) {
        droid_free(d);
        return;
    }
    size_t kept = 0;
    bool gc = false;
    for (size_t i = 0; i < n; i++) {
        if (rel[i].image_removed)
            continue;
        bool protected_ = rel[i].seq == d->want_release || (d->run_id && rel[i].seq == d->run_release);
        if (kept < (size_t)a->cfg.keep_releases || protected_) {
            kept++;
            continue;
        }
        dms_error e = {0};
        int r = dms_executor_remove_image(a->ex, rel[i].image_id, &e);
        if (r < 0 && r != -DMS_E_NOT_FOUND) {
            /* Still marked removed (the release cannot be rolled back to any more); the collector retries. */
            log_warn("droid=%s op=prune release=%lld image=%s error=\"%s\" note=\"retried by the image "
                     "collector\"",
                     droid_id, (long long)rel[i].seq, rel[i].image_id, e.message);
            store_gc_add(a->st, rel[i].image_id, droid_id, NULL);
            gc = true;
        }
        store_release_mark_removed(a->st, droid_id, rel[i].seq, NULL);
        log_info("droid=%s op=prune release=%lld image=%s", droid_id, (long long)rel[i].seq, rel[i].image_id);
    }
    store_releases_free(rel, n);
    droid_free(d);
    if (gc && a->runner)
        runner_collect_images(a->runner);
}

/* recipe.c's lines for build.out. */
static void say_line(void *ud, const char *line, size_t len)
{
    on_output(ud, DMS_STREAM_STDOUT, line, len);
}

/* A cancelled build can still have been finished and tagged by the engine (the cancel reached it after the last
 * step, or it tags a moment later): that image belongs to no release. Removed now, and looked for once more
 * after a short while; a removal the engine refuses goes to the image collector. */
#define CANCELLED_TAG_RECHECK_MS 500

static void remove_cancelled_image(builder *bld, const char *droid_id, const char *tag)
{
    app *a = bld->a;
    for (int attempt = 0; attempt < 2; attempt++) {
        dms_error e = {0};
        int r = dms_executor_remove_image(a->ex, tag, &e);
        if (r == 0 || r == -DMS_E_NOT_OURS)
            return;
        if (r != -DMS_E_NOT_FOUND) {
            store_gc_add(a->st, tag, droid_id, NULL);
            if (a->runner)
                runner_collect_images(a->runner);
            return;
        }
        if (attempt == 0)
            usleep(CANCELLED_TAG_RECHECK_MS * 1000);
    }
}

/* How a build that did not succeed ended, once its cancel (if any) is known: past its time limit it failed
 * (the user's build, not retried), superseded it leaves the droid to the newer build. False when dmsd's own
 * stop interrupted it: nobody ended it, and the next start queues it again. */
static bool classify_end(builder *bld, const buildq_job *job, end_args *ea)
{
    if (ea->kind == END_OK || !dms_cancel_token_cancelled(job->token))
        return true;
    char why[REASON_MAX];
    buildq_end cause = buildq_why(bld->q, job, why, sizeof(why));
    ea->kind = cause == BUILDQ_TIMED_OUT ? END_USER_FAULT : END_CANCELLED;
    snprintf(ea->reason, sizeof(ea->reason), "%s", why[0] ? why : "cancelled");
    ea->superseded = cause == BUILDQ_SUPERSEDED;
    return cause != BUILDQ_STOPPING;
}

/* Records how the build ended (droid and build rows), removes what a cancelled or orphaned build made, prunes
 * old releases after a success. Frees d. */
static void finish_build(builder *bld, const buildq_job *job, droid *d, end_args *ea, const char *dir,
                         const char *built_tag)
{
    app *a = bld->a;
    store_build *b = ea->b;
    dms_error e2 = {0};
    if (core_mutate(a->core, NULL, d->id, mut_end, ea, NULL, &e2) < 0) {
        log_warn("droid=%s build=%lld op=end error=\"%s\"", d->id, (long long)b->id, e2.message);
        ea->orphan = e2.code == DMS_E_NOT_FOUND;
    }
    if (ea->kind != END_OK && dms_cancel_token_cancelled(job->token) && built_tag[0])
        remove_cancelled_image(bld, d->id, built_tag);
    if (ea->orphan) {
        /* Deleted while it built: what this build made has no owner left. */
        if (ea->kind == END_OK && b->image_id && dms_executor_remove_image(a->ex, b->image_id, NULL) < 0) {
            store_gc_add(a->st, b->image_id, d->id, NULL);
            if (a->runner)
                runner_collect_images(a->runner);
        }
        dms_rm_rf(dir, NULL);
        ea->kind = END_CANCELLED; /* nothing to prune */
    }
    if (ea->kind == END_OK)
        prune_releases(bld, d->id);
    droid_free(d);
}

static void run_build(builder *bld, buildq_job *job)
{
    app *a = bld->a;
    store_build *b = &job->b;
    dms_error err = {0};
    end_args ea = {.bld = bld, .b = b, .kind = END_USER_FAULT};
    char built_tag[128] = ""; /* set once the engine was asked to build */
    char *dockerfile = NULL;  /* the text the engine builds (recipe.c) */
    droid *d = core_get_copy(a->core, b->droid_id);
    if (!d || d->deleting) {
        b->status = BUILD_CANCELLED;
        dmsd_set_str(&b->reason, "the droid is gone");
        store_build_update(a->st, b, NULL);
        droid_free(d);
        return;
    }
    char dir[PATH_MAX], src[PATH_MAX + 8];
    app_droid_dir(a, d->id, dir, sizeof(dir));
    snprintf(src, sizeof(src), "%s/src", dir);
    begin_args ba = {.b = b};
    snprintf(ba.reason, sizeof(ba.reason), "build %lld (attempt %d): cloning %.200s", (long long)b->id,
             b->attempt + 1, d->repo);
    if (core_mutate(a->core, NULL, d->id, mut_begin, &ba, NULL, &err) < 0) {
        dmsd_log(err.code == DMS_E_CONFLICT ? DMS_LOG_INFO : DMS_LOG_ERROR,
                 "droid=%s build=%lld op=begin error=\"%s\"", d->id, (long long)b->id, err.message);
        droid_free(d);
        return;
    }
    int limit_s = build_timeout_effective(&a->cfg, d->build_timeout_s);
    buildq_arm(bld->q, job, limit_s); /* from here on: the clone counts too */
    outputs o = {.out = {.fd = -1}, .err = {.fd = -1}};
    if (open_outputs(bld, dir, &o, &err) < 0) {
        ea.kind = END_RETRY;
        snprintf(ea.reason, sizeof(ea.reason), "cannot write build logs in %s: %s", dir, err.message);
        goto end;
    }
    say(&o, "build %lld attempt %d of droid %s (%s); time limit %d s", (long long)b->id, b->attempt, d->name,
        d->id, limit_s);
    if (quota_check_disk(a, d->user_id, &err) < 0) {
        snprintf(ea.reason, sizeof(ea.reason), "%s", err.message); /* a user fault: not retried */
        goto end;
    }

    /* Which branch: the droid's, else the remote's default (looked up once, then kept on the droid). */
    char *branch = b->branch ? strdup(b->branch) : NULL;
    if (!branch) {
        gitx_remote_info info;
        if (gitx_ls_remote(d->repo, &info, &err) < 0) {
            ea.kind = err.retryable ? END_RETRY : END_USER_FAULT;
            snprintf(ea.reason, sizeof(ea.reason), "%s", err.message);
            goto end;
        }
        branch = info.default_branch ? strdup(info.default_branch) : NULL;
        gitx_remote_info_clear(&info);
        if (!branch) {
            snprintf(ea.reason, sizeof(ea.reason), "%s has no default branch (is it empty?)", d->repo);
            goto end;
        }
        dmsd_set_str(&b->branch, branch);
        core_mutate(a->core, NULL, d->id, mut_branch, branch, NULL, NULL);
    }
    say(&o, "cloning %s (branch %s%s%s)", d->repo, branch, b->commit_pin ? ", commit " : "",
        b->commit_pin ? b->commit_pin : "");
    dms_rm_rf(src, NULL);
    char sha[GIT_SHA_HEX + 1] = "";
    int r = gitx_clone(d->repo, branch, b->commit_pin, src, job->token, sha, &err);
    free(branch);
    if (r < 0) {
        ea.kind = r == -DMS_E_CANCELLED ? END_CANCELLED : err.retryable ? END_RETRY : END_USER_FAULT;
        snprintf(ea.reason, sizeof(ea.reason), "%s", err.message);
        goto end;
    }
    dmsd_set_str(&b->commit_sha, sha);
    say(&o, "checked out %s", sha);
    /* The build context is the tree; the history is not needed (and would only slow the context upload). */
    char gitdir[PATH_MAX + 16];
    snprintf(gitdir, sizeof(gitdir), "%s/.git", src);
    dms_rm_rf(gitdir, NULL);

    /* The repository's Dockerfile or a generated one, checked for what it may reach (build/recipe.c). */
    recipe_in rin = {.a = a, .d = d, .src = src, .say = say_line, .ud = &o};
    if ((r = recipe_dockerfile(&rin, &dockerfile, &err)) < 0) {
        ea.kind = err.retryable ? END_RETRY : END_USER_FAULT;
        snprintf(ea.reason, sizeof(ea.reason), "%s", err.message);
        on_output(&o, DMS_STREAM_STDERR, ea.reason, strlen(ea.reason));
        goto end;
    }
    if (dms_cancel_token_cancelled(job->token)) {
        ea.kind = END_CANCELLED;
        goto end;
    }
    char tag[128], build_id[DMS_ID_MAX + 1], label_droid[64], label_build[64];
    snprintf(tag, sizeof(tag), "dms-droid/%s:b%lld", d->id, (long long)b->id);
    snprintf(built_tag, sizeof(built_tag), "%s", tag);
    snprintf(build_id, sizeof(build_id), "%s-b%lld", d->id, (long long)b->id);
    snprintf(label_droid, sizeof(label_droid), "dms.droid=%s", d->id);
    snprintf(label_build, sizeof(label_build), "dms.build=%lld", (long long)b->id);
    char *labels[] = {label_droid, label_build, NULL};
    dms_build_request req = {.build_id = build_id,
                             .job_id = d->id,
                             .context_dir = src,
                             .tag = tag,
                             .labels = labels,
                             .memory_bytes = (int64_t)a->cfg.build_memory_mb * BYTES_PER_MB,
                             .cpu_millis = a->cfg.build_cpu_millis,
                             .dockerfile_text = dockerfile};
    dms_build_result res = {0};
    say(&o, "building image %s", tag);
    r = dms_executor_build(a->ex, &req, on_output, &o, job->token, &res, &err);
    if (r < 0 && res.image_id[0]) { /* a step image the engine still used: the image collector removes it */
        store_gc_add(a->st, res.image_id, d->id, NULL);
        if (a->runner)
            runner_collect_images(a->runner);
    }
    if (r < 0) {
        ea.kind = r == -DMS_E_CANCELLED      ? END_CANCELLED
                  : r == -DMS_E_BUILD_FAILED ? END_USER_FAULT
                  : err.retryable            ? END_RETRY
                                             : END_USER_FAULT;
        snprintf(ea.reason, sizeof(ea.reason), "%s", err.message);
        goto end;
    }
    dmsd_set_str(&b->image_id, res.image_id[0] ? res.image_id : tag);
    dmsd_set_str(&b->tag, tag);
    ea.image_bytes = quota_image_bytes(a, b->image_id);
    say(&o, "built %s (%s)", tag, res.image_id);
    ea.kind = END_OK;
end:;
    bool ended = classify_end(bld, job, &ea);
    if (ea.kind != END_OK)
        say(&o, "%s: %s",
            ea.kind == END_CANCELLED ? "cancelled"
            : ea.kind == END_RETRY   ? "failed (will retry)"
                                     : "failed",
            ea.reason);
    buildlog_close(&o.out);
    buildlog_close(&o.err);
    free(dockerfile);
    log_info("droid=%s build=%lld op=build result=%s reason=\"%s\"", d->id, (long long)b->id,
             ea.kind == END_OK          ? "ok"
             : ea.kind == END_RETRY     ? "retry"
             : ea.kind == END_CANCELLED ? "cancelled"
                                        : "failed",
             ea.reason);
    if (!ended) {
        /* Interrupted by dmsd's own shutdown, not cancelled by anyone: the row stays "running", and the next
         * start queues it again (store_builds_requeue_running). */
        log_info("droid=%s build=%lld op=build note=\"interrupted by shutdown; resumes at the next start\"",
                 d->id, (long long)b->id);
        droid_free(d);
        return;
    }
    finish_build(bld, job, d, &ea, dir, built_tag);
}

/* ---- the workers ---- */

static void *worker(void *arg)
{
    builder *bld = arg;
    buildq_job job;
    while (buildq_take(bld->q, &job) == 1) {
        run_build(bld, &job);
        store_build_clear(&job.b);
        buildq_done(bld->q, &job);
    }
    return NULL;
}

int builder_start(builder **out, app *a, dms_error *err)
{
    builder *b = calloc(1, sizeof(*b));
    if (!b)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    b->a = a;
    int n = 0;
    int r = store_builds_requeue_running(a->st, &n, err);
    if (r < 0 || (r = buildq_open(&b->q, a->st, a->cfg.build_workers, a->cfg.build_user_max, err)) < 0) {
        builder_stop(b);
        return r;
    }
    if (n)
        log_info("component=builder op=requeue interrupted=%d", n);
    for (; b->n_threads < a->cfg.build_workers; b->n_threads++) {
        if (pthread_create(&b->threads[b->n_threads], NULL, worker, b) != 0) {
            builder_stop(b);
            return dms_error_set(err, DMS_E_IO, NULL, "cannot start the build workers");
        }
    }
    log_info("component=builder workers=%d per_user=%d", a->cfg.build_workers, a->cfg.build_user_max);
    *out = b;
    return 0;
}

void builder_stop(builder *b)
{
    if (!b)
        return;
    /* Running builds are interrupted, not cancelled: a restart queues them again
     * (store_builds_requeue_running). */
    buildq_stop(b->q);
    for (int i = 0; i < b->n_threads; i++)
        pthread_join(b->threads[i], NULL);
    buildq_close(b->q);
    free(b);
}

void builder_kick(builder *b)
{
    if (b)
        buildq_kick(b->q);
}

typedef struct cancel_args {
    const char *reason;
    int n;
} cancel_args;

/* Queued builds only (nothing running): the droid waits for nothing now. */
static int mut_cancel_queued(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    cancel_args *ca = ud;
    int r = store_builds_cancel_queued(core_tx_store(tx), d->id, ca->reason, &ca->n, err);
    if (r < 0 || ca->n == 0 || d->deleting)
        return r;
    if (d->run_id || (d->asleep && d->want_running))
        return core_tx_set_state(tx, d,
                                 d->state == DROID_BUILDING || d->state == DROID_PENDING
                                     ? (d->asleep ? DROID_SNOOZED : DROID_RUNNING)
                                     : d->state,
                                 ca->reason, err);
    if (d->state == DROID_PENDING || d->state == DROID_BUILDING)
        return core_tx_set_state(tx, d, DROID_STOPPED, ca->reason, err);
    return 0;
}

int64_t builder_running(builder *b, const char *droid_id)
{
    return buildq_running(b->q, droid_id);
}

void builder_supersede(builder *b, const char *droid_id, int64_t build_id)
{
    if (buildq_supersede(b->q, droid_id, build_id))
        log_info("droid=%s op=cancel-build reason=superseded", droid_id);
    builder_kick(b);
}

int builder_cancel(builder *b, const char *droid_id, const char *reason, bool *found, dms_error *err)
{
    bool running = buildq_cancel(b->q, droid_id, reason);
    cancel_args ca = {.reason = reason};
    int r = 0;
    if (running) {
        /* The running build ends as cancelled by itself; queued ones (retries) go too. */
        r = store_builds_cancel_queued(b->a->st, droid_id, reason, &ca.n, err);
    } else {
        r = core_mutate(b->a->core, NULL, droid_id, mut_cancel_queued, &ca, NULL, err);
    }
    if (found)
        *found = running || ca.n > 0;
    if (running || ca.n)
        log_info("droid=%s op=cancel-build running=%d queued=%d reason=\"%s\"", droid_id, running, ca.n,
                 reason);
    builder_kick(b);
    return r;
}
