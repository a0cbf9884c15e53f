/* tz.c - TZif files and POSIX TZ rules (see tz.h). Format: RFC 8536; footer rules: POSIX.1-2017 8.3 (TZ),
 * with RFC 8536's extension of transition times from -167 to 167 hours. */
#include "tz.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define SECS_PER_DAY      86400
#define TZIF_HEADER_BYTES 44
#define TZ_RULE_HOURS_MAX 167 /* RFC 8536 3.3.1: a rule's time may reach 167 h */
#define TZ_DST_DEFAULT_S  3600
/* tz_to_utc looks this far before and after a wall time for the offsets around it: wider than any offset
 * (-12..+14 h), narrower than the distance between two transitions of any real zone. */
#define TZ_PROBE_S (SECS_PER_DAY + 16 * 3600)

typedef struct rule_date {
    char kind; /* 'J': day 1..365 without Feb 29; 'N': day 0..365; 'M': month.week.weekday */
    int n, m, w, d;
    int32_t secs; /* local time of day of the change */
} rule_date;

typedef struct tz_rule {
    bool valid;
    int32_t std_off; /* seconds east of UTC */
    bool has_dst;
    int32_t dst_off;
    rule_date start, end;
} tz_rule;

struct tz {
    char name[TZ_NAME_MAX + 1];
    int64_t *trans;
    uint8_t *idx;
    size_t n_trans;
    int32_t *type_off;
    size_t n_types;
    tz_rule footer;
};

/* ---- calendar (Howard Hinnant's days_from_civil / civil_from_days) ---- */

int64_t tz_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void tz_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
    return (int)(((days % 7) + 11) % 7);
}

/* ---- POSIX TZ rules (the footer) ---- */

static const char *parse_tzname(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q && q - p >= 4 ? q + 1 : NULL;
    }
    const char *q = p;
    while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
        q++;
    return q - p >= 3 ? q : NULL;
}

/* [+-]hh[:mm[:ss]] into *secs; NULL if malformed. */
static const char *parse_hms(const char *p, int max_hours, int32_t *secs)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (*p < '0' || *p > '9')
        return NULL;
    int h = 0, m = 0, s = 0;
    while (*p >= '0' && *p <= '9' && h <= max_hours)
        h = h * 10 + (*p++ - '0');
    if (h > max_hours)
        return NULL;
    for (int part = 0; part < 2 && *p == ':'; part++) {
        p++;
        if (p[0] < '0' || p[0] > '5' || p[1] < '0' || p[1] > '9')
            return NULL;
        int v = (p[0] - '0') * 10 + (p[1] - '0');
        p += 2;
        if (part == 0)
            m = v;
        else
            s = v;
    }
    *secs = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *parse_num(const char *p, int lo, int hi, int *out)
{
    if (*p < '0' || *p > '9')
        return NULL;
    int v = 0;
    while (*p >= '0' && *p <= '9' && v <= hi)
        v = v * 10 + (*p++ - '0');
    if (v < lo || v > hi)
        return NULL;
    *out = v;
    return p;
}

static const char *parse_rule_date(const char *p, rule_date *r)
{
    if (*p == 'J') {
        r->kind = 'J';
        p = parse_num(p + 1, 1, 365, &r->n);
    } else if (*p == 'M') {
        r->kind = 'M';
        if (!(p = parse_num(p + 1, 1, 12, &r->m)) || *p++ != '.' || !(p = parse_num(p, 1, 5, &r->w)) ||
            *p++ != '.')
            return NULL;
        p = parse_num(p, 0, 6, &r->d);
    } else {
        r->kind = 'N';
        p = parse_num(p, 0, 365, &r->n);
    }
    if (!p)
        return NULL;
    r->secs = 2 * 3600;
    if (*p == '/')
        p = parse_hms(p + 1, TZ_RULE_HOURS_MAX, &r->secs);
    return p;
}

