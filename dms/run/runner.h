/* run/runner.h - runs droids through the executor and keeps them the way they are wanted.
 *
 * Level-triggered reconciliation: every droid carries what is wanted (running or not, which release, config
 * and restart generations) and what runs (its current execution and the generations it was started with).
 * Anything that may change either side "kicks" the droid; a small pool of workers reconciles kicked droids
 * one at a time per droid (start a new container, then stop the old one; stop; delete; retry with backoff),
 * and the supervisor thread learns from the executor's waiters (pollable fds, no thread per droid) when a
 * container ends.
 *
 * Thread-safe.
 */
#ifndef DMSD_RUN_RUNNER_H
#define DMSD_RUN_RUNNER_H

#include <stdbool.h>

#include <dms/error.h>
#include <dms/executor.h>

#include "../confine/confine.h"
#include "../core/core.h"
#include "../router/router.h"
#include "../snooze/snooze.h"
#include "../store/store.h"

typedef struct runner runner;

/* What the runner uses. All borrowed: each outlives runner_stop. The router and the snooze are started before
 * the runner (main.c) and never replaced, so they are given here, before any runner thread reads them. */
typedef struct runner_deps {
    store *st;                     /* runs, releases, builds, images to collect */
    core *core;                    /* the droids it reconciles */
    dms_executor *ex;              /* runs the containers */
    router *router;                /* moves routes; NULL when routing is off */
    snooze *snooze;                /* held requests of waking droids; NULL when routing is off */
    const char *data_dir;          /* a deleted droid's directory, droids/<id> beneath it, is removed */
    const confine_config *confine; /* a droid's limits, security and network */
} runner_deps;

/* Recovers the executor's executions (dms_executor_recover), re-adopts running droids, and starts the
 * threads. Copies *deps. */
int runner_start(runner **out, const runner_deps *deps, dms_error *err);
void runner_stop(runner *r);

/* Reconcile this droid soon. */
void runner_kick(runner *r, const char *droid_id);

/* Removals of images that failed (the engine was busy or away) are recorded with store_gc_add(); this makes
 * the runner try them now (it also retries them by itself, with backoff, until they succeed). */
void runner_collect_images(runner *r);

/* The next replacement of this droid's container stops the old one before starting the new (restart?force=1).
 * Call before the mutation that bumps restart_gen. */
void runner_force_restart(runner *r, const char *droid_id);

/* Calls fn once the droid has no reconcile work left (d: the droid then; NULL if it was deleted). Called from
 * a runner thread, or at once from the caller's thread if the runner is stopping. */
typedef void (*runner_settled_fn)(void *ud, const droid *d);
void runner_when_settled(runner *r, const char *droid_id, runner_settled_fn fn, void *ud);

/* Crash loop and start retry policy. */
#define RUN_MAX_START_ATTEMPTS 4 /* a container that will not start: a try and 3 retries, then failed */
#define RUN_MAX_CRASH_RESTARTS 5 /* a container that keeps dying: restarted this often, then failed */
#define RUN_BACKOFF_BASE_MS    1000
#define RUN_BACKOFF_MAX_MS     30000
#define RUN_STABLE_AFTER_MS    30000 /* a run that lived this long resets the crash count */
int64_t runner_backoff_ms(int failures);

#endif
