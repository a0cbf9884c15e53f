/* build/queue.h - who builds next, and what stops a running build: the build workers' slots, the fair pick
 * across users, cancel/supersede of a droid's running build, and the time limit of each build.
 *
 * The queue itself is the builds table (the store); this object holds what runs now, one slot per worker.
 * A worker asks for a build with buildq_take() and hands its slot back with buildq_done(). The pick:
 *   - a droid's builds never run two at once (a droid in a slot is skipped);
 *   - a user holds at most user_max slots (user_max < workers by default: one user's queue can never occupy
 *     every worker, so another user's build starts as soon as a worker is free);
 *   - among the users left, the one with the fewest running builds goes first; ties go to whoever's build has
 *     waited longest (a retry waits from the time it became due).
 * A watchdog thread cancels a build whose time limit (buildq_arm) has passed; the build learns why from
 * buildq_why().
 *
 * Thread-safe: one mutex guards the slots; the store is read under it (lock order: queue, then store), and
 * nothing here calls the engine.
 */
#ifndef DMSD_BUILD_QUEUE_H
#define DMSD_BUILD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>
#include <dms/executor.h>

#include "../store/store.h"

#define BUILD_WORKERS_DEFAULT 3
#define BUILD_WORKERS_MAX     16
#define BUILDQ_REASON_MAX     400

typedef struct buildq buildq;

/* One build handed to a worker. */
typedef struct buildq_job {
    int slot;
    store_build b;           /* the build's row; the worker owns it (store_build_clear) */
    dms_cancel_token *token; /* the queue's; valid until buildq_done() */
} buildq_job;

/* Why a running build was cancelled, if it was. The first cause wins. */
typedef enum buildq_end {
    BUILDQ_NOT_CANCELLED = 0,
    BUILDQ_CANCELLED,  /* buildq_cancel(): by a user, a stop or a delete (the reason says which) */
    BUILDQ_SUPERSEDED, /* buildq_supersede(): newer code is wanted; the next build takes over the droid */
    BUILDQ_TIMED_OUT,  /* its time limit passed: a failure of the user's build, not retried */
    BUILDQ_STOPPING,   /* dmsd is stopping: interrupted, queued again at the next start */
} buildq_end;

/* workers: 1..BUILD_WORKERS_MAX; user_max: 1..workers. Starts the watchdog. */
int buildq_open(buildq **out, store *st, int workers, int user_max, dms_error *err);
/* Once every worker has returned from buildq_take(): stops the watchdog, frees. Accepts NULL. */
void buildq_close(buildq *q);
/* Cancels every running build as interrupted (BUILDQ_STOPPING) and makes buildq_take() return 0. */
void buildq_stop(buildq *q);

/* Blocks until a build is picked for this worker (1, *job filled) or the queue stops (0). */
int buildq_take(buildq *q, buildq_job *job);
/* The worker is done with job's build (whatever its end): frees the slot, wakes the other workers. */
void buildq_done(buildq *q, buildq_job *job);
/* Something changed in the queue (a build queued, cancelled, due): look again now. */
void buildq_kick(buildq *q);

/* Starts job's time limit: it is cancelled with BUILDQ_TIMED_OUT timeout_s from now (<= 0: no limit). */
void buildq_arm(buildq *q, const buildq_job *job, int timeout_s);
/* Why job's build was cancelled, with the reason into buf (the cancel's own words, "build timed out after
 * N s", "superseded: ..."); BUILDQ_NOT_CANCELLED and "" if it was not. */
buildq_end buildq_why(buildq *q, const buildq_job *job, char *buf, size_t size);

/* The id of the droid's build that runs now, 0 if none. */
int64_t buildq_running(buildq *q, const char *droid_id);
/* Cancels the droid's running build if it is build_id and not cancelled yet (BUILDQ_SUPERSEDED); true if so.
 */
bool buildq_supersede(buildq *q, const char *droid_id, int64_t build_id);
/* Cancels the droid's running build, if any, with reason (BUILDQ_CANCELLED); true if there was one. */
bool buildq_cancel(buildq *q, const char *droid_id, const char *reason);

/* ---- the fair pick, a pure function (unit-tested with tables) ---- */

typedef struct buildq_busy {
    const char *droid_id;
    const char *user_id;
} buildq_busy;

/* Which of the candidates (longest waiting first, as store_build_candidates() gives them) starts next, given
 * the builds running now: the index, or -1 when none may start (no candidate, every candidate's droid is
 * building, or every candidate's user holds user_max builds). */
int buildq_pick(const store_build_cand *cands, size_t n, const buildq_busy *busy, size_t n_busy,
                int user_max);

#endif
