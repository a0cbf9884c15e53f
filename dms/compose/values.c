/* values.c - the scalar forms of the compose subset: durations, byte sizes, CPUs, ports, integers, booleans,
 * shell words and paths inside the repository. Every error is INVALID naming the field; none quotes the
 * value, which may hold a secret after interpolation. */
#include "compose_priv.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PORT_MAX 65535

/* Digits at *p into *v (no sign, no leading space), at most max; false when there are none or the value
 * exceeds max. */
static bool read_uint(const char **p, int64_t max, int64_t *v)
{
    const char *end;
    if (!isdigit((unsigned char)**p))
        return false;
    int64_t n = dmsu_parse_i64_prefix(*p, &end);
    if (n < 0 || n > max)
        return false;
    *p = end;
    *v = n;
    return true;
}

int compose_parse_int(const char *s, const char *field, int64_t min, int64_t max, int64_t *out,
                      dms_error *err)
{
    const char *p = s;
    int64_t v;
    if (!s || !read_uint(&p, max, &v) || *p || v < min)
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be an integer from %lld to %lld", field,
                             (long long)min, (long long)max);
    *out = v;
    return 0;
}

/* YAML 1.2's core booleans (the tree keeps every scalar as a string). */
int compose_parse_bool(const char *s, const char *field, bool *out, dms_error *err)
{
    static const char *const yes[] = {"true", "True", "TRUE"}, *const no[] = {"false", "False", "FALSE"};
    for (size_t i = 0; s && i < DMS_ARRAY_SIZE(yes); i++) {
        if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
            *out = s[0] == 't' || s[0] == 'T';
            return 0;
        }
    }
    return dms_error_set(err, DMS_E_INVALID, field, "%s must be true or false", field);
}

/* Go's duration syntax as compose writes it: one or more <integer><unit>, unit us, ms, s, m or h
 * ("1m30s", "500ms"). Microseconds round down to milliseconds. */
int compose_parse_duration_ms(const char *s, const char *field, int64_t *out, dms_error *err)
{
    static const struct {
        const char *unit;
        int64_t us;
    } units[] = {{"us", 1}, {"ms", 1000}, {"s", 1000000}, {"m", 60000000}, {"h", 3600000000LL}};
    const int64_t max_us = COMPOSE_DURATION_MAX_MS * 1000;
    int64_t total = 0;
    const char *p = s;
    if (!s || !*s)
        goto bad;
    while (*p) {
        int64_t v;
        if (!read_uint(&p, max_us, &v))
            goto bad;
        size_t best = DMS_ARRAY_SIZE(units);
        for (size_t i = 0; i < DMS_ARRAY_SIZE(units); i++)
            if (strncmp(p, units[i].unit, strlen(units[i].unit)) == 0 &&
                (best == DMS_ARRAY_SIZE(units) || strlen(units[i].unit) > strlen(units[best].unit)))
                best = i;
        if (best == DMS_ARRAY_SIZE(units) || v > (max_us - total) / units[best].us)
            goto bad;
        total += v * units[best].us;
        p += strlen(units[best].unit);
    }
    *out = total / 1000;
    return 0;
bad:
    return dms_error_set(
        err, DMS_E_INVALID, field,
        "%s must be a duration such as 10s, 1m30s or 500ms (units us, ms, s, m, h), at most 24h", field);
}

/* Compose's byte values: a number, optionally with a fraction, and a unit b, k, m, g (or kb, mb, gb; any
 * case); no unit means bytes. "1.5g" is 1.5 GiB. */
int compose_parse_bytes(const char *s, const char *field, int64_t *out, dms_error *err)
{
    const int64_t max = INT64_MAX / 1024;
    const char *p = s;
    int64_t whole = 0, frac = 0, scale = 1;
    if (!s || !read_uint(&p, max, &whole))
        goto bad;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            goto bad;
        for (; isdigit((unsigned char)*p); p++)
            if (scale < 1000000000) {
                frac = frac * 10 + (*p - '0');
                scale *= 10;
            }
    }
    int64_t mult = 1;
    switch (tolower((unsigned char)*p)) {
    case 'k':
        mult = 1024;
        p++;
        break;
    case 'm':
        mult = 1024 * 1024;
        p++;
        break;
    case 'g':
        mult = 1024 * 1024 * 1024;
        p++;
        break;
    default:
        break;
    }
    if (tolower((unsigned char)*p) == 'b')
        p++;
    if (*p || whole > INT64_MAX / mult)
        goto bad;
    int64_t bytes = whole * mult + frac * mult / scale;
    if (bytes <= 0)
        goto bad;
    *out = bytes;
    return 0;
bad:
    return dms_error_set(err, DMS_E_INVALID, field,
                         "%s must be a positive size such as 512m, 1g, 1.5G or a number of bytes", field);
}

/* "0.5" -> 500 millicores; at most three decimals, more than 0, at most COMPOSE_CPUS_MAX. */
int compose_parse_cpus_millis(const char *s, const char *field, int *out, dms_error *err)
{
    const char *p = s;
    int64_t whole = 0, millis = 0;
    if (!s || !read_uint(&p, COMPOSE_CPUS_MAX, &whole))
        goto bad;
    if (*p == '.') {
        p++;
        int digits = 0;
        for (; isdigit((unsigned char)*p); p++, digits++) {
            if (digits == 3)
                goto bad;
            millis = millis * 10 + (*p - '0');
        }
        for (; digits < 3; digits++)
            millis *= 10;
    }
    if (*p || whole * 1000 + millis == 0 || whole * 1000 + millis > COMPOSE_CPUS_MAX * 1000)
        goto bad;
    *out = (int)(whole * 1000 + millis);
    return 0;
bad:
    return dms_error_set(
        err, DMS_E_INVALID, field,
        "%s must be a number of CPUs such as 0.5 or 2 (more than 0, at most %d, three decimals)", field,
        COMPOSE_CPUS_MAX);
}

