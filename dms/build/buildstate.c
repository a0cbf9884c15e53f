/* buildstate.c - a build's state changes (see buildstate.h). */
#include "buildstate.h"

#include <stdio.h>
#include <stdlib.h>

#include "../common.h"
#include "../fdlimit.h"
#include "builder.h"

int buildstate_begin(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    build_begin *ba = ud;
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
    ba->b->started_ns = dms_now_ns();
    free(ba->b->reason);
    ba->b->reason = NULL;
    if ((r = store_build_update(core_tx_store(tx), ba->b, err)) < 0)
        return r;
    return core_tx_set_state(tx, d, DROID_BUILDING, ba->reason, err);
}

int buildstate_branch(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    if (!d->branch && dmsd_set_str(&d->branch, ud) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return 0;
}

/* An older release still runs, or sleeps (snooze) and serves when a request wakes it. */
static bool serving(const droid *d)
{
    return d->run_id != NULL || (d->asleep && d->want_running);
}

static droid_state serving_state(const droid *d)
{
    return d->asleep ? DROID_SNOOZED : DROID_RUNNING;
}

/* Success: the build's image becomes the droid's next release, and the runner starts it (unless stopped). */
static int end_ok(core_tx *tx, droid *d, build_end *ea, dms_error *err)
{
    store *st = core_tx_store(tx);
    store_build *b = ea->b;
    char why[BUILD_REASON_MAX + 128];
    int r;
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
                         .compose_json = (char *)ea->compose_json,
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

/* A retryable failure with attempts left: queued again after the backoff; the droid waits (or keeps serving).
 */
static int end_requeue(core_tx *tx, droid *d, build_end *ea, dms_error *err)
{
    store_build *b = ea->b;
    char why[BUILD_REASON_MAX + 128];
    int r;
    int64_t delay = builder_backoff_ms(b->attempt);
    b->status = BUILD_QUEUED;
    b->next_try_ns = dms_now_ns() + delay * NS_PER_MS;
    snprintf(why, sizeof(why), "build %lld attempt %d/%d failed: %s; retrying in %llds", (long long)b->id,
             b->attempt, BUILD_MAX_ATTEMPTS, ea->reason, (long long)(delay / 1000));
    if ((r = store_build_update(core_tx_store(tx), b, err)) < 0)
        return r;
    if (serving(d))
        return core_tx_set_state(tx, d, serving_state(d), why, err);
    return core_tx_set_state(tx, d, DROID_PENDING, why, err);
}

/* A build that ends for good without a release: failed or cancelled. */
static void end_status(build_end *ea, char *why, size_t size)
{
    store_build *b = ea->b;
    switch (ea->kind) {
    case BUILD_END_RETRY:
        snprintf(why, size, "build %lld failed after %d attempts: %s", (long long)b->id, b->attempt,
                 ea->reason);
        b->status = BUILD_FAILED;
        break;
    case BUILD_END_USER_FAULT:
        b->status = BUILD_FAILED;
        snprintf(why, size, "build %lld failed: %s", (long long)b->id, ea->reason);
        break;
    case BUILD_END_CANCELLED:
        b->status = BUILD_CANCELLED;
        snprintf(why, size, "%s", ea->reason);
        break;
    case BUILD_END_OK:
        break;
    }
}

int buildstate_end(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    build_end *ea = ud;
    store *st = core_tx_store(tx);
    store_build *b = ea->b;
    char why[BUILD_REASON_MAX + 128];
    int r;
    b->finished_ns = dms_now_ns();
    if (dmsd_set_str(&b->reason, ea->kind == BUILD_END_OK ? NULL : ea->reason) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if (d->deleting) {
        ea->orphan = true;
        b->status = BUILD_CANCELLED;
        return store_build_update(st, b, err);
    }
    if (ea->kind == BUILD_END_OK)
        return end_ok(tx, d, ea, err);
    if (ea->kind == BUILD_END_RETRY && b->attempt < BUILD_MAX_ATTEMPTS)
        return end_requeue(tx, d, ea, err);
    end_status(ea, why, sizeof(why));
    if ((r = store_build_update(st, b, err)) < 0)
        return r;
    if (d->deleting || ea->superseded)
        return 0;
    if (serving(d)) {
        /* The old release keeps serving; say so, and say what happened to the build. */
        char note[BUILD_REASON_MAX + 200];
        snprintf(note, sizeof(note), "%s; still serving release %lld", why, (long long)d->run_release);
        return core_tx_set_state(tx, d, d->state == DROID_BUILDING ? serving_state(d) : d->state, note, err);
    }
    if (ea->kind == BUILD_END_CANCELLED || !d->want_running)
        return core_tx_set_state(tx, d, DROID_STOPPED, why, err);
    return core_tx_set_state(tx, d, DROID_FAILED, why, err);
}

bool buildstate_cancelled(build_end *ea, buildq_end cause, const char *why)
{
    ea->kind = cause == BUILDQ_TIMED_OUT ? BUILD_END_USER_FAULT : BUILD_END_CANCELLED;
    snprintf(ea->reason, sizeof(ea->reason), "%s", why[0] ? why : "cancelled");
    ea->superseded = cause == BUILDQ_SUPERSEDED;
    return cause != BUILDQ_STOPPING;
}

build_end_kind buildstate_kind_of(int r, const dms_error *err)
{
    /* Out of descriptors is dmsd's (or the host's) trouble whatever step met it: a user's build failing in
     * the engine says so with the step's exit code, not with dmsd's errno. */
    bool ours = fdlimit_exhausted(err) && (r != -DMS_E_BUILD_FAILED || err->sys_errno);
    return r == -DMS_E_CANCELLED      ? BUILD_END_CANCELLED
           : ours                     ? BUILD_END_RETRY
           : r == -DMS_E_BUILD_FAILED ? BUILD_END_USER_FAULT
           : err->retryable           ? BUILD_END_RETRY
                                      : BUILD_END_USER_FAULT;
}

const char *buildstate_kind_name(build_end_kind kind)
{
    return kind == BUILD_END_OK          ? "ok"
           : kind == BUILD_END_RETRY     ? "retry"
           : kind == BUILD_END_CANCELLED ? "cancelled"
                                         : "failed";
}

const char *buildstate_kind_said(build_end_kind kind)
{
    return kind == BUILD_END_CANCELLED ? "cancelled"
           : kind == BUILD_END_RETRY   ? "failed (will retry)"
                                       : "failed";
}