/* "CET-1CEST,M3.5.0,M10.5.0/3", "<+0330>-3:30", "UTC0", "EST5EDT" (rules default to the US ones). */
static int parse_rule(const char *s, tz_rule *out)
{
    tz_rule r = {0};
    int32_t v;
    const char *p = parse_tzname(s);
    if (!p || !(p = parse_hms(p, 24, &v)))
        return -1;
    r.std_off = -v; /* POSIX offsets count west */
    if (*p) {
        if (!(p = parse_tzname(p)))
            return -1;
        r.has_dst = true;
        r.dst_off = r.std_off + TZ_DST_DEFAULT_S;
        if (*p && *p != ',') {
            if (!(p = parse_hms(p, 24, &v)))
                return -1;
            r.dst_off = -v;
        }
        if (*p == ',') {
            if (!(p = parse_rule_date(p + 1, &r.start)) || *p++ != ',' || !(p = parse_rule_date(p, &r.end)))
                return -1;
        } else {
            r.start = (rule_date){.kind = 'M', .m = 3, .w = 2, .d = 0, .secs = 2 * 3600};
            r.end = (rule_date){.kind = 'M', .m = 11, .w = 1, .d = 0, .secs = 2 * 3600};
        }
    }
    if (*p)
        return -1;
    r.valid = true;
    *out = r;
    return 0;
}

/* The local wall-clock moment (as if UTC) at which a rule date falls in year y. */
static int64_t rule_local(const rule_date *r, int64_t y)
{
    int64_t jan1 = tz_days_from_civil(y, 1, 1), day;
    switch (r->kind) {
    case 'J':
        day = jan1 + r->n - 1 + (is_leap(y) && r->n >= 60);
        break;
    case 'N':
        day = jan1 + r->n;
        break;
    default: {
        int64_t first = tz_days_from_civil(y, (unsigned)r->m, 1);
        day = first + (r->d - weekday(first) + 7) % 7 + (int64_t)(r->w - 1) * 7;
        while (day >= first + days_in_month(y, (unsigned)r->m))
            day -= 7; /* week 5 means "the last" */
        break;
    }
    }
    return day * SECS_PER_DAY + r->secs;
}

static int32_t rule_offset_at(const tz_rule *r, int64_t t)
{
    if (!r->has_dst)
        return r->std_off;
    int64_t y;
    unsigned m, d;
    tz_civil_from_days(floor_div(t + r->std_off, SECS_PER_DAY), &y, &m, &d);
    /* The start is given in standard time, the end in daylight time. */
    int64_t start = rule_local(&r->start, y) - r->std_off;
    int64_t end = rule_local(&r->end, y) - r->dst_off;
    bool dst =
        start < end ? (t >= start && t < end) : !(t >= end && t < start); /* southern: across the new year */
    return dst ? r->dst_off : r->std_off;
}

