/* snooze/schedule.h - a droid's snooze schedule: daily windows in named time zones and an idle timeout; its
 * strict parsing (every error names its field) and its evaluation at an instant.
 *
 *   {"windows": [{"from": "22:00", "to": "07:00", "tz": "Europe/Paris"}], "idle_timeout_s": 600}
 *
 * A window is a daily period of local time in its zone during which the droid may sleep; "to" at or before
 * "from" ends on the next day. "tz" defaults to "UTC". idle_timeout_s defaults to SNOOZE_IDLE_DEFAULT_S when
 * windows are given; given alone, the droid sleeps whenever it has been idle that long, at any time of day.
 * Nothing given (null, {}, {"windows": []}) is the empty schedule: no snooze.
 *
 * Across a DST change a window keeps its wall-clock times: a bound in a spring-forward gap moves forward by
 * the gap (02:30 in a 02:00-03:00 gap is 03:30), a bound in a fall-back overlap is the first of the two
 * instants. Windows that overlap or touch (22:00-00:00 and 00:00-07:00) act as one.
 *
 * Pure apart from loading zones once (tz_get); thread-safe.
 */
#ifndef DMSD_SNOOZE_SCHEDULE_H
#define DMSD_SNOOZE_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <dms/error.h>

#include "tz.h"

#define SNOOZE_WINDOWS_MAX    16
#define SNOOZE_IDLE_MIN_S     1
#define SNOOZE_IDLE_MAX_S     (7 * 24 * 3600) /* a week: anything longer is a typo, not a plan */
#define SNOOZE_IDLE_DEFAULT_S 600
#define SNOOZE_DEFAULT_TZ     "UTC"

typedef struct snooze_window {
    int from_min;   /* minutes after local midnight */
    int to_min;     /* at or before from_min: the window ends on the next day */
    const tz *zone; /* cached by tz_get(); never freed while dmsd runs */
} snooze_window;

typedef struct snooze_schedule {
    snooze_window windows[SNOOZE_WINDOWS_MAX];
    size_t n_windows;
    int64_t idle_timeout_s; /* 0 only in the empty schedule */
} snooze_schedule;

/* Parses and validates a body (NULL or JSON null: empty). Unknown keys are refused. INVALID with field
 * "windows[1].tz", "idle_timeout_s", ... and a message saying what is wrong. */
int schedule_parse(json_t *body, snooze_schedule *out, dms_error *err);
/* The same from the stored string (the canonical form). */
int schedule_parse_string(const char *json, snooze_schedule *out, dms_error *err);

bool schedule_is_empty(const snooze_schedule *s);
/* Canonical JSON (every default filled in). Caller owns; NULL on OOM. */
json_t *schedule_to_json(const snooze_schedule *s);
char *schedule_to_string(const snooze_schedule *s); /* compact; caller frees */

/* True if the UTC instant t (seconds) is inside a window; then *start and *end bound that window (merged with
 * any it overlaps or touches). False without windows. start/end may be NULL. */
bool schedule_window_at(const snooze_schedule *s, int64_t t, int64_t *start, int64_t *end);
/* The first window start after t (seconds), or 0 without windows. */
int64_t schedule_next_start(const snooze_schedule *s, int64_t t);

#endif
