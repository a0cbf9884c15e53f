/* builder.c - the build queue worker (see builder.h).
 *
 * One build, step by step: mark it running (droid -> building), clone into <droid dir>/src, check for a
 * Dockerfile, build through the executor with the output going to build.out/build.err as it comes, then
 * record the release and hand the droid to the runner (-> starting). The old container, if any, keeps serving
 * through all of it: only the runner replaces it, once the new one runs. */
#include "builder.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "../confine/quota.h"
#include "../run/runner.h"
#include "detect.h"
#include "git.h"

#define QUEUE_POLL_MAX_MS 60000 /* re-read the queue at least this often (a safety net; kicks do the work)   \
                                 */
#define REASON_MAX 400

struct builder {
    app *a;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    /* the build in progress */
    char cur_droid[DROID_ID_SIZE];
    int64_t cur_build;
    dms_cancel_token *cur_token;
    char cur_reason[REASON_MAX];
    bool cur_superseded; /* cancelled because newer code is wanted: the next build takes over the droid's
                            state */
};

int64_t builder_backoff_ms(int attempts)
{
    int64_t ms = BUILD_BACKOFF_BASE_MS;
    for (int i = 1; i < attempts && ms < BUILD_BACKOFF_MAX_MS; i++)
        ms *= 2;
    return ms < BUILD_BACKOFF_MAX_MS ? ms : BUILD_BACKOFF_MAX_MS;
}

/* ---- build output files ---- */

typedef struct outputs {
    int out;
    int err;
} outputs;

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void on_output(void *ud, dms_stream_type stream, const char *line, size_t len)
{
    outputs *o = ud;
    int fd = stream == DMS_STREAM_STDERR ? o->err : o->out;
    if (fd < 0)
        return;
    write_all(fd, line, len);
    write_all(fd, "\n", 1);
}

/* A line of our own in build.out, so the log tells the whole story. */
static void say(outputs *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(outputs *o, const char *fmt, ...)
{
    char line[1024] = "[dms] ";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + 6, sizeof(line) - 6, fmt, ap);
    va_end(ap);
    on_output(o, DMS_STREAM_STDOUT, line, strlen(line));
}

/* ---- state changes ---- */

typedef struct begin_args {
    store_build *b;
    char reason[REASON_MAX];
} begin_args;

