/* build/builder.h - the build workers: clone (libgit2), build through the executor, record the release, hand
 * over to the runner.
 *
 * Builds are rows in the store (queued -> running -> succeeded | failed | cancelled | superseded), so a
 * restart carries on where it stopped. DMS_BUILD_WORKERS threads each run one build at a time, picked fairly
 * across users (queue.h); a droid's builds never run two at once. A retryable failure (network, engine) is
 * queued again with exponential backoff; a user's fault (Dockerfile step, missing Dockerfile, unknown branch,
 * the build's time limit) fails the droid with the reason.
 *
 * Thread-safe.
 */
#ifndef DMSD_BUILD_BUILDER_H
#define DMSD_BUILD_BUILDER_H

#include <stdbool.h>

#include <dms/error.h>
#include <dms/executor.h>

#include "../core/core.h"
#include "../run/runner.h"
#include "../store/store.h"
#include "buildopts.h"

typedef struct builder builder;

/* What the builder uses. The pointers are borrowed and outlive builder_stop; builder_start copies the rest.
 */
typedef struct builder_deps {
    store *st;            /* the builds, releases and images to collect */
    core *core;           /* the droids a build changes */
    dms_executor *ex;     /* builds the images */
    runner *runner;       /* collects the images the builder could not remove; NULL: none (the runner starts
                           * before the builder, main.c, so it is known here and never changes) */
    const char *data_dir; /* each droid's data directory is droids/<id> beneath it */
    int user_max_disk_mb; /* DMS_USER_MAX_DISK_MB: a build is refused once its user is at the quota */
    build_config cfg;     /* DMS_BUILD_*, DMS_KEEP_RELEASES */
} builder_deps;

/* Requeues builds a crash interrupted and starts the workers (deps->cfg.workers, user_max). */
int builder_start(builder **out, const builder_deps *deps, dms_error *err);
/* Interrupts the running builds (their rows stay "running": the next start queues them again) and joins the
 * workers. Accepts NULL. */
void builder_stop(builder *b);
/* A build was queued: look at the queue now. */
void builder_kick(builder *b);
/* Cancels the droid's build: the running one is stopped through its cancel token (the executor stops the
 * engine's build), queued ones are marked cancelled. *found (may be NULL) tells whether there was one. */
int builder_cancel(builder *b, const char *droid_id, const char *reason, bool *found, dms_error *err);
/* The id of the droid's build that runs now, 0 if none. */
int64_t builder_running(builder *b, const char *droid_id);
/* The droid's code changed (branch, commit): build_id (builder_running() before the change) is of the old
 * code; if it still runs it is cancelled, its row "cancelled" with reason "superseded", and the droid's state
 * is left to the build queued for the new code. A build that started after the change is not touched. */
void builder_supersede(builder *b, const char *droid_id, int64_t build_id);

/* Retry policy, exposed for tests: the delay before attempt n+1 after n failed attempts. */
#define BUILD_MAX_ATTEMPTS    5
#define BUILD_BACKOFF_BASE_MS 2000
#define BUILD_BACKOFF_MAX_MS  60000
int64_t builder_backoff_ms(int attempts);

#endif
