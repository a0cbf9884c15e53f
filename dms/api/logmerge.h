/* api/logmerge.h - a compose droid's runtime logs: the log streams of its services (one run each) merged
 * into one, every line tagged with its service (log_fmt.service).
 *
 * History is merged by line: a line (its frames up to one that is not partial) goes out whole, and lines go
 * in the order of (ts of their first frame, service name). A page's cursor (logpage.last_ts) is the largest
 * ts of any frame sent.
 *
 * Cursor rule (why it never repeats nor skips a line): ts are strictly increasing within one run, but two
 * services may log at the same ts. A page that is full (limit lines, or max_bytes) still takes every next
 * line that starts at or before the cursor (at most one per other service for lines of one frame), so that
 * when it stops, every line sent ends at or before the cursor and every line not sent starts after it. The
 * next page, asked with `from` = that cursor (exclusive: its streams opened at logpage_since(from)),
 * therefore starts exactly at the first line not sent, in every service. A page may thus hold a few more
 * lines than `limit`; it never holds more than LOGMERGE_MAX_OVERSHOOT_BYTES beyond max_bytes.
 *
 * A page without follow also stops before a line newer than `horizon_ns`: a service's line captured a moment
 * before another's may reach its log store a moment after it, and a cursor already past it would skip it. The
 * route passes "now minus a settle time", so the newest lines wait for the next page.
 *
 * Live (a follow, after the history): lines as they come, service after service. A line split in partial
 * frames is continued while its frames are there; one whose rest has not come yet does not hold back the
 * other services: the text form ends it with a newline and tags its rest again.
 *
 * Not thread-safe: one logmerge is used by one thread at a time (a request, then its parked stream). */
#ifndef DMSD_API_LOGMERGE_H
#define DMSD_API_LOGMERGE_H

#include <stdbool.h>
#include <stdint.h>

#include <dms/executor.h>

#include "logpage.h"
#include "util.h"

#define LOGMERGE_MAX_SOURCES         64
#define LOGMERGE_SERVICE_MAX         63 /* bytes of a service name (store_run.service holds 63) */
#define LOGMERGE_MAX_OVERSHOOT_BYTES (1024 * 1024)

typedef struct logmerge logmerge;

/* A merge in the given form (fmt.service is ignored: each source tags its own). NULL when out of memory. */
logmerge *logmerge_new(const log_fmt *fmt);

/* Adds a service's stream; takes s in every case (freed on error). INVALID naming `service` past
 * LOGMERGE_MAX_SOURCES or for a name too long. */
int logmerge_add(logmerge *m, const char *service, dms_log_stream *s, dms_error *err);

/* Counts the history's lines up to horizon_ns (consumes them: use a logmerge of its own). */
int logmerge_count(logmerge *m, int64_t horizon_ns, long long *lines, dms_error *err);

/* Drops the first n lines of the history (what a tail leaves out). */
int logmerge_skip(logmerge *m, long long n, dms_error *err);

/* Appends the next page of history to b: what the streams have now, up to horizon_ns, `limit` lines (< 0: no
 * limit) and about max_bytes, cut as the cursor rule says. pg->last_ts in: `from`; out: the cursor.
 * pg->ended: every stream ended. 0 or a negative error (of any stream). */
int logmerge_page(logmerge *m, long long limit, size_t max_bytes, int64_t horizon_ns, dmsu_buf *b,
                  logpage *pg, dms_error *err);

/* Live: appends what the streams have now, up to about max_bytes, to b. 1 when every stream ended (and
 * nothing is left), 0 otherwise, or a negative error. */
int logmerge_live(logmerge *m, size_t max_bytes, dmsu_buf *b, dms_error *err);

/* An fd readable when a stream may have something: an epoll fd over every stream's fd, made at the first
 * call. -1 if a stream has none or epoll failed (the caller then polls on a tick). */
int logmerge_fd(logmerge *m);

void logmerge_free(logmerge *m);

#endif
