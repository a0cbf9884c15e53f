/* jobs/joblog.h - a running job's log: its output gathered into chunks and appended to the store
 * (jobstore_log_append) when a chunk is full or LOG_FLUSH_MS have passed, capped at JOB_LOG_MAX_BYTES (past
 * it one note, then nothing), and dmsd's own lines ("[dms] ...") among the workload's.
 *
 * Not thread-safe: one job's worker owns its log.
 */
#ifndef DMSD_JOBS_JOBLOG_H
#define DMSD_JOBS_JOBLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../store/store.h"
#include "util.h"

/* The line of the install step's script that says the dependency cache was warm (job.c's scripts print it).
 */
#define JOBLOG_CACHE_WARM_MARK "[dms] dependency cache: warm"

typedef struct joblog {
    store *st;
    const char *id; /* the job's, borrowed */
    int64_t seq;    /* the last chunk written */
    dmsu_buf buf;
    int64_t last_flush_ms;
    size_t total;
    bool truncated;
    bool watch_cache; /* the install step: look for the cache report */
    bool cache_warm;
} joblog;

/* Writes what the log holds to the store now. */
void joblog_flush(joblog *w);
/* Appends the workload's output; flushes a full chunk. */
void joblog_write(joblog *w, const char *data, size_t len);
/* Flushes what waited LOG_FLUSH_MS or more. */
void joblog_tick(joblog *w);
/* A line of dmsd's own, "[dms] " and the text. */
void joblog_say(joblog *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
