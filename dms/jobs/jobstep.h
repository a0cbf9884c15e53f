/* jobs/jobstep.h - a step that runs in a container: install, build and package (private to jobs/).
 *
 * The request (jobstep_request, a pure function tested without an engine): the step's script run by JOB_SHELL
 * in the package manager's builder image (jobs_builder_image), the clone bind-mounted at JOB_WORKSPACE
 * (read-only for the package step), the project's cache volume at JOB_CACHE_DIR (not for the package step),
 * the package step's out/ at JOB_OUT_DIR; labels dms.build-job=<id> and dms.step=<step>; the job limits, the
 * step timeout, the security part and the user's network (confine/confine.h); an init as PID 1.
 *
 * The run (jobstep_run): watched with poll() over the execution's waiter fd (its end), its log stream fd (new
 * output, copied into the job's log) and the job's cancel token fd (a cancel: SIGTERM, SIGKILL after
 * JOB_STOP_GRACE_MS; at once when dmsd stops). The container is removed once its output is in the log.
 */
#ifndef DMSD_JOBS_JOBSTEP_H
#define DMSD_JOBS_JOBSTEP_H

#include <stddef.h>
#include <stdint.h>

#include <dms/executor.h>

#include "../confine/confine.h"
#include "job.h"
#include "jobrun.h"

/* What a step's request is made of (all borrowed). */
typedef struct jobstep_in {
    const job *j;
    job_step step;
    const char *script;
    const char *src;         /* jobs/<id>/src: the workspace */
    const char *out;         /* jobs/<id>/out: the package step's */
    const char *executor_id; /* the network's name depends on it */
    confine_limits limits;   /* the job limits */
    int64_t timeout_ms;
    int artifact_max_mb;
} jobstep_in;

/* The request and what it points into. Filled in place: req points into the struct, which is not copied or
 * moved while req is in use; jobstep_request_clear frees it. */
typedef struct jobstep_req {
    char exec_id[DMS_ID_MAX + 1];
    char label_job[64];
    char label_step[64];
    char *labels[3];
    dms_mount mounts[3];
    char *cmd[4];
    char net[CONFINE_NETWORK_MAX];
    char **env; /* owned */
    dms_exec_request req;
} jobstep_req;

/* Fills out for in. -1 with the reason (as the job's reason says it) when the user's network has no name or
 * memory ran out; out is to be cleared either way. */
int jobstep_request(jobstep_req *out, const jobstep_in *in, char *reason, size_t size);
/* Frees what jobstep_request allocated. */
void jobstep_request_clear(jobstep_req *r);

/* Runs one step's script in the builder image: 0 when it exited 0, else -1 with c->kind and c->reason set.
 * *ms_out (may be NULL): how long it ran. */
int jobstep_run(run_ctx *c, job_step step, const char *script, int64_t *ms_out);

#endif
