/* snooze/tz.h - time zones from the system's TZif files (RFC 8536), without TZ/setenv/localtime.
 *
 * dmsd evaluates snooze windows in any zone from many threads; glibc's localtime_r works in the process's one
 * zone and changing it means setenv("TZ"), which races every getenv() of other threads (libcurl reads proxy
 * variables per request). So zones are read here: transitions from the file, then its POSIX TZ footer rule
 * for instants past the table (TZif files stop at 2037).
 *
 * Times are seconds since the epoch. A "local" value is a wall-clock time written as if it were UTC
 * (2024-03-31 02:30 local is days_from_civil(2024,3,31)*86400 + 2*3600 + 30*60).
 *
 * Threads: a loaded tz is immutable and may be used from any thread. tz_get() caches by name (thread-safe).
 */
#ifndef DMSD_SNOOZE_TZ_H
#define DMSD_SNOOZE_TZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>

#define TZ_NAME_MAX       64
#define TZ_FILE_MAX_BYTES (256 * 1024) /* the largest TZif file in tzdata is ~4 KiB */
#define TZ_DEFAULT_DIR    "/usr/share/zoneinfo"

typedef struct tz tz;

/* True if name looks like a zone name: "UTC", "Europe/Paris", "America/Argentina/Buenos_Aires", "Etc/GMT+3"
 * (letters, digits, '_', '-', '+', '/'; no "..", no leading '/'). It says nothing of whether the zone exists.
 */
bool tz_name_valid(const char *name);

/* Parses TZif data (version 1 to 4). Caller owns *out; free with tz_free(). INVALID with a reason otherwise.
 */
int tz_parse(const unsigned char *data, size_t len, const char *name, tz **out, dms_error *err);

/* Loads $TZDIR/<name> (TZDIR unset: TZ_DEFAULT_DIR). NOT_FOUND for an unknown zone, INVALID for a bad name or
 * a file that is not TZif. Caller owns *out. */
int tz_load(const char *name, tz **out, dms_error *err);
void tz_free(tz *z); /* accepts NULL */

/* A shared, cached zone (loaded once per name; kept until tz_cache_clear()). Borrowed. */
int tz_get(const char *name, const tz **out, dms_error *err);
/* Frees the cache; only when no thread uses a cached zone any more (at exit, in tests). */
void tz_cache_clear(void);

const char *tz_name(const tz *z);

/* Offset from UTC (seconds east) in effect at the UTC instant t. */
int32_t tz_offset_at(const tz *z, int64_t t);
/* t as a local wall-clock value (t + offset). */
int64_t tz_to_local(const tz *z, int64_t t);
/* The UTC instant of a local wall-clock value. In a gap (spring forward) the time is read with the offset
 * before the change, i.e. it lands as far after the change as it was after the gap's start (02:30 in a
 * 02:00-03:00 gap is 03:30); in an overlap (fall back) the earlier of the two instants. */
int64_t tz_to_utc(const tz *z, int64_t local);

/* Calendar helpers (proleptic Gregorian). */
int64_t tz_days_from_civil(int64_t y, unsigned m, unsigned d);
void tz_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
