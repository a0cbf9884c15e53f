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
#include "../fdlimit.h"
#include "../confine/quota.h"
#include "../run/runner.h"
#include "buildlog.h"
#include "buildopts.h"
#include "buildreq.h"
#include "buildstate.h"
#include "../compose/release.h"
#include "composebuild.h"
#include "releaseprune.h"
#include "detect.h"
#include "git.h"
#include "queue.h"
#include "recipe.h"

#define BYTES_PER_MB            (1024LL * 1024)
#define BUILD_UNCACHED_RETRY_MS 10

struct builder {
    builder_deps dep;
    quota_deps quota; /* the disk quota a build is checked against (the deps' store, core, data dir) */
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

/* ---- one build ---- */

/* A new file (a new inode) for every build: a follower still reading the previous build's log (or the empty
 * one it made while the build was queued) sees the name point elsewhere and starts over on the new one
 * (api/logs.c). The previous build's is kept as build.out.1 / build.err.1. */
static int open_outputs(builder *bld, const char *dir, outputs *o, dms_error *err)
{
    int64_t max = (int64_t)bld->dep.cfg.log_max_mb * BYTES_PER_MB;
    int r;
    if ((r = dms_mkdir_p(dir, false, err)) < 0 ||
        (r = buildlog_open(&o->out, dir, "build.out", max, err)) < 0 ||
        (r = buildlog_open(&o->err, dir, "build.err", max, err)) < 0)
        return r;
    return 0;
}

/* recipe.c's lines for build.out. */
static void say_line(void *ud, const char *line, size_t len)
{
    on_output(ud, DMS_STREAM_STDOUT, line, len);
}

/* A cancelled build can still have been finished and tagged by the engine (the cancel reached it after the
 * last step, or it tags a moment later): that image belongs to no release. Removed now, and looked for once
 * more after a short while; a removal the engine refuses goes to the image collector. */
#define CANCELLED_TAG_RECHECK_MS 500

static void remove_cancelled_image(builder *bld, const char *droid_id, const char *tag)
{
    const builder_deps *dep = &bld->dep;
    for (int attempt = 0; attempt < 2; attempt++) {
        dms_error e = {0};
        int r = dms_executor_remove_image(dep->ex, tag, &e);
        if (r == 0 || r == -DMS_E_NOT_OURS)
            return;
        if (r != -DMS_E_NOT_FOUND) {
            store_gc_add(dep->st, tag, droid_id, NULL);
            if (dep->runner)
                runner_collect_images(dep->runner);
            return;
        }
        if (attempt == 0)
            usleep(CANCELLED_TAG_RECHECK_MS * 1000);
    }
}

/* How a build that did not succeed ended, once its cancel (if any) is known (buildstate_cancelled). False
 * when dmsd's own stop interrupted it. */
static bool classify_end(builder *bld, const buildq_job *job, build_end *ea)
{
    if (ea->kind == BUILD_END_OK || !dms_cancel_token_cancelled(job->token))
        return true;
    char why[BUILD_REASON_MAX];
    buildq_end cause = buildq_why(bld->q, job, why, sizeof(why));
    return buildstate_cancelled(ea, cause, why);
}

/* Records how the build ended (droid and build rows), removes what a cancelled or orphaned build made, prunes
 * old releases after a success. Frees d. */
static void finish_build(builder *bld, const buildq_job *job, droid *d, build_end *ea, const char *dir,
                         const char *built_tag)
{
    const builder_deps *dep = &bld->dep;
    store_build *b = ea->b;
    dms_error e2 = {0};
    if (core_mutate(dep->core, NULL, d->id, buildstate_end, ea, NULL, &e2) < 0) {
        log_warn("droid=%s build=%lld op=end error=\"%s\"", d->id, (long long)b->id, e2.message);
        ea->orphan = e2.code == DMS_E_NOT_FOUND;
    }
    if (ea->kind != BUILD_END_OK && dms_cancel_token_cancelled(job->token) && built_tag[0])
        remove_cancelled_image(bld, d->id, built_tag);
    if (ea->orphan) {
        /* Deleted while it built: what this build made has no owner left. */
        if (ea->kind == BUILD_END_OK && ea->compose_json)
            releaseprune_built_of(dep, d->id, ea->compose_json);
        if (ea->kind == BUILD_END_OK && b->image_id && !ea->compose_json &&
            dms_executor_remove_image(dep->ex, b->image_id, NULL) < 0) {
            store_gc_add(dep->st, b->image_id, d->id, NULL);
            if (dep->runner)
                runner_collect_images(dep->runner);
        }
        dms_rm_rf(dir, NULL);
        ea->kind = BUILD_END_CANCELLED; /* nothing to prune */
    }
    if (ea->kind == BUILD_END_OK)
        releaseprune_run(dep, d->id);
    droid_free(d);
}

/* One build on its way: what its steps share. */
typedef struct build_run {
    builder *bld;
    buildq_job *job;
    droid *d; /* a copy, the run's own */
    char dir[PATH_MAX];
    char src[PATH_MAX + 8];
    outputs o;
    build_end ea;
    char built_tag[BUILDREQ_TAG_MAX]; /* set once the engine was asked to build */
    char *dockerfile;                 /* the text the engine builds (recipe.c) */
    const char *compose;              /* a compose droid's file (composebuild_find), or NULL */
    char *compose_json;               /* what its release holds */
} build_run;

/* A step that failed: how the build ends (ea.kind is the caller's), and why. */
static int step_failed(build_run *br, build_end_kind kind, const char *reason)
{
    br->ea.kind = kind;
    snprintf(br->ea.reason, sizeof(br->ea.reason), "%s", reason);
    return -1;
}

/* The build starts (droid -> building), unless its droid is gone or it is no longer queued: then false, and
 * nothing else is to be done. */
static bool begin_build(build_run *br)
{
    const builder_deps *dep = &br->bld->dep;
    store_build *b = &br->job->b;
    dms_error err = {0};
    droid *d = core_get_copy(dep->core, b->droid_id);
    if (!d) {
        /* Not in the cache yet: core_create commits the droid and its build before it caches the droid, and
         * a worker can pick the build in between. Left queued (a build whose droid row is gone is no
         * candidate: the queue joins droids), it is picked again in a moment. */
        usleep(BUILD_UNCACHED_RETRY_MS * 1000);
        return false;
    }
    if (d->deleting) {
        b->status = BUILD_CANCELLED;
        dmsd_set_str(&b->reason, "the droid is gone");
        store_build_update(dep->st, b, NULL);
        droid_free(d);
        return false;
    }
    dmsd_droid_dir(dep->data_dir, d->id, br->dir, sizeof(br->dir));
    snprintf(br->src, sizeof(br->src), "%s/src", br->dir);
    build_begin ba = {.b = b};
    snprintf(ba.reason, sizeof(ba.reason), "build %lld (attempt %d): cloning %.200s", (long long)b->id,
             b->attempt + 1, d->repo);
    if (core_mutate(dep->core, NULL, d->id, buildstate_begin, &ba, NULL, &err) < 0) {
        dmsd_log(err.code == DMS_E_CONFLICT ? DMS_LOG_INFO : DMS_LOG_ERROR,
                 "droid=%s build=%lld op=begin error=\"%s\"", d->id, (long long)b->id, err.message);
        droid_free(d);
        return false;
    }
    br->d = d;
    return true;
}

/* The time limit starts, the log files open, and the user's disk quota is checked. */
static int prepare(build_run *br)
{
    const builder_deps *dep = &br->bld->dep;
    store_build *b = &br->job->b;
    droid *d = br->d;
    dms_error err = {0};
    int limit_s = build_timeout_effective(&dep->cfg, d->build_timeout_s);
    buildq_arm(br->bld->q, br->job, limit_s); /* from here on: the clone counts too */
    /* A build needs descriptors (its logs, the clone, the engine): without them it waits for a retry rather
     * than fail for good halfway (fdlimit.h). */
    if (fdlimit_check_now(0, 0, &err) < 0) {
        br->ea.kind = BUILD_END_RETRY;
        snprintf(br->ea.reason, sizeof(br->ea.reason), "%s", err.message);
        return -1;
    }
    if (open_outputs(br->bld, br->dir, &br->o, &err) < 0) {
        br->ea.kind = BUILD_END_RETRY;
        snprintf(br->ea.reason, sizeof(br->ea.reason), "cannot write build logs in %s: %s", br->dir,
                 err.message);
        return -1;
    }
    say(&br->o, "build %lld attempt %d of droid %s (%s); time limit %d s", (long long)b->id, b->attempt,
        d->name, d->id, limit_s);
    if (quota_check_disk(&br->bld->quota, d->user_id, &err) < 0) {
        snprintf(br->ea.reason, sizeof(br->ea.reason), "%s", err.message); /* a user fault: not retried */
        return -1;
    }
    return 0;
}

/* Which branch: the droid's, else the remote's default (looked up once, then kept on the droid). Caller owns
 * *branch. */
static int pick_branch(build_run *br, char **branch)
{
    const builder_deps *dep = &br->bld->dep;
    store_build *b = &br->job->b;
    droid *d = br->d;
    dms_error err = {0};
    *branch = b->branch ? strdup(b->branch) : NULL;
    if (*branch)
        return 0;
    gitx_remote_info info;
    if (gitx_ls_remote(d->repo, &info, &err) < 0)
        return step_failed(br, err.retryable ? BUILD_END_RETRY : BUILD_END_USER_FAULT, err.message);
    *branch = info.default_branch ? strdup(info.default_branch) : NULL;
    gitx_remote_info_clear(&info);
    if (!*branch) {
        snprintf(br->ea.reason, sizeof(br->ea.reason), "%s has no default branch (is it empty?)", d->repo);
        return -1;
    }
    dmsd_set_str(&b->branch, *branch);
    core_mutate(dep->core, NULL, d->id, buildstate_branch, *branch, NULL, NULL);
    return 0;
}

/* The branch (or the pinned commit) into <droid dir>/src, without its history. */
static int clone_source(build_run *br)
{
    store_build *b = &br->job->b;
    droid *d = br->d;
    dms_error err = {0};
    char *branch = NULL;
    if (pick_branch(br, &branch) < 0)
        return -1;
    say(&br->o, "cloning %s (branch %s%s%s)", d->repo, branch, b->commit_pin ? ", commit " : "",
        b->commit_pin ? b->commit_pin : "");
    dms_rm_rf(br->src, NULL);
    char sha[GIT_SHA_HEX + 1] = "";
    int r = gitx_clone(d->repo, branch, b->commit_pin, br->src, br->job->token, sha, &err);
    free(branch);
    if (r < 0)
        return step_failed(br, buildstate_kind_of(r, &err), err.message);
    dmsd_set_str(&b->commit_sha, sha);
    say(&br->o, "checked out %s", sha);
    /* The build context is the tree; the history is not needed (and would only slow the context upload). */
    char gitdir[PATH_MAX + 16];
    snprintf(gitdir, sizeof(gitdir), "%s/.git", br->src);
    dms_rm_rf(gitdir, NULL);
    return 0;
}

/* The repository's Dockerfile or a generated one, checked for what it may reach (build/recipe.c). */
static int make_recipe(build_run *br)
{
    dms_error err = {0};
    recipe_in rin = {.core = br->bld->dep.core,
                     .ex = br->bld->dep.ex,
                     .allowed_images = br->bld->dep.cfg.allowed_images,
                     .d = br->d,
                     .src = br->src,
                     .say = say_line,
                     .ud = &br->o};
    if (recipe_dockerfile(&rin, &br->dockerfile, &err) < 0) {
        step_failed(br, err.retryable ? BUILD_END_RETRY : BUILD_END_USER_FAULT, err.message);
        on_output(&br->o, DMS_STREAM_STDERR, br->ea.reason, strlen(br->ea.reason));
        return -1;
    }
    if (dms_cancel_token_cancelled(br->job->token)) {
        br->ea.kind = BUILD_END_CANCELLED;
        return -1;
    }
    return 0;
}

/* The engine builds the image (buildreq.h), its output going to build.out/build.err as it comes. */
static int build_image(build_run *br)
{
    const builder_deps *dep = &br->bld->dep;
    store_build *b = &br->job->b;
    dms_error err = {0};
    buildreq bq;
    buildreq_make(&bq, &dep->cfg, br->d->id, b->id, br->src, br->dockerfile);
    snprintf(br->built_tag, sizeof(br->built_tag), "%s", bq.tag);
    dms_build_result res = {0};
    say(&br->o, "building image %s", bq.tag);
    int r = dms_executor_build(dep->ex, &bq.req, on_output, &br->o, br->job->token, &res, &err);
    if (r < 0 && res.image_id[0]) { /* a step image the engine still used: the image collector removes it */
        store_gc_add(dep->st, res.image_id, br->d->id, NULL);
        if (dep->runner)
            runner_collect_images(dep->runner);
    }
    if (r < 0)
        return step_failed(br, buildstate_kind_of(r, &err), err.message);
    dmsd_set_str(&b->image_id, res.image_id[0] ? res.image_id : bq.tag);
    dmsd_set_str(&b->tag, bq.tag);
    br->ea.image_bytes = quota_image_bytes(dep->ex, b->image_id);
    say(&br->o, "built %s (%s)", bq.tag, res.image_id);
    br->ea.kind = BUILD_END_OK;
    return 0;
}

/* Removes what a compose build made before it failed (the collector retries what the engine refuses). */
static void remove_built(build_run *br, char **built)
{
    const builder_deps *dep = &br->bld->dep;
    bool gc = false;
    for (size_t i = 0; built && built[i]; i++)
        gc |= releaseprune_remove(dep, br->d->id, built[i], NULL);
    if (gc && dep->runner)
        runner_collect_images(dep->runner);
}

/* The compose member of the droid's newest release whose images are kept, or NULL. Caller frees. */
static char *newest_compose(build_run *br)
{
    store_release *rel = NULL;
    size_t n = 0;
    char *json = NULL;
    if (store_releases_list(br->bld->dep.st, br->d->id, &rel, &n, NULL) < 0)
        return NULL;
    for (size_t i = 0; i < n && !json; i++)
        if (!rel[i].image_removed && rel[i].compose_json)
            json = strdup(rel[i].compose_json);
    store_releases_free(rel, n);
    return json;
}

/* A compose droid: every service built or checked (composebuild.h), all or none; the routed service's image
 * is the build's. */
static int build_compose(build_run *br)
{
    const builder_deps *dep = &br->bld->dep;
    store_build *b = &br->job->b;
    dms_error err = {0};
    say(&br->o, "compose file %s", br->compose);
    char binds[PATH_MAX + 16];
    snprintf(binds, sizeof(binds), "%s/binds", br->dir);
    composebuild_in in = {.ex = dep->ex,
                          .core = dep->core,
                          .cfg = &dep->cfg,
                          .d = br->d,
                          .build_id = b->id,
                          .src = br->src,
                          .file = br->compose,
                          .binds_dir = binds,
                          .token = br->job->token,
                          .out = on_output,
                          .ud = &br->o};
    char *prev = newest_compose(br);
    in.prev_json = prev;
    composebuild_result res;
    int r = composebuild_run(&in, &res, &err);
    free(prev);
    if (r < 0) {
        remove_built(br, res.built);
        composebuild_result_clear(&res);
        step_failed(br, buildstate_kind_of(r, &err), err.message);
        on_output(&br->o, DMS_STREAM_STDERR, br->ea.reason, strlen(br->ea.reason));
        return -1;
    }
    dmsd_set_str(&b->image_id, res.image_id);
    dmsd_set_str(&b->tag, res.tag);
    br->ea.image_bytes = res.image_bytes;
    br->compose_json = res.compose_json;
    res.compose_json = NULL;
    br->ea.compose_json = br->compose_json;
    composebuild_result_clear(&res);
    br->ea.kind = BUILD_END_OK;
    return 0;
}

/* Whether the checkout is a compose droid's (br->compose set), or which of the two builds it takes. */
static int find_compose(build_run *br)
{
    dms_error err = {0};
    int r = composebuild_find(br->src, br->d, &br->compose, &err);
    if (r < 0)
        return step_failed(br, BUILD_END_USER_FAULT, err.message);
    if (r == 0)
        br->compose = NULL;
    return 0;
}

/* However it went: the log's last line, dmsd's log, and the build's end recorded (finish_build), unless
 * dmsd's own stop interrupted it. Frees the droid. */
static void end_build(build_run *br)
{
    store_build *b = &br->job->b;
    droid *d = br->d;
    bool ended = classify_end(br->bld, br->job, &br->ea);
    if (br->ea.kind != BUILD_END_OK)
        say(&br->o, "%s: %s", buildstate_kind_said(br->ea.kind), br->ea.reason);
    buildlog_close(&br->o.out);
    buildlog_close(&br->o.err);
    free(br->dockerfile);
    log_info("droid=%s build=%lld op=build result=%s reason=\"%s\"", d->id, (long long)b->id,
             buildstate_kind_name(br->ea.kind), br->ea.reason);
    if (!ended) {
        /* Interrupted by dmsd's own shutdown, not cancelled by anyone: the row stays "running", and the next
         * start queues it again (store_builds_requeue_running). */
        log_info("droid=%s build=%lld op=build note=\"interrupted by shutdown; resumes at the next start\"",
                 d->id, (long long)b->id);
        droid_free(d);
    } else {
        finish_build(br->bld, br->job, d, &br->ea, br->dir, br->built_tag);
    }
    free(br->compose_json);
}

static void run_build(builder *bld, buildq_job *job)
{
    build_run br = {.bld = bld,
                    .job = job,
                    .o = {.out = {.fd = -1}, .err = {.fd = -1}},
                    .ea = {.b = &job->b, .kind = BUILD_END_USER_FAULT}};
    if (!begin_build(&br))
        return;
    if (prepare(&br) == 0 && clone_source(&br) == 0 && find_compose(&br) == 0) {
        if (br.compose)
            build_compose(&br);
        else if (make_recipe(&br) == 0)
            build_image(&br);
    }
    end_build(&br);
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

int builder_start(builder **out, const builder_deps *deps, dms_error *err)
{
    builder *b = calloc(1, sizeof(*b));
    if (!b)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    b->dep = *deps;
    b->quota = (quota_deps){.st = deps->st,
                            .core = deps->core,
                            .data_dir = deps->data_dir,
                            .user_max_disk_mb = deps->user_max_disk_mb};
    int n = 0;
    int r = store_builds_requeue_running(deps->st, &n, err);
    if (r < 0 || (r = buildq_open(&b->q, deps->st, deps->cfg.workers, deps->cfg.user_max, err)) < 0) {
        builder_stop(b);
        return r;
    }
    if (n)
        log_info("component=builder op=requeue interrupted=%d", n);
    for (; b->n_threads < deps->cfg.workers; b->n_threads++) {
        if (pthread_create(&b->threads[b->n_threads], NULL, worker, b) != 0) {
            builder_stop(b);
            return dms_error_set(err, DMS_E_IO, NULL, "cannot start the build workers");
        }
    }
    log_info("component=builder workers=%d per_user=%d", deps->cfg.workers, deps->cfg.user_max);
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
        r = store_builds_cancel_queued(b->dep.st, droid_id, reason, &ca.n, err);
    } else {
        r = core_mutate(b->dep.core, NULL, droid_id, mut_cancel_queued, &ca, NULL, err);
    }
    if (found)
        *found = running || ca.n > 0;
    if (running || ca.n)
        log_info("droid=%s op=cancel-build running=%d queued=%d reason=\"%s\"", droid_id, running, ca.n,
                 reason);
    builder_kick(b);
    return r;
}
