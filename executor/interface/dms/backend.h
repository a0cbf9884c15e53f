/* dms/backend.h - helpers for backend authors, provided by libdms-executor.
 *
 * Every backend needs the same few mechanisms, and they are easy to get subtly wrong, so they live here once:
 *   - result cells: publish one result under a lock, then wake every waiter (each waiter has its own fd);
 *   - result files: a waiter over <dir>/result.json for results produced by another process;
 *   - the log store: capture a workload's output to its own files, bounded and rotated, with nanosecond
 *     timestamps, and serve tail/since/follow from them (so logs outlive the container and a follow never
 * races the job's end);
 *   - small file helpers (atomic write, read with a cap, rm -rf) and the label names.
 * Thread-safety is stated per function.
 */
#ifndef DMS_BACKEND_H
#define DMS_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/executor.h>
#include <dms/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Labels: one per dimension, never values glued together. */
#define DMS_LABEL_MANAGED   "io.dms.managed"   /* "true" */
#define DMS_LABEL_EXECUTOR  "io.dms.executor"  /* executor id */
#define DMS_LABEL_BACKEND   "io.dms.backend"   /* backend name */
#define DMS_LABEL_JOB       "io.dms.job"       /* job id */
#define DMS_LABEL_EXECUTION "io.dms.execution" /* execution id */
#define DMS_LABEL_ROLE      "io.dms.role"      /* job | build | network | volume */