/* ---- TZif ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts;

static int read_header(const unsigned char *p, size_t len, tzif_counts *c, char *version)
{
    if (len < TZIF_HEADER_BYTES || memcmp(p, "TZif", 4) != 0)
        return -1;
    *version = (char)p[4];
    c->isut = be32(p + 20);
    c->isstd = be32(p + 24);
    c->leap = be32(p + 28);
    c->time = be32(p + 32);
    c->type = be32(p + 36);
    c->chars = be32(p + 40);
    return 0;
}

static size_t block_size(const tzif_counts *c, size_t time_bytes)
{
    return (size_t)c->time * time_bytes + c->time + (size_t)c->type * 6 + c->chars +
           (size_t)c->leap * (time_bytes + 4) + c->isstd + c->isut;
}

static int bad(dms_error *err, const char *name, const char *why)
{
    return dms_error_set(err, DMS_E_INVALID, "tz", "time zone %s: %s", name, why);
}

int tz_parse(const unsigned char *data, size_t len, const char *name, tz **out, dms_error *err)
{
    tzif_counts c;
    char version;
    const char *nm = name ? name : "?";
    if (read_header(data, len, &c, &version) < 0)
        return bad(err, nm, "not a TZif file");
    size_t time_bytes = 4;
    const unsigned char *p = data + TZIF_HEADER_BYTES;
    size_t left = len - TZIF_HEADER_BYTES;
    if (c.time > TZ_FILE_MAX_BYTES || c.type > 256 || c.chars > TZ_FILE_MAX_BYTES ||
        c.leap > TZ_FILE_MAX_BYTES || c.isstd > 256 || c.isut > 256)
        return bad(err, nm, "implausible counts");
    if (version >= '2') {
        /* Skip the 32-bit block; the 64-bit one follows with its own header. */
        size_t skip = block_size(&c, 4);
        if (skip > left || read_header(p + skip, left - skip, &c, &version) < 0)
            return bad(err, nm, "truncated");
        p += skip + TZIF_HEADER_BYTES;
        left -= skip + TZIF_HEADER_BYTES;
        time_bytes = 8;
        if (c.time > TZ_FILE_MAX_BYTES || c.type > 256 || c.chars > TZ_FILE_MAX_BYTES ||
            c.leap > TZ_FILE_MAX_BYTES || c.isstd > 256 || c.isut > 256)
            return bad(err, nm, "implausible counts");
    }
    size_t need = block_size(&c, time_bytes);
    if (need > left || c.type == 0)
        return bad(err, nm, c.type == 0 ? "no local time types" : "truncated");
    tz *z = calloc(1, sizeof(*z));
    if (!z)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    snprintf(z->name, sizeof(z->name), "%s", nm);
    z->n_trans = c.time;
    z->n_types = c.type;
    z->trans = calloc(c.time + 1, sizeof(*z->trans));
    z->idx = calloc(c.time + 1, 1);
    z->type_off = calloc(c.type, sizeof(*z->type_off));
    if (!z->trans || !z->idx || !z->type_off) {
        tz_free(z);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < c.time; i++) {
        z->trans[i] = time_bytes == 8 ? be64(p + i * 8) : (int32_t)be32(p + i * 4);
        if (i && z->trans[i] <= z->trans[i - 1]) {
            tz_free(z);
            return bad(err, nm, "transitions out of order");
        }
    }
    p += (size_t)c.time * time_bytes;
    for (size_t i = 0; i < c.time; i++) {
        z->idx[i] = p[i];
        if (p[i] >= c.type) {
            tz_free(z);
            return bad(err, nm, "a transition names a missing type");
        }
    }
    p += c.time;
    for (size_t i = 0; i < c.type; i++) {
        int32_t off = (int32_t)be32(p + i * 6);
        if (off < -25 * 3600 || off > 26 * 3600) {
            tz_free(z);
            return bad(err, nm, "implausible UTC offset");
        }
        z->type_off[i] = off;
    }
    p += need - (size_t)c.time * time_bytes - c.time;
    left -= need;
    /* The footer: "\n<POSIX TZ>\n", used for instants after the last transition. */
    if (time_bytes == 8 && left >= 2 && p[0] == '\n') {
        const unsigned char *nl = memchr(p + 1, '\n', left - 1);
        char rule[128];
        size_t rl = nl ? (size_t)(nl - p - 1) : 0;
        if (nl && rl > 0 && rl < sizeof(rule)) {
            memcpy(rule, p + 1, rl);
            rule[rl] = '\0';
            if (parse_rule(rule, &z->footer) < 0) {
                tz_free(z);
                return bad(err, nm, "unreadable TZ rule in the footer");
            }
        }
    }
    *out = z;
    return 0;
}

void tz_free(tz *z)
{
    if (!z)
        return;
    free(z->trans);
    free(z->idx);
    free(z->type_off);
    free(z);
}

