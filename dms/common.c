/* common.c - logging, time formatting, random ids (see common.h; the clocks are the library's). */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void dmsd_log(dms_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dms_log_stderr(NULL, level, msg);
}

void dmsd_format_time(int64_t ns, char *buf, size_t size)
{
    time_t sec = (time_t)(ns / NS_PER_SEC);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char when[24];
    (void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", when, (int)((ns % NS_PER_SEC) / NS_PER_MS));
}

int dmsd_random_hex(char *buf, size_t n, dms_error *err)
{
    unsigned char raw[64];
    if (n > sizeof(raw))
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "random_hex: %zu bytes is too many", n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(raw + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return dms_error_set_errno(err, DMS_E_IO, errno, "getrandom");
        }
        got += (size_t)r;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = hex[raw[i] >> 4];
        buf[2 * i + 1] = hex[raw[i] & 15];
    }
    buf[2 * n] = '\0';
    return 0;
}

int dmsd_droid_dir(const char *data_dir, const char *id, char *buf, size_t size)
{
    return dmsu_snprintf_ok(buf, size, "%s/droids/%s", data_dir, id) < 0 ? -DMS_E_INVALID : 0;
}

int dmsd_set_str(char **dst, const char *value)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return -DMS_E_NOMEM;
    free(*dst);
    *dst = copy;
    return 0;
}

bool dmsd_is_slug(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return false;
    return true;
}

int dmsd_json_known_keys(json_t *body, const char *const *keys, dms_error *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = strcmp(keys[i], k) == 0;
        if (!known)
            return dms_error_set(err, DMS_E_INVALID, k, "unknown field \"%.48s\"", k);
    }
    return 0;
}

int dmsd_json_string(json_t *body, const char *key, bool required, const char **out, dms_error *err)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return required ? dms_error_set(err, DMS_E_INVALID, key, "%s is required", key) : 0;
    if (!json_is_string(v))
        return dms_error_set(err, DMS_E_INVALID, key, "%s must be a string", key);
    if (memchr(json_string_value(v), 0, json_string_length(v)))
        return dms_error_set(err, DMS_E_INVALID, key, "%s must not contain NUL", key);
    *out = json_string_value(v);
    return 0;
}
