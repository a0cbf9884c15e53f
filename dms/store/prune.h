/* store/prune.h - retention's SQL: what the sweeper (retain.h) deletes, a batch at a time.
 *
 * Each call is one short statement (its own transaction, the store's lock held for it alone) that deletes at
 * most `batch` rows and says in *n how many it did; the caller calls again until fewer than batch went, so no
 * transaction ever holds the store long. "Keep N" keeps the N newest rows of a droid and deletes among the
 * older ones only what is not current: never a queued or running build, the build or release a droid runs or
 * wants, a run that is current or whose captured logs are still kept, a job that has not finished.
 * keep <= 0 keeps everything. Thread-safe (the store's lock). */
#ifndef DMSD_STORE_PRUNE_H
#define DMSD_STORE_PRUNE_H

#include <stdint.h>

#include <dms/error.h>

#include "store.h"

/* Every droid's id (deleting ones too). Caller frees with dmsu_strv_free. */
int prune_droid_ids(store *s, char ***ids, dms_error *err);

/* Events of the droid beyond its newest keep. */
int prune_events(store *s, const char *droid_id, int keep, int batch, int *n, dms_error *err);
/* Finished builds beyond the droid's newest keep builds, but the build of its current or wanted release. */
int prune_builds(store *s, const char *droid_id, int keep, int batch, int *n, dms_error *err);
/* Releases beyond the droid's newest keep whose image is gone, but its current or wanted one. */
int prune_releases(store *s, const char *droid_id, int keep, int batch, int *n, dms_error *err);
/* Runs beyond the droid's newest keep whose logs the runner already dropped, but its current run. */
int prune_runs(store *s, const char *droid_id, int keep, int batch, int *n, dms_error *err);

/* Finished jobs (succeeded, failed, cancelled) beyond the newest keep of their user (keep <= 0: no count
 * limit) or finished before before_ns (<= 0: no age limit), at most batch of them, oldest first. Caller frees
 * *ids with dmsu_strv_free. */
int prune_jobs_due(store *s, int keep, int64_t before_ns, int batch, char ***ids, dms_error *err);
/* Log chunks of a finished job, at most batch. */
int prune_job_logs(store *s, const char *job_id, int batch, int *n, dms_error *err);
/* The job's row, if it has finished (*n 1) ; a job that has not is left (*n 0). Its logs first. */
int prune_job(store *s, const char *job_id, int *n, dms_error *err);

#endif