bool tz_name_valid(const char *name)
{
    if (!name || !*name || name[0] == '/' || name[0] == '-' || strlen(name) > TZ_NAME_MAX ||
        strstr(name, ".."))
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '-' || ch == '+' || ch == '/';
        if (!ok || (ch == '/' && (p[1] == '/' || p[1] == '\0')))
            return false;
    }
    return true;
}

int tz_load(const char *name, tz **out, dms_error *err)
{
    if (!tz_name_valid(name))
        return dms_error_set(err, DMS_E_INVALID, "tz",
                             "\"%.80s\" is not a time zone name (e.g. Europe/Paris)", name ? name : "");
    const char *dir = getenv("TZDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : TZ_DEFAULT_DIR, name);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return dms_error_set(err, fd >= 0 || errno == ENOENT || errno == ENOTDIR ? DMS_E_NOT_FOUND : DMS_E_IO,
                             "tz", "unknown time zone \"%s\" (not in %s)", name,
                             dir && *dir ? dir : TZ_DEFAULT_DIR);
    if (st.st_size > TZ_FILE_MAX_BYTES)
        return bad(err, name, "file too large");
    _cleanup_free_ unsigned char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "read %s", path);
        got += (size_t)n;
    }
    return tz_parse(buf, got, name, out, err);
}

/* ---- the cache ---- */

typedef struct tz_entry {
    tz *z;
    struct tz_entry *next;
} tz_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static tz_entry *cache;

int tz_get(const char *name, const tz **out, dms_error *err)
{
    pthread_mutex_lock(&cache_lock);
    for (tz_entry *e = cache; e; e = e->next)
        if (strcmp(e->z->name, name) == 0) {
            *out = e->z;
            pthread_mutex_unlock(&cache_lock);
            return 0;
        }
    pthread_mutex_unlock(&cache_lock);
    tz *z = NULL;
    int r = tz_load(name, &z, err);
    if (r < 0)
        return r;
    tz_entry *e = calloc(1, sizeof(*e));
    if (!e) {
        tz_free(z);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    pthread_mutex_lock(&cache_lock);
    for (tz_entry *o = cache; o; o = o->next)
        if (strcmp(o->z->name, name) == 0) { /* another thread loaded it meanwhile */
            *out = o->z;
            pthread_mutex_unlock(&cache_lock);
            tz_free(z);
            free(e);
            return 0;
        }
    e->z = z;
    e->next = cache;
    cache = e;
    *out = z;
    pthread_mutex_unlock(&cache_lock);
    return 0;
}

void tz_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    while (cache) {
        tz_entry *e = cache;
        cache = e->next;
        tz_free(e->z);
        free(e);
    }
    pthread_mutex_unlock(&cache_lock);
}

/* ---- conversions ---- */

const char *tz_name(const tz *z)
{
    return z->name;
}

int32_t tz_offset_at(const tz *z, int64_t t)
{
    if (z->n_trans == 0 || t >= z->trans[z->n_trans - 1]) {
        if (z->footer.valid)
            return rule_offset_at(&z->footer, t);
        return z->n_trans ? z->type_off[z->idx[z->n_trans - 1]] : z->type_off[0];
    }
    if (t < z->trans[0])
        return z->type_off[0];
    size_t lo = 0, hi = z->n_trans - 1; /* trans[lo] <= t < trans[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->type_off[z->idx[lo]];
}

int64_t tz_to_local(const tz *z, int64_t t)
{
    return t + tz_offset_at(z, t);
}

int64_t tz_to_utc(const tz *z, int64_t local)
{
    int32_t before = tz_offset_at(z, local - TZ_PROBE_S), after = tz_offset_at(z, local + TZ_PROBE_S);
    int64_t t1 = local - before, t2 = local - after;
    bool ok1 = tz_to_local(z, t1) == local, ok2 = tz_to_local(z, t2) == local;
    if (ok1 && ok2)
        return t1 < t2 ? t1 : t2; /* an overlap: the earlier */
    if (ok2)
        return t2;
    return t1; /* valid, or a gap: read with the offset before the change */
}
