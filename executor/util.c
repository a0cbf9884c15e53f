/* util.c - string vectors, capped buffers, UTF-8 and small parsers used across the library, the backends,
 * dmsd and the CLIs (libdms-util.a, see util.h). */
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void dmsu_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

size_t dmsu_strv_len(char *const *v)
{
    size_t n = 0;
    if (v)
        while (v[n])
            n++;
    return n;
}

char **dmsu_strv_copy(char *const *v)
{
    if (!v)
        return NULL;
    size_t n = dmsu_strv_len(v);
    char **out = calloc(n + 1, sizeof(char *));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(v[i]);
        if (!out[i]) {
            dmsu_strv_free(out);
            errno = ENOMEM;
            return NULL;
        }
    }
    return out;
}

int dmsu_strv_push(char ***v, const char *s)
{
    size_t n = dmsu_strv_len(*v);
    char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    char **nv = realloc(*v, (n + 2) * sizeof(char *));
    if (!nv) {
        free(copy);
        return -ENOMEM;
    }
    nv[n] = copy;
    nv[n + 1] = NULL;
    *v = nv;
    return 0;
}

bool dmsu_strv_contains(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

char *dmsu_strdup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    return r < 0 ? NULL : s;
}

int dmsu_snprintf_ok(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return (r < 0 || (size_t)r >= size) ? -1 : 0;
}

int dmsu_buf_append(dmsu_buf *b, const void *data, size_t len)
{
    if (b->max && b->len + len > b->max) {
        b->overflow = true;
        len = b->max > b->len ? b->max - b->len : 0;
        if (len == 0)
            return 0;
    }
    if (b->len + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + len + 1)
            ncap *= 2;
        char *nd = realloc(b->data, ncap);
        if (!nd)
            return -ENOMEM;
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int dmsu_buf_printf(dmsu_buf *b, const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -ENOMEM;
    r = dmsu_buf_append(b, s, (size_t)r);
    free(s);
    return r;
}

void dmsu_buf_reset(dmsu_buf *b)
{
    b->len = 0;
    b->overflow = false;
    if (b->data)
        b->data[0] = '\0';
}

void dmsu_buf_free(dmsu_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->overflow = false;
}

void dmsu_buf_consume(dmsu_buf *b, size_t n)
{
    if (n >= b->len) {
        dmsu_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

const char *dmsu_kv_get(char *const *kv, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; kv && kv[i]; i++)
        if (strncmp(kv[i], key, kl) == 0 && kv[i][kl] == '=')
            return kv[i] + kl + 1;
    return NULL;
}

static int env_push(char ***env, const char *name, const char *value)
{
    _cleanup_free_ char *kv = dmsu_strdup_printf("%s=%s", name, value);
    return kv ? dmsu_strv_push(env, kv) : -ENOMEM;
}

char **dmsu_env_minimal(const char *const *keep, const char *const *extra)
{
    char **env = calloc(1, sizeof(char *));
    const char *path = getenv("PATH");
    int r = env ? env_push(&env, "PATH", path && *path ? path : DMS_DEFAULT_PATH) : -ENOMEM;
    for (size_t i = 0; r == 0 && keep && keep[i]; i++) {
        const char *v = strcmp(keep[i], "PATH") != 0 ? getenv(keep[i]) : NULL;
        if (v)
            r = env_push(&env, keep[i], v);
    }
    for (size_t i = 0; r == 0 && extra && extra[i]; i++)
        r = dmsu_strv_push(&env, extra[i]);
    if (r < 0) {
        dmsu_strv_free(env);
        return NULL;
    }
    return env;
}

int64_t dmsu_parse_i64(const char *s)
{
    if (!s || !*s)
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v > (INT64_MAX - (*p - '0')) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

int64_t dmsu_parse_i64_prefix(const char *s, const char **end)
{
    const char *p = s;
    if (end)
        *end = s;
    if (!p)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    int64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - (*p - '0')) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (end)
        *end = p;
    return v;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid/incomplete. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t need;
    uint32_t cp;
    if ((s[0] & 0xE0) == 0xC0) {
        need = 2;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        need = 3;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        need = 4;
        cp = s[0] & 0x07;
    } else
        return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

bool dmsu_utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = strlen(str);
    for (size_t i = 0, k; i < len; i += k)
        if ((k = utf8_seq_len(s + i, len - i)) == 0)
            return false;
    return true;
}

char *dmsu_utf8_sanitize(const char *data, size_t len, size_t *out_len)
{
    dmsu_buf b = {0};
    const unsigned char *s = (const unsigned char *)data;
    size_t i = 0;
    if (dmsu_buf_append(&b, "", 0) < 0)
        return NULL;
    while (i < len) {
        size_t k = s[i] ? utf8_seq_len(s + i, len - i) : 0;
        int r;
        if (k == 0) {
            r = dmsu_buf_append(&b, "\xEF\xBF\xBD", 3); /* U+FFFD for invalid bytes and NUL */
            k = 1;
        } else {
            r = dmsu_buf_append(&b, s + i, k);
        }
        if (r < 0) {
            dmsu_buf_free(&b);
            return NULL;
        }
        i += k;
    }
    if (out_len)
        *out_len = b.len;
    return b.data;
}
