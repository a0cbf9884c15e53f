/* dms/retain.h - retention: a background sweeper that keeps the store (and the jobs' directories) bounded.
 *
 * Every interval it prunes, droid by droid, events, finished builds, releases whose image is gone and runs
 * whose logs are gone beyond the newest N of each, then finished jobs beyond the newest N of their user or
 * older than D days, with their log and their directory (jobs/<id>/, the artifact). It deletes in small
 * batches (store/prune.h): the store's lock is never held for more than one short statement, and what is
 * current (a queued or running build, the release a droid runs or wants, its current run, a job that has not
 * finished) is never pruned. A limit of 0 keeps everything of that kind. */
#ifndef DMSD_RETAIN_H
#define DMSD_RETAIN_H

#include <stdatomic.h>

#include <dms/error.h>

#include "store/store.h"

#define RETAIN_DEFAULT_EVENTS     1000 /* per droid */
#define RETAIN_DEFAULT_BUILDS     100  /* per droid */
#define RETAIN_DEFAULT_RUNS       100  /* per droid */
#define RETAIN_DEFAULT_JOBS       500  /* finished jobs per user */
#define RETAIN_DEFAULT_JOBS_DAYS  30
#define RETAIN_DEFAULT_INTERVAL_S 600
#define RETAIN_MAX_COUNT          10000000
#define RETAIN_MAX_DAYS           3650
#define RETAIN_MAX_INTERVAL_S     86400

typedef struct retain_config {
    int events;     /* DMS_RETAIN_EVENTS */
    int builds;     /* DMS_RETAIN_BUILDS (releases whose image is gone follow the same count) */
    int runs;       /* DMS_RETAIN_RUNS */
    int jobs;       /* DMS_RETAIN_JOBS */
    int jobs_days;  /* DMS_RETAIN_JOBS_DAYS */
    int interval_s; /* DMS_RETAIN_INTERVAL_S */
} retain_config;

typedef struct retain_counts {
    long events, builds, releases, runs, jobs;
} retain_counts;

typedef struct retain retain;

/* Starts the sweeper thread (its first sweep one interval from now). st and data_dir stay borrowed until
 * retain_stop(). */
int retain_start(retain **out, store *st, const char *data_dir, const retain_config *cfg, dms_error *err);
/* Stops it; a sweep in progress ends after its current batch. Accepts NULL. */
void retain_stop(retain *r);

/* One sweep, as the thread runs it (tests call it directly). stop (may be NULL) is looked at between batches;
 * *out counts what went. */
int retain_sweep(store *st, const char *data_dir, const retain_config *cfg, const atomic_bool *stop,
                 retain_counts *out, dms_error *err);

#endif
