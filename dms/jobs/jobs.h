/* jobs/jobs.h - the build job queue and its workers.
 *
 * A job: clone the branch (libgit2) into $DMS_DATA_DIR/jobs/<id>/src, run the install step (by package
 * manager) and the build command in a builder image through the executor, with the clone bind-mounted at
 * /workspace and the project's dependency cache (a labelled volume per user and project) at /cache, then pack
 * the dist directory into jobs/<id>/out/artifact.tar, which dmsd takes out into jobs/<id>/artifact.tar
 * (artifact.h). Every line of output goes to the job's log in the store as it comes. Jobs are rows in the
 * store (queued -> running -> succeeded | failed | cancelled); at most `concurrency` run at once, one worker
 * thread each, taken fairly across users (job_fair_pick); a restart of dmsd starts interrupted jobs again.
 *
 * Cancel: a queued job is cancelled at once; a running one is flagged, and its worker stops the running
 * step (SIGTERM, SIGKILL after JOB_STOP_GRACE_MS) and marks it cancelled.
 *
 * Thread-safe.
 */
#ifndef DMSD_JOBS_JOBS_H
#define DMSD_JOBS_JOBS_H

#include <stdbool.h>
#include <stdint.h>

#include <dms/error.h>
#include <dms/executor.h>

#include "../confine/confine.h"
#include "../store/store.h"
#include "job.h"

#define JOBS_DEFAULT_CONCURRENCY     2
#define JOBS_MAX_CONCURRENCY         16
#define JOBS_DEFAULT_STEP_TIMEOUT_S  1800 /* one step (install, build) may run this long */
#define JOBS_DEFAULT_USER_MAX_JOBS   20   /* a user's jobs queued or running (DMS_USER_MAX_JOBS) */
#define JOBS_MAX_USER_MAX_JOBS       10000
#define JOBS_DEFAULT_ARTIFACT_MAX_MB 256 /* DMS_JOB_ARTIFACT_MAX_MB */
#define JOBS_MAX_ARTIFACT_MAX_MB     (64 * 1024)
#define JOB_STOP_GRACE_MS            5000
#define JOB_LOG_MAX_BYTES            (16 * 1024 * 1024) /* a job's whole log; past it a note, then nothing */

/* The builder images, by package manager (made by scripts/stack-images). */
#define JOB_IMAGE_NODE   "dms-stack/node:latest"   /* npm, yarn, pnpm */
#define JOB_IMAGE_PYTHON "dms-stack/python:latest" /* pip */
#define JOB_IMAGE_BASE   "dms-stack/debian:12"     /* none */

typedef struct jobs jobs;

typedef struct jobs_config {
    int concurrency;         /* DMS_JOB_CONCURRENCY: workers, 1..JOBS_MAX_CONCURRENCY */
    int64_t step_timeout_ms; /* DMS_JOB_TIMEOUT_S */
    int user_max_running;    /* DMS_JOB_USER_MAX: a user's running jobs; 0: concurrency - 1, at least 1 */
    int user_max_jobs;       /* DMS_USER_MAX_JOBS: a user's queued + running jobs */
    int artifact_max_mb;     /* DMS_JOB_ARTIFACT_MAX_MB */
    const char *data_dir;    /* DMS_DATA_DIR: each job's tree is jobs/<id> beneath it (borrowed) */
    const char *executor_id; /* DMS_EXECUTOR_ID: part of the cache volumes' names (borrowed) */
    confine_limits
        step_limits; /* DMS_JOB_MEMORY_MB/CPU_MILLIS/PIDS: each step's container (confine_config) */
} jobs_config;

/* The running jobs a user may hold when the setting is 0 (unset): all workers but one, so that one is always
 * left for another user; at least 1. */
int jobs_default_user_max(int concurrency);

/* Requeues jobs a crash interrupted (stopping what they left running) and starts the workers. The jobs are
 * rows in st, their steps run through ex; both are borrowed and outlive jobs_stop, as do cfg's strings. */
int jobs_start(jobs **out, store *st, dms_executor *ex, const jobs_config *cfg, dms_error *err);
/* Stops the workers; running jobs are stopped and stay "running" in the store (the next start runs them
 * again). */
void jobs_stop(jobs *js);

/* Queues j (validated by job_parse_create; user_id set): sets its id, times and cache volume, writes it and
 * the first log line. QUOTA when the user has user_max_jobs jobs queued or running already. */
int jobs_create(jobs *js, job *j, dms_error *err);
/* Cancels the user's job (id or deployment id): NOT_FOUND, CONFLICT when it has finished. */
int jobs_cancel(jobs *js, const char *user, const char *id, dms_error *err);
/* $DMS_DATA_DIR/jobs/<id>/artifact.tar into buf: the copy dmsd took out of the package step's directory (no
 * container ever saw it). A retention that removes a job removes $DMS_DATA_DIR/jobs/<id> with it. */
int jobs_artifact_path(jobs *js, const char *id, char *buf, size_t size);
/* Opens the job's artifact to serve it (artifact_open): the fd (caller closes) and its size; NOT_FOUND if it
 * has none. */
int jobs_artifact_open(jobs *js, const char *id, int64_t *bytes, dms_error *err);
/* The builder image of a package manager. Static string. */
const char *jobs_builder_image(job_pm pm);

#endif
