/* build/buildstate.h - a build's state changes: what the store and the droid become when a build begins,
 * learns its branch and ends.
 *
 * Each change is a core_mutator (core/core.h): it runs inside core_mutate's transaction, so the build's row,
 * the release and the droid's state change together or not at all. The end is the builder's whole policy on
 * how a build that ended leaves the droid: a success records a release and hands the droid to the runner; a
 * retryable failure queues the build again with backoff (builder_backoff_ms); a user's fault, a last attempt
 * or a cancel fails or stops the droid, unless an older release still serves, which keeps serving.
 *
 * Not thread-safe by itself: core_mutate serialises.
 */
#ifndef DMSD_BUILD_BUILDSTATE_H
#define DMSD_BUILD_BUILDSTATE_H

#include <stdbool.h>
#include <stdint.h>

#include <dms/error.h>

#include "../core/core.h"
#include "queue.h"

#define BUILD_REASON_MAX BUILDQ_REASON_MAX

/* How a build ended. */
typedef enum build_end_kind {
    BUILD_END_OK,
    BUILD_END_USER_FAULT, /* the user's to mend (Dockerfile step, unknown branch, time limit): not retried */
    BUILD_END_RETRY, /* transport or engine trouble: queued again with backoff, up to BUILD_MAX_ATTEMPTS */
    BUILD_END_CANCELLED,
} build_end_kind;

/* buildstate_begin's argument. */
typedef struct build_begin {
    store_build *b;                /* the build's row, the worker's; updated (running, attempt + 1) */
    char reason[BUILD_REASON_MAX]; /* the droid's state reason ("cloning ...") */
} build_begin;

/* buildstate_end's argument. */
typedef struct build_end {
    store_build *b; /* the build's row, the worker's; updated */
    build_end_kind kind;
    char reason[BUILD_REASON_MAX];
    int64_t release; /* out (BUILD_END_OK) */
    int64_t
        image_bytes; /* BUILD_END_OK: the image's size as the engine reports it (the disk quota counts it) */
    bool orphan;     /* out: the droid is being deleted; what the build made must go */
    bool superseded; /* cancelled for a newer build, which is queued: the droid's state is left to it */
    const char *compose_json; /* BUILD_END_OK of a compose droid: the release's compose member (borrowed) */
} build_end;

/* The build (ud: build_begin *) starts: running, one more attempt, the droid building. CONFLICT when it is no
 * longer queued (cancelled or superseded between the pick and now: it must not come back to life). */
int buildstate_begin(core_tx *tx, droid *d, void *ud, dms_error *err);
/* The droid had no branch: ud (const char *) is the remote's default, kept on the droid from now on. */
int buildstate_branch(core_tx *tx, droid *d, void *ud, dms_error *err);
/* The build (ud: build_end *) ended: its row, the release (on success) and the droid's state. */
int buildstate_end(core_tx *tx, droid *d, void *ud, dms_error *err);

/* A build that did not succeed and whose cancel token fired: how it ended, given why (buildq_why's cause and
 * reason). Past its time limit it failed (the user's build, not retried); superseded, it leaves the droid to
 * the newer build; else cancelled, with why (or "cancelled") as the reason. False when dmsd's own stop
 * interrupted it: nobody ended it, and the next start queues it again. */
bool buildstate_cancelled(build_end *ea, buildq_end cause, const char *why);
/* How a step that failed with r and err ends the build: a cancel, the user's build failing in the engine,
 * else by err->retryable (the clone and the engine's build). */
build_end_kind buildstate_kind_of(int r, const dms_error *err);
/* The end's word for dmsd's log: "ok", "retry", "cancelled", "failed". Static string. */
const char *buildstate_kind_name(build_end_kind kind);
/* The end's words for build.out: "cancelled", "failed (will retry)", "failed". Static string. */
const char *buildstate_kind_said(build_end_kind kind);

#endif
