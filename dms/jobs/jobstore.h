/* jobs/jobstore.h - jobs and their logs in dmsd's SQLite store (tables jobs, job_logs; migration 3).
 *
 * A job's log is a sequence of chunks (seq 1, 2, ...) appended as the job runs, so a reader follows it by
 * asking for the chunks after the last seq it has. Thread-safe (the store's lock).
 */
#ifndef DMSD_JOBS_JOBSTORE_H
#define DMSD_JOBS_JOBSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <dms/error.h>

#include "../common.h"
#include "../store/store.h"
#include "util.h"
#include "job.h"

int jobstore_insert(store *s, const job *j, dms_error *err);
/* Writes every mutable field (status, step, reason, ...). NOT_FOUND if absent. */
int jobstore_update(store *s, const job *j, dms_error *err);
/* By id; NOT_FOUND if absent. *out must be job_init'ed; the caller clears it. */
int jobstore_get(store *s, const char *id, job *out, dms_error *err);
/* The user's job by its id, else the user's newest job of that deployment_id (koalaCI clients name jobs by
 * their deployment). NOT_FOUND (field "id") if neither: another user's job is not found either. */
int jobstore_find(store *s, const char *user, const char *id_or_deployment, job *out, dms_error *err);
/* A page of the user's jobs, newest first (by creation time, then id): a JSON array of job_to_json(). pg says
 * where it starts and how many (limit >= 1); its more/next are set. */
int jobstore_list_json(store *s, const char *user, dmsd_page *pg, json_t **out, dms_error *err);

/* Takes the next queued job fairly (job_fair_pick: a user running max_running jobs waits; the user with the
 * fewest running goes first, then the one served least recently; a user's own jobs in the order they came):
 * marks it running (attempt + 1, started now) and fills *out. 1 taken, 0 none may run now. */
int jobstore_claim_next(store *s, int max_running, job *out, dms_error *err);
/* The user's jobs queued or running: QUOTA (field "DMS_USER_MAX_JOBS") when there are max_jobs or more. Call
 * it in the transaction that inserts the job, so that two creates cannot both pass it. */
int jobstore_check_quota(store *s, const char *user, int max_jobs, dms_error *err);
/* At startup: running jobs a crash interrupted are queued again, or cancelled if a cancel was asked;
 * *ids (caller frees with dmsu_strv_free) names the requeued ones and their attempt in *attempts (parallel,
 * caller frees), so that their leftover executions can be stopped. */
int jobstore_requeue_interrupted(store *s, char ***ids, int **attempts, dms_error *err);

/* Cancel asked for the user's job: a queued one is cancelled at once (*was = JOB_QUEUED), a running one gets
 * cancel_requested (*was = JOB_RUNNING); a finished one is CONFLICT. NOT_FOUND as jobstore_find. *id_out
 * (JOB_ID_SIZE) gets the job's id. */
int jobstore_request_cancel(store *s, const char *user, const char *id_or_deployment, const char *reason,
                            job_status *was, char *id_out, dms_error *err);

/* Appends a chunk of log; seq must be the next one (1 for the first). */
int jobstore_log_append(store *s, const char *id, int64_t seq, int64_t ts_ns, const char *data, size_t len,
                        dms_error *err);
/* The seq of the job's last log chunk (0 if none). */
int jobstore_log_last_seq(store *s, const char *id, int64_t *seq, dms_error *err);
/* Appends to out the chunks with seq > after_seq, stopping once out holds max_bytes or more (a chunk is never
 * split); *last_seq gets the last seq appended (after_seq if none). */
int jobstore_log_read(store *s, const char *id, int64_t after_seq, size_t max_bytes, dmsu_buf *out,
                      int64_t *last_seq, dms_error *err);

#endif
