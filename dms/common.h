/* dms/common.h - small helpers every part of dmsd uses: logging, clocks, random ids, JSON error bodies.
 * Thread-safe unless said otherwise. */
#ifndef DMSD_COMMON_H
#define DMSD_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/backend.h>
#include <dms/executor.h>
#include <jansson.h>

#include "util.h"

#define NS_PER_MS  1000000LL
#define NS_PER_SEC 1000000000LL

/* One log line of key=value fields on stderr through the executor library's logger (level from
 * DMS_LOG_LEVEL). */
void dmsd_log(dms_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) dmsd_log(DMS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  dmsd_log(DMS_LOG_WARN, __VA_ARGS__)
#define log_info(...)  dmsd_log(DMS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) dmsd_log(DMS_LOG_DEBUG, __VA_ARGS__)

/* Wall clock in ns since the epoch and monotonic clock in ms: dms_now_ns() and dms_mono_ms() of the executor
 * library (dms/backend.h), so that the daemon and its executors read time one way. */

/* RFC 3339 UTC with milliseconds ("2024-05-01T12:00:00.123Z") of a wall-clock ns value. buf >= 32 bytes. */
void dmsd_format_time(int64_t ns, char *buf, size_t size);

/* n random bytes (getrandom) as 2n lower-case hex characters plus NUL into buf (size >= 2n+1): for secrets
 * (webhook secrets). Ids come from dmsu_random_id (util.h). 0 or -DMS_E_IO. */
int dmsd_random_hex(char *buf, size_t n, dms_error *err);

/* A page of a list. In: how many rows (limit) and where the page starts (after the row at `after`, when
 * has_after). Out: whether more rows follow (more) and where the next page starts (next: the last row given).
 * A position is a number (an event id, a build id, a release) or, in a list ordered by creation, the creation
 * time (n, ns) and the id that breaks ties; the API shows it as an opaque cursor (api/page.h). */
#define DMSD_CURSOR_ID_MAX 64
typedef struct dmsd_cursor {
    int64_t n;
    char id[DMSD_CURSOR_ID_MAX]; /* "" in a numeric position */
} dmsd_cursor;
typedef struct dmsd_page {
    int limit;
    bool has_after;
    dmsd_cursor after;
    bool more;
    dmsd_cursor next;
} dmsd_page;

/* <data_dir>/droids/<id> into buf: a droid's data directory (its clone and build logs). INVALID when it does
 * not fit. */
int dmsd_droid_dir(const char *data_dir, const char *id, char *buf, size_t size);

/* Frees a string and sets the pointer to the new value (which may be NULL); returns 0 or -DMS_E_NOMEM when
 * a non-NULL value could not be copied. */
int dmsd_set_str(char **dst, const char *value);

/* True if every byte of s is in [a-z0-9-] (and s is not empty). */
bool dmsd_is_slug(const char *s);

/* A request body's keys must all be in keys (NULL-terminated): else INVALID naming the first unknown one. */
int dmsd_json_known_keys(json_t *body, const char *const *keys, dms_error *err);
/* body[key] as a string without NUL bytes, borrowed from body into *out. Absent or null: *out NULL, and
 * INVALID
 * ("key is required") when required. Anything but a string: INVALID naming key. */
int dmsd_json_string(json_t *body, const char *key, bool required, const char **out, dms_error *err);

#endif
