/* schedule.c - snooze schedules: parsing, canonical form, window evaluation (see schedule.h). */
#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECS_PER_DAY 86400
/* Window occurrences are looked for from this many days before t to this many after: enough for the merged
 * window around t and the next start, whatever the zones' offsets. */
#define SCAN_DAYS_BEFORE 2
#define SCAN_DAYS_AFTER  9
#define OCCURRENCES_MAX  (SNOOZE_WINDOWS_MAX * (SCAN_DAYS_BEFORE + SCAN_DAYS_AFTER + 1))

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* "HH:MM", 00:00 to 23:59, exactly five characters. */
static int parse_hhmm(const char *s, int *minutes)
{
    if (!s || strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    if (h > 23 || m > 59)
        return -1;
    *minutes = h * 60 + m;
    return 0;
}

static int parse_window(json_t *w, size_t i, snooze_window *out, dms_error *err)
{
    char field[48];
    if (!json_is_object(w)) {
        snprintf(field, sizeof(field), "windows[%zu]", i);
        return dms_error_set(err, DMS_E_INVALID, field, "a window is an object {\"from\", \"to\", \"tz\"}");
    }
    const char *key;
    json_t *v;
    json_object_foreach(w, key, v)
    {
        if (strcmp(key, "from") != 0 && strcmp(key, "to") != 0 && strcmp(key, "tz") != 0) {
            snprintf(field, sizeof(field), "windows[%zu].%.24s", i, key);
            return dms_error_set(err, DMS_E_INVALID, field,
                                 "unknown key \"%.64s\" (a window has from, to, tz)", key);
        }
    }
    static const char *const bounds[] = {"from", "to"};
    int mins[2];
    for (int b = 0; b < 2; b++) {
        v = json_object_get(w, bounds[b]);
        snprintf(field, sizeof(field), "windows[%zu].%s", i, bounds[b]);
        if (!v)
            return dms_error_set(err, DMS_E_INVALID, field, "%s is required (\"HH:MM\")", bounds[b]);
        if (!json_is_string(v) || parse_hhmm(json_string_value(v), &mins[b]) < 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be a time \"HH:MM\" from 00:00 to 23:59",
                                 bounds[b]);
    }
    if (mins[0] == mins[1]) {
        snprintf(field, sizeof(field), "windows[%zu].to", i);
        return dms_error_set(err, DMS_E_INVALID, field, "from and to are equal: the window would be empty");
    }
    v = json_object_get(w, "tz");
    snprintf(field, sizeof(field), "windows[%zu].tz", i);
    if (v && !json_is_string(v))
        return dms_error_set(err, DMS_E_INVALID, field,
                             "tz must be a time zone name such as \"Europe/Paris\"");
    const char *name = v ? json_string_value(v) : SNOOZE_DEFAULT_TZ;
    const tz *z = NULL;
    dms_error e2 = {0};
    if (tz_get(name, &z, &e2) < 0)
        return dms_error_set(err, e2.code == DMS_E_NOMEM ? DMS_E_NOMEM : DMS_E_INVALID, field, "%s",
                             e2.message);
    out->from_min = mins[0];
    out->to_min = mins[1];
    out->zone = z;
    return 0;
}

int schedule_parse(json_t *body, snooze_schedule *out, dms_error *err)
{
    snooze_schedule s;
    memset(&s, 0, sizeof(s));
    if (!body || json_is_null(body)) {
        *out = s;
        return 0;
    }
    if (!json_is_object(body))
        return dms_error_set(err, DMS_E_INVALID, "body",
                             "the body must be {\"windows\": [...], \"idle_timeout_s\": N}");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "windows") != 0 && strcmp(key, "idle_timeout_s") != 0)
            return dms_error_set(err, DMS_E_INVALID, key,
                                 "unknown key \"%.64s\" (expected windows, idle_timeout_s)", key);
    }
    json_t *wins = json_object_get(body, "windows");
    if (wins && !json_is_null(wins)) {
        if (!json_is_array(wins))
            return dms_error_set(err, DMS_E_INVALID, "windows", "windows must be an array of {from, to, tz}");
        if (json_array_size(wins) > SNOOZE_WINDOWS_MAX)
            return dms_error_set(err, DMS_E_INVALID, "windows", "at most %d windows", SNOOZE_WINDOWS_MAX);
        for (size_t i = 0; i < json_array_size(wins); i++) {
            int r = parse_window(json_array_get(wins, i), i, &s.windows[i], err);
            if (r < 0)
                return r;
            s.n_windows++;
        }
    }
    json_t *idle = json_object_get(body, "idle_timeout_s");
    if (idle && !json_is_null(idle)) {
        if (!json_is_integer(idle) || json_integer_value(idle) < SNOOZE_IDLE_MIN_S ||
            json_integer_value(idle) > SNOOZE_IDLE_MAX_S)
            return dms_error_set(err, DMS_E_INVALID, "idle_timeout_s",
                                 "idle_timeout_s must be a whole number of seconds from %d to %d (a week)",
                                 SNOOZE_IDLE_MIN_S, SNOOZE_IDLE_MAX_S);
        s.idle_timeout_s = json_integer_value(idle);
    } else if (s.n_windows) {
        s.idle_timeout_s = SNOOZE_IDLE_DEFAULT_S;
    }
    *out = s;
    return 0;
}