static int mut_begin(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    begin_args *ba = ud;
    int r;
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
 * (api/logs.c). */
static int open_output(const char *dir, const char *name)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    if (unlink(p) < 0 && errno != ENOENT)
        return -1;
    return open(p, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
}

static bool cancelled(builder *bld)
{
    pthread_mutex_lock(&bld->lock);
    bool c = bld->cur_token && dms_cancel_token_cancelled(bld->cur_token);
    pthread_mutex_unlock(&bld->lock);
    return c;
}

static void cancel_reason(builder *bld, char *buf, size_t size)
{
    pthread_mutex_lock(&bld->lock);
    snprintf(buf, size, "%s", bld->cur_reason[0] ? bld->cur_reason : "cancelled");
    pthread_mutex_unlock(&bld->lock);
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

/* Detects the stack of a checkout without a Dockerfile, writes the generated one at path, and shows it in
 * build.out. User faults (nothing detected, unknown language) are not retryable; a missing stack image is
 * ours to fix (scripts/stack-images), said as such. */
static int generate_dockerfile(builder *bld, outputs *o, const droid *d, const char *src, const char *path,
                               dms_error *err)
{
    detect_result det;
    int r = detect_stack(src, d->language, &det, err);
    if (r < 0) {
        err->retryable = false;
        return r;
    }
    const char *image = stack_base_image(det.stack);
    dms_image_info info = {0};
    if (dms_executor_image_info(bld->a->ex, image, &info, NULL) == 0 && !info.present) {
        r = dms_error_set(err, DMS_E_IMAGE, NULL,
                          "stack %s (%s): its image %s is missing on this machine: make it with "
                          "scripts/stack-images",
                          stack_name(det.stack), det.reason, image);
        err->retryable = false;
        return r;
    }
    _cleanup_free_ char *text = NULL;
    if ((r = detect_render(&det, d->port, &text, err)) < 0 ||
        (r = dms_write_file_atomic(path, text, strlen(text), err)) < 0)
        return r;
    say(o, "no Dockerfile: stack %s (%s); the generated Dockerfile:", stack_name(det.stack), det.reason);
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        on_output(o, DMS_STREAM_STDOUT, line, len);
        line += len + (nl ? 1 : 0);
    }
    say(o, "end of the generated Dockerfile");
    return 0;
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

static void run_build(builder *bld, store_build *b)
{
    app *a = bld->a;
    dms_error err = {0};
    end_args ea = {.bld = bld, .b = b, .kind = END_USER_FAULT};
    char built_tag[128] = ""; /* set once the engine was asked to build */
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
        log_error("droid=%s build=%lld op=begin error=\"%s\"", d->id, (long long)b->id, err.message);
        droid_free(d);
        return;
    }
    outputs o = {-1, -1};
    if (dms_mkdir_p(dir, false, &err) == 0) {
        o.out = open_output(dir, "build.out");
        o.err = open_output(dir, "build.err");
    }
    if (o.out < 0 || o.err < 0) {
        ea.kind = END_RETRY;
        snprintf(ea.reason, sizeof(ea.reason), "cannot write build logs in %s: %s", dir,
                 err.code ? err.message : strerror(errno));
        goto end;
    }
    say(&o, "build %lld attempt %d of droid %s (%s)", (long long)b->id, b->attempt, d->name, d->id);
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
    int r = gitx_clone(d->repo, branch, b->commit_pin, src, bld->cur_token, sha, &err);
    free(branch);
    if (r < 0) {
        ea.kind = r == -DMS_E_CANCELLED ? END_CANCELLED : err.retryable ? END_RETRY : END_USER_FAULT;
        if (ea.kind == END_CANCELLED)
            cancel_reason(bld, ea.reason, sizeof(ea.reason));
        else
            snprintf(ea.reason, sizeof(ea.reason), "%s", err.message);
        goto end;
    }
    dmsd_set_str(&b->commit_sha, sha);
    say(&o, "checked out %s", sha);
    /* The build context is the tree; the history is not needed (and would only slow the context upload). */
    char gitdir[PATH_MAX + 16];
    snprintf(gitdir, sizeof(gitdir), "%s/.git", src);
    dms_rm_rf(gitdir, NULL);

    char dockerfile[PATH_MAX + 16];
    snprintf(dockerfile, sizeof(dockerfile), "%s/Dockerfile", src);
    struct stat stt;
    if (stat(dockerfile, &stt) < 0 || !S_ISREG(stt.st_mode)) {
        /* No Dockerfile: one is generated from the stack's template (build/detect.c). */
        r = generate_dockerfile(bld, &o, d, src, dockerfile, &err);
        if (r < 0) {
            ea.kind = err.retryable ? END_RETRY : END_USER_FAULT;
            snprintf(ea.reason, sizeof(ea.reason), "%s", err.message);
            on_output(&o, DMS_STREAM_STDERR, ea.reason, strlen(ea.reason));
            goto end;
        }
    }
    if (cancelled(bld)) {
        ea.kind = END_CANCELLED;
        cancel_reason(bld, ea.reason, sizeof(ea.reason));
        goto end;
    }
    char tag[128], build_id[DMS_ID_MAX + 1], label_droid[64], label_build[64];
    snprintf(tag, sizeof(tag), "dms-droid/%s:b%lld", d->id, (long long)b->id);
    snprintf(built_tag, sizeof(built_tag), "%s", tag);
    snprintf(build_id, sizeof(build_id), "%s-b%lld", d->id, (long long)b->id);
    snprintf(label_droid, sizeof(label_droid), "dms.droid=%s", d->id);
    snprintf(label_build, sizeof(label_build), "dms.build=%lld", (long long)b->id);
    char *labels[] = {label_droid, label_build, NULL};
    dms_build_request req = {
        .build_id = build_id, .job_id = d->id, .context_dir = src, .tag = tag, .labels = labels};
    dms_build_result res = {0};
    say(&o, "building image %s", tag);
    r = dms_executor_build(a->ex, &req, on_output, &o, bld->cur_token, &res, &err);
    if (r < 0) {
        if (r == -DMS_E_CANCELLED || cancelled(bld)) {
            ea.kind = END_CANCELLED;
            cancel_reason(bld, ea.reason, sizeof(ea.reason));
        } else {
            ea.kind = r == -DMS_E_BUILD_FAILED ? END_USER_FAULT : err.retryable ? END_RETRY : END_USER_FAULT;
            snprintf(ea.reason, sizeof(ea.reason), "%s", err.message);
        }
        goto end;
    }
    dmsd_set_str(&b->image_id, res.image_id[0] ? res.image_id : tag);
    dmsd_set_str(&b->tag, tag);
    ea.image_bytes = quota_image_bytes(a, b->image_id);
    say(&o, "built %s (%s)", tag, res.image_id);
    ea.kind = END_OK;
end:
    if (ea.kind != END_OK && o.out >= 0)
        say(&o, "%s: %s",
            ea.kind == END_CANCELLED ? "cancelled"
            : ea.kind == END_RETRY   ? "failed (will retry)"
                                     : "failed",
            ea.reason);
    if (o.out >= 0)
        close(o.out);
    if (o.err >= 0)
        close(o.err);
    log_info("droid=%s build=%lld op=build result=%s reason=\"%s\"", d->id, (long long)b->id,
             ea.kind == END_OK          ? "ok"
             : ea.kind == END_RETRY     ? "retry"
             : ea.kind == END_CANCELLED ? "cancelled"
                                        : "failed",
             ea.reason);
    pthread_mutex_lock(&bld->lock);
    bool stopping = bld->stop;
    ea.superseded = ea.kind == END_CANCELLED && bld->cur_superseded;
    pthread_mutex_unlock(&bld->lock);
    if (stopping && ea.kind == END_CANCELLED) {
        /* Interrupted by dmsd's own shutdown, not cancelled by anyone: the row stays "running", and the next
         * start queues it again (store_builds_requeue_running). */
        log_info("droid=%s build=%lld op=build note=\"interrupted by shutdown; resumes at the next start\"",
                 d->id, (long long)b->id);
        droid_free(d);
        return;
    }
    dms_error e2 = {0};
    if (core_mutate(a->core, NULL, d->id, mut_end, &ea, NULL, &e2) < 0) {
        log_warn("droid=%s build=%lld op=end error=\"%s\"", d->id, (long long)b->id, e2.message);
        ea.orphan = e2.code == DMS_E_NOT_FOUND;
    }
    if (ea.kind == END_CANCELLED && built_tag[0])
        remove_cancelled_image(bld, d->id, built_tag);
    if (ea.orphan) {
        /* Deleted while it built: what this build made has no owner left. */
        if (ea.kind == END_OK && b->image_id && dms_executor_remove_image(a->ex, b->image_id, NULL) < 0) {
            store_gc_add(a->st, b->image_id, d->id, NULL);
            if (a->runner)
                runner_collect_images(a->runner);
        }
        dms_rm_rf(dir, NULL);
        ea.kind = END_CANCELLED; /* nothing to prune */
    }
    if (ea.kind == END_OK)
        prune_releases(bld, d->id);
    droid_free(d);
}

/* ---- the worker ---- */

static void *worker(void *arg)
{
    builder *bld = arg;
    pthread_mutex_lock(&bld->lock);
    for (;;) {
        if (bld->stop)
            break;
        store_build b = {0};
        int64_t due = 0;
        dms_error err = {0};
        int64_t now = dmsd_now_ns();
        int r = store_build_next(bld->a->st, now, &b, &due, &err);
        if (r == 1) {
            dms_cancel_token *t = NULL;
            if (dms_cancel_token_new(&t, &err) < 0) {
                store_build_clear(&b);
                log_error("component=builder error=\"%s\"", err.message);
                r = 0;
                due = now + QUEUE_POLL_MAX_MS * NS_PER_MS;
            } else {
                snprintf(bld->cur_droid, sizeof(bld->cur_droid), "%s", b.droid_id);
                bld->cur_build = b.id;
                bld->cur_token = t;
                bld->cur_reason[0] = '\0';
                bld->cur_superseded = false;
                pthread_mutex_unlock(&bld->lock);
                run_build(bld, &b);
                store_build_clear(&b);
                pthread_mutex_lock(&bld->lock);
                bld->cur_droid[0] = '\0';
                bld->cur_build = 0;
                bld->cur_token = NULL;
                pthread_mutex_unlock(&bld->lock);
                dms_cancel_token_free(t);
                pthread_mutex_lock(&bld->lock);
                continue;
            }
        }
        if (r < 0)
            log_error("component=builder op=queue error=\"%s\"", err.message);
        int64_t wait_ms = QUEUE_POLL_MAX_MS;
        if (due > 0 && (due - now) / NS_PER_MS < wait_ms)
            wait_ms = (due - now) / NS_PER_MS + 1;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t deadline = (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec + wait_ms * NS_PER_MS;
        ts.tv_sec = deadline / NS_PER_SEC;
        ts.tv_nsec = deadline % NS_PER_SEC;
        pthread_cond_timedwait(&bld->cond, &bld->lock, &ts);
    }
    pthread_mutex_unlock(&bld->lock);
    return NULL;
}

int builder_start(builder **out, app *a, dms_error *err)
{
    builder *b = calloc(1, sizeof(*b));
    if (!b)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    b->a = a;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    int n = 0;
    int r = store_builds_requeue_running(a->st, &n, err);
    if (r < 0) {
        builder_stop(b);
        return r;
    }
    if (n)
        log_info("component=builder op=requeue interrupted=%d", n);
    if (pthread_create(&b->thread, NULL, worker, b) != 0) {
        builder_stop(b);
        return dms_error_set(err, DMS_E_IO, NULL, "cannot start the build worker");
    }
    b->started = true;
    *out = b;
    return 0;
}

void builder_stop(builder *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    if (b->cur_token) {
        /* A restart re-queues it (store_builds_requeue_running): it is interrupted, not cancelled by a user.
         */
        snprintf(b->cur_reason, sizeof(b->cur_reason), "interrupted: dmsd is stopping");
        dms_cancel_token_cancel(b->cur_token);
    }
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    if (b->started)
        pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void builder_kick(builder *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
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
    pthread_mutex_lock(&b->lock);
    int64_t id = b->cur_token && strcmp(b->cur_droid, droid_id) == 0 ? b->cur_build : 0;
    pthread_mutex_unlock(&b->lock);
    return id;
}

void builder_supersede(builder *b, const char *droid_id, int64_t build_id)
{
    bool running = false;
    pthread_mutex_lock(&b->lock);
    if (build_id > 0 && b->cur_token && b->cur_build == build_id && strcmp(b->cur_droid, droid_id) == 0 &&
        !dms_cancel_token_cancelled(b->cur_token)) {
        snprintf(b->cur_reason, sizeof(b->cur_reason), "superseded: newer code is wanted");
        b->cur_superseded = true;
        dms_cancel_token_cancel(b->cur_token);
        running = true;
    }
    pthread_mutex_unlock(&b->lock);
    if (running)
        log_info("droid=%s op=cancel-build reason=superseded", droid_id);
    builder_kick(b);
}

int builder_cancel(builder *b, const char *droid_id, const char *reason, bool *found, dms_error *err)
{
    bool running = false;
    pthread_mutex_lock(&b->lock);
    if (b->cur_token && strcmp(b->cur_droid, droid_id) == 0) {
        snprintf(b->cur_reason, sizeof(b->cur_reason), "%s", reason);
        dms_cancel_token_cancel(b->cur_token);
        running = true;
    }
    pthread_mutex_unlock(&b->lock);
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
