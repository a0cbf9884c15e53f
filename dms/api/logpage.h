/* api/logpage.h - one page of runtime logs: frames from an executor log stream, formatted, bounded by lines
 * and bytes, with the cursor (the ts_ns of the last frame) for the next page.
 *
 * Cursor rule: a page asked `from` F holds only frames with ts_ns > F (logpage_since(F) is the since_ns to
 * open the stream with), so passing a page's cursor as the next `from` never repeats the line at exactly that
 * timestamp. A page ends on a whole line: a long line split into partial frames is never cut between pages.
 */
#ifndef DMSD_API_LOGPAGE_H
#define DMSD_API_LOGPAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <dms/executor.h>

#include "util.h"

typedef struct log_fmt {
    bool json;           /* NDJSON {"ts","stream","line","partial"} instead of raw text */
    bool timestamps;     /* text: prefix each line with its RFC 3339 time (9-digit fraction) */
    const char *service; /* a compose droid's merged logs: text lines get "[service] " (after the time),
                          * JSON objects a "service" member; NULL: untagged. Borrowed. */
} log_fmt;

typedef struct logpage {
    int64_t last_ts;    /* in: `from` (0: none); out: ts of the last frame added, or unchanged */
    long long lines;    /* out: whole lines added */
    bool ended;         /* out: the stream ended (the run is over and everything was read) */
    bool at_line_start; /* in/out: formatting state across calls (start with true) */
} logpage;

/* since_ns for a stream that must start after `from` (exclusive); 0 for no bound. */
int64_t logpage_since(int64_t from);

/* Appends one frame to b in the chosen form. The text tags (time, service) go before the first frame of a
 * line only: *at_line_start says where the previous frame left off. */
void logpage_format(dmsu_buf *b, const dms_log_frame *f, const log_fmt *fmt, bool *at_line_start);

/* Reads what the stream has now (never waits), up to `limit` whole lines (< 0: no limit) and about max_bytes,
 * into b. 0 or a negative error. */
int logpage_read(dms_log_stream *s, long long limit, size_t max_bytes, const log_fmt *fmt, dmsu_buf *b,
                 logpage *pg, dms_error *err);

#endif