int schedule_parse_string(const char *json, snooze_schedule *out, dms_error *err)
{
    if (!json || !*json)
        return schedule_parse(NULL, out, err);
    json_error_t jerr;
    json_t *j = json_loads(json, 0, &jerr);
    if (!j)
        return dms_error_set(err, DMS_E_INVALID, "snooze", "stored schedule is not JSON: %s", jerr.text);
    int r = schedule_parse(j, out, err);
    json_decref(j);
    return r;
}

bool schedule_is_empty(const snooze_schedule *s)
{
    return s->n_windows == 0 && s->idle_timeout_s == 0;
}

json_t *schedule_to_json(const snooze_schedule *s)
{
    json_t *wins = json_array();
    for (size_t i = 0; wins && i < s->n_windows; i++) {
        const snooze_window *w = &s->windows[i];
        char from[8], to[8];
        snprintf(from, sizeof(from), "%02d:%02d", w->from_min / 60, w->from_min % 60);
        snprintf(to, sizeof(to), "%02d:%02d", w->to_min / 60, w->to_min % 60);
        json_array_append_new(wins,
                              json_pack("{s:s, s:s, s:s}", "from", from, "to", to, "tz", tz_name(w->zone)));
    }
    if (!wins)
        return NULL;
    return json_pack("{s:o, s:I}", "windows", wins, "idle_timeout_s", (json_int_t)s->idle_timeout_s);
}

char *schedule_to_string(const snooze_schedule *s)
{
    json_t *j = schedule_to_json(s);
    char *out = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return out;
}

/* ---- evaluation ---- */

typedef struct span {
    int64_t start, end;
} span;

static int by_start(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Every occurrence of every window around t, sorted and merged; returns how many spans. */
static size_t occurrences(const snooze_schedule *s, int64_t t, span *out)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_windows; i++) {
        const snooze_window *w = &s->windows[i];
        int64_t day0 = floor_div(tz_to_local(w->zone, t), SECS_PER_DAY);
        for (int64_t k = -SCAN_DAYS_BEFORE; k <= SCAN_DAYS_AFTER; k++) {
            int64_t day = day0 + k;
            int64_t from = day * SECS_PER_DAY + (int64_t)w->from_min * 60;
            int64_t to = (w->to_min > w->from_min ? day : day + 1) * SECS_PER_DAY + (int64_t)w->to_min * 60;
            span sp = {tz_to_utc(w->zone, from), tz_to_utc(w->zone, to)};
            if (sp.end > sp.start) /* a window swallowed by a DST gap does not happen that day */
                out[n++] = sp;
        }
    }
    if (n > 1)
        qsort(out, n, sizeof(*out), by_start);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && out[i].start <= out[m - 1].end) {
            if (out[i].end > out[m - 1].end)
                out[m - 1].end = out[i].end;
        } else {
            out[m++] = out[i];
        }
    }
    return m;
}

bool schedule_window_at(const snooze_schedule *s, int64_t t, int64_t *start, int64_t *end)
{
    span sp[OCCURRENCES_MAX];
    size_t n = occurrences(s, t, sp);
    for (size_t i = 0; i < n; i++)
        if (sp[i].start <= t && t < sp[i].end) {
            if (start)
                *start = sp[i].start;
            if (end)
                *end = sp[i].end;
            return true;
        }
    return false;
}

int64_t schedule_next_start(const snooze_schedule *s, int64_t t)
{
    span sp[OCCURRENCES_MAX];
    size_t n = occurrences(s, t, sp);
    for (size_t i = 0; i < n; i++)
        if (sp[i].start > t)
            return sp[i].start;
    return 0;
}