/* The short port syntax, [[host_ip:]host_port:]container_port[/protocol], or expose's port[/protocol]. Only
 * the container side is kept: dms never publishes a host port. Ranges are refused. */
int compose_parse_port(const char *s, const char *field, compose_port *out, dms_error *err)
{
    char buf[128];
    if (!s || strlen(s) >= sizeof(buf))
        goto bad;
    strcpy(buf, s);
    out->proto = COMPOSE_PROTO_TCP;
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
        if (strcmp(slash + 1, "udp") == 0)
            out->proto = COMPOSE_PROTO_UDP;
        else if (strcmp(slash + 1, "tcp") != 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s: the protocol must be tcp or udp", field);
    }
    const char *container = strrchr(buf, ':');
    container = container ? container + 1 : buf;
    if (strchr(container, '-'))
        return dms_error_set(err, DMS_E_INVALID, field, "%s: port ranges are not supported", field);
    const char *p = container;
    int64_t v;
    if (!read_uint(&p, PORT_MAX, &v) || *p || v < 1)
        goto bad;
    out->port = (int)v;
    return 0;
bad:
    return dms_error_set(err, DMS_E_INVALID, field,
                         "%s must be a port such as 80, \"8080:80\" or \"80/udp\" (container port 1-65535)",
                         field);
}

/* One word of a shell command line, without expansion: '...' literal, "..." with \ escaping $ ` " \ and
 * newline, \ outside quotes escaping any character. */
static int one_word(const char **pp, dmsu_buf *w, const char *field, dms_error *err)
{
    const char *p = *pp;
    char quote = 0;
    for (; *p && (quote || !strchr(" \t\n", *p)); p++) {
        const char *c = p;
        if (quote == '\'' && *p == '\'') {
            quote = 0;
            continue;
        }
        if (quote == '"' && *p == '"') {
            quote = 0;
            continue;
        }
        if (!quote && (*p == '\'' || *p == '"')) {
            quote = *p;
            continue;
        }
        if (*p == '\\' && quote != '\'' && p[1] && (!quote || strchr("$`\"\\\n", p[1]))) {
            c = ++p;
            if (*c == '\n') /* a line continuation */
                continue;
        }
        if (dmsu_buf_append(w, c, 1) < 0)
            return compose_nomem(err);
    }
    if (quote)
        return dms_error_set(err, DMS_E_INVALID, field, "%s has an unterminated %s quote", field,
                             quote == '"' ? "double" : "single");
    *pp = p;
    return 0;
}

int compose_split_words(const char *s, const char *field, char ***out, dms_error *err)
{
    char **v = calloc(1, sizeof(*v));
    size_t n = 0;
    int r = 0;
    if (!v)
        return compose_nomem(err);
    for (const char *p = s; r == 0;) {
        while (*p && strchr(" \t\n", *p))
            p++;
        if (!*p)
            break;
        dmsu_buf w = {0};
        if ((r = one_word(&p, &w, field, err)) == 0 && dmsu_buf_append(&w, "", 1) < 0)
            r = compose_nomem(err);
        if (r == 0 && ++n > COMPOSE_LIST_MAX)
            r = dms_error_set(err, DMS_E_INVALID, field, "%s has more than %d words", field,
                              COMPOSE_LIST_MAX);
        if (r == 0 && dmsu_strv_push(&v, w.data) < 0)
            r = compose_nomem(err);
        dmsu_buf_free(&w);
    }
    if (r < 0) {
        dmsu_strv_free(v);
        return r;
    }
    *out = v;
    return 0;
}

int compose_repo_path(const char *s, const char *field, char **out, dms_error *err)
{
    if (!s)
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be a path", field);
    if (s[0] == '/' || s[0] == '~')
        return dms_error_set(err, DMS_E_INVALID, field,
                             "%s: host paths are not allowed; give a path relative to the repository", field);
    if (strstr(s, "://") || strncmp(s, "git@", 4) == 0)
        return dms_error_set(err, DMS_E_INVALID, field,
                             "%s: URLs are not allowed; give a path in the repository", field);
    dmsu_buf b = {0};
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 2 && strncmp(p, "..", 2) == 0) {
            dmsu_buf_free(&b);
            return dms_error_set(err, DMS_E_INVALID, field, "%s must stay inside the repository (no ..)",
                                 field);
        }
        for (const char *c = p; c < p + n; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\') {
                dmsu_buf_free(&b);
                return dms_error_set(err, DMS_E_INVALID, field,
                                     "%s must not hold control characters or backslashes", field);
            }
        if (n > 0 && !(n == 1 && *p == '.') &&
            ((b.len && dmsu_buf_append(&b, "/", 1) < 0) || dmsu_buf_append(&b, p, n) < 0)) {
            dmsu_buf_free(&b);
            return compose_nomem(err);
        }
        p += n;
        p += *p == '/';
    }
    if ((b.len == 0 && dmsu_buf_append(&b, ".", 1) < 0) || dmsu_buf_append(&b, "", 1) < 0) {
        dmsu_buf_free(&b);
        return compose_nomem(err);
    }
    *out = b.data;
    return 0;
}

bool compose_valid_service_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > COMPOSE_NAME_MAX || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}