/* Logs through the host's logger: dms_logf(host, DMS_LOG_INFO, "exec=%s op=start", id). Thread-safe. */
void dms_logf(const dms_host_services *host, dms_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Wall clock in nanoseconds since the epoch; monotonic clock in ms (for timeouts). */
int64_t dms_now_ns(void);
int64_t dms_mono_ms(void);

/* ---- result cells ---- */

typedef struct dms_result_cell dms_result_cell;

/* A new cell holding no result, with one reference. NULL on OOM. Thread-safe from here on. */
dms_result_cell *dms_result_cell_new(void);
dms_result_cell *dms_result_cell_ref(dms_result_cell *c);
void dms_result_cell_unref(dms_result_cell *c); /* accepts NULL */
/* Publishes a copy of r and wakes every waiter. Only the first publish counts: returns 1 if this call
 * published, 0 if a result was already there (r is then ignored), negative on OOM. */
int dms_result_cell_publish(dms_result_cell *c, const dms_exec_result *r);
bool dms_result_cell_published(dms_result_cell *c);
/* Copies the result into *out if published (returns 0), else -DMS_E_TIMEOUT. */
int dms_result_cell_get(dms_result_cell *c, dms_exec_result *out, dms_error *err);

/* A waiter over a cell (takes its own reference). Caller owns *out. */
int dms_waiter_new_from_cell(dms_result_cell *c, dms_waiter **out, dms_error *err);

/* A waiter over a result file written by another process (atomically, by rename, into dir): readable once
 * <dir>/result.json exists. While it does not, check (if not NULL) is called about once a second from the
 * waiting thread; when it returns non-zero the waiter ends with that error (e.g. the producer died). Caller
 * owns *out. */
typedef int (*dms_waiter_check_fn)(void *ud, dms_error *err);
int dms_waiter_new_from_file(const char *dir, dms_waiter_check_fn check, void *ud, void (*ud_free)(void *),
                             dms_waiter **out, dms_error *err);

/* ---- the log store ---- */

/* Longest frame; longer lines are split into partial frames (the same limit as Docker's log copier). */
#define DMS_LOG_LINE_MAX (16 * 1024)

typedef struct dms_logstore_writer dms_logstore_writer;

/* Opens the capture of <dir> for writing (creates <dir>/log, mode 0600: output may hold secrets; or continues
 * an existing capture, keeping its offsets and timestamps). file_cap_bytes: rotate to log.1 beyond this (0:
 * DMS_DEFAULT_LOG_FILE_BYTES); at most two files are kept, so the newest output always survives. One writer
 * per dir at a time (the caller holds a lock such as dms_state_lock()). Not thread-safe: one thread writes.
 * Caller owns *out. */
int dms_logstore_writer_open(dms_logstore_writer **out, const char *dir, int64_t file_cap_bytes,
                             dms_error *err);
/* Appends raw output of a stream; it is split into lines and timestamped (ts_ns 0: now). Complete lines are
 * buffered until dms_logstore_flush() or until the buffer fills; readers see them after the flush. */
int dms_logstore_write(dms_logstore_writer *w, dms_stream_type stream, int64_t ts_ns, const char *data,
                       size_t len, dms_error *err);
/* Appends one already-delimited frame (a line as Docker's logs endpoint gives it, with its own timestamp). */
int dms_logstore_write_frame(dms_logstore_writer *w, dms_stream_type stream, int64_t ts_ns, bool partial,
                             const char *data, size_t len, dms_error *err);
int dms_logstore_flush(dms_logstore_writer *w, dms_error *err);
/* Flushes pending partial lines and writes the end marker: followers end. Further writes are refused. */
int dms_logstore_finish(dms_logstore_writer *w, dms_error *err);
/* Bytes captured so far per stream (stdout, stderr) and the last timestamp written. */
uint64_t dms_logstore_bytes(const dms_logstore_writer *w, dms_stream_type stream);
int64_t dms_logstore_last_ts(const dms_logstore_writer *w);
void dms_logstore_writer_free(dms_logstore_writer *w); /* flushes; does not finish. Accepts NULL. */

/* Facts about a capture on disk, for resuming one: bytes per stream, last timestamp, finished or not. */
typedef struct dms_logstore_info {
    uint64_t stdout_bytes;
    uint64_t stderr_bytes;
    int64_t last_ts_ns;
    bool finished;
    bool exists;
} dms_logstore_info;
int dms_logstore_info_read(const char *dir, dms_logstore_info *out, dms_error *err);

/* The last max_bytes of one stream's output, as one buffer (caller frees *out; NUL-terminated). truncated is
 * set when the stream held more. Reads the files; safe while a writer appends. */
int dms_logstore_excerpt(const char *dir, dms_stream_type stream, size_t max_bytes, char **out, size_t *len,
                         bool *truncated, dms_error *err);

/* A log stream over <dir>'s capture files (history per opts, then follow until the end marker). While
 * following and idle, idle_check (if not NULL) is called about once a second: non-zero ends the stream
 * (producer gone). Works across processes (inotify). Caller owns *out. */
typedef bool (*dms_logstore_idle_fn)(void *ud);
int dms_logstore_stream_open(const char *dir, const dms_log_options *opts, dms_logstore_idle_fn idle_check,
                             void *ud, void (*ud_free)(void *), dms_log_stream **out, dms_error *err);

/* ---- custom log streams, for backends that do not use the log store ---- */
typedef struct dms_log_stream_ops {
    int (*next)(void *ctx, int64_t timeout_ms, dms_log_frame *frame, dms_error *err);
    int (*fd)(void *ctx);
    void (*free)(void *ctx);
} dms_log_stream_ops;
int dms_log_stream_new(const dms_log_stream_ops *ops, void *ctx, dms_log_stream **out, dms_error *err);

/* ---- state files ---- */

/* mkdir -p; every directory it creates is 0700 (state files hold requests, env included). private_last: an
 * existing last component of ours also loses its group and other bits (opened without following a symlink).
 */
int dms_mkdir_p(const char *path, bool private_last, dms_error *err);
/* Writes a file atomically (tmp file, fsync, rename), mode 0600 whatever the umask. */
int dms_write_file_atomic(const char *path, const char *data, size_t len, dms_error *err);
/* The same without fsync: atomic against crashes of the process (rename), not against power loss. For state
 * that can be recomputed, on hot paths where an fsync (milliseconds) would block other work. */
int dms_write_file_replace(const char *path, const char *data, size_t len, dms_error *err);
/* Reads a whole file of at most max_bytes; caller frees *out (NUL-terminated). NOT_FOUND if absent. */
int dms_read_file(const char *path, size_t max_bytes, char **out, size_t *len, dms_error *err);
/* rm -rf; missing is fine. */
int dms_rm_rf(const char *path, dms_error *err);
/* Exclusive advisory lock on <dir>/owner.lock without blocking: 1 acquired (*fd holds it; close to release),
 * 0 held by another process, negative on error. */
int dms_state_lock(const char *dir, int *fd, dms_error *err);
/* 1 if some process holds <dir>/owner.lock, 0 if not (or no such file). */
int dms_state_lock_held(const char *dir);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
