/* jobs/jobrun.h - one job, step by step, on the worker that claimed it (private to jobs/).
 *
 * The steps: clone the branch into jobs/<id>/src (retried with backoff on transport errors), the install step
 * (when the package manager has one), the build command, the package step (jobstep.h), then the artifact
 * taken out of jobs/<id>/out (artifact.h). However it ends, the clone and the package step's tree are removed
 * and the job's row and log say how it ended; interrupted by dmsd's own stop, it stays "running" and the next
 * start runs it again.
 *
 * Not thread-safe by itself: one worker runs one job; the slot's stopping flag is read under env->lock.
 */
#ifndef DMSD_JOBS_JOBRUN_H
#define DMSD_JOBS_JOBRUN_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <dms/executor.h>

#include "../confine/confine.h"
#include "../store/store.h"
#include "job.h"
#include "joblog.h"

/* A worker's slot: the job it runs and its cancel token. Guarded by the queue's lock (jobrun_env.lock). */
typedef struct job_slot {
    char job_id[JOB_ID_SIZE];
    dms_cancel_token *token;
    bool stopping; /* dmsd stops: not a user's cancel */
} job_slot;

/* What a job's run needs of the queue. */
typedef struct jobrun_env {
    store *st;             /* the job's row and log */
    dms_executor *ex;      /* runs the steps */
    const char *data_dir;  /* jobs/<id> beneath it */
    confine_limits limits; /* each step's container */
    pthread_mutex_t *lock; /* the queue's: guards every job_slot */
    int64_t step_timeout_ms;
    int artifact_max_mb;
} jobrun_env;

typedef enum jobrun_end { JOBRUN_OK, JOBRUN_FAILED, JOBRUN_CANCELLED, JOBRUN_INTERRUPTED } jobrun_end;

/* One job's run: what its steps share. */
typedef struct run_ctx {
    const jobrun_env *env;
    job_slot *sl;
    job *j;
    joblog log;
    char base[PATH_MAX]; /* jobs/<id>: dmsd's own; no container sees it, only its src/ and out/ */
    char src[PATH_MAX];
    char out[PATH_MAX];
    jobrun_end kind;
    char reason[JOB_REASON_MAX];
} run_ctx;

/* Runs job j (claimed, running) on slot sl to its end: its row and log say how it ended. */
void jobrun_run(const jobrun_env *env, job_slot *sl, job *j);

/* $data_dir/jobs/<id>[/<sub>] into buf; -INVALID when it does not fit. */
int jobrun_dir(const char *data_dir, const char *id, const char *sub, char *buf, size_t size);

/* For the steps (jobstep.c): */
/* dmsd stops (not a user's cancel). */
bool jobrun_stopping(run_ctx *c);
/* A cancel asked through the store (it may have come before the worker had its token): fires the token. */
bool jobrun_cancel_asked(run_ctx *c);
/* The run ends cancelled during the step named during, or interrupted when dmsd stops. */
void jobrun_set_cancelled(run_ctx *c, const char *during);
/* The job's row now. */
void jobrun_persist(run_ctx *c);
/* The job's row says it is at step. */
void jobrun_begin_step(run_ctx *c, job_step step);

#endif
