/* interp.c - compose's interpolation of scalar values from the droid's env: $VAR, ${VAR}, ${VAR:-default},
 * ${VAR-default}, ${VAR:+alt}, ${VAR+alt}, ${VAR:?message}, ${VAR?message}, $$ for a literal $. Defaults may
 * nest (${A:-${B}}). An unset variable without a default is the empty string; a `$` followed by anything else
 * is kept as it is. The output is bounded by COMPOSE_STRING_MAX. Messages name variables and key paths, never
 * a value: the droid's env may hold secrets. */
#include "compose_priv.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct interp {
    char *const *env;
    const char *path;
    dms_error *err;
} interp;

static int expand(interp *ip, const char *s, size_t len, int depth, dmsu_buf *out);

static bool name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

static int append(interp *ip, dmsu_buf *out, const char *s, size_t n)
{
    if (out->len + n > COMPOSE_STRING_MAX)
        return dms_error_set(ip->err, DMS_E_INVALID, ip->path,
                             "%s is longer than %d bytes after interpolation", ip->path, COMPOSE_STRING_MAX);
    if (dmsu_buf_append(out, s, n) < 0)
        return dms_error_set(ip->err, DMS_E_NOMEM, NULL, "out of memory");
    return 0;
}

/* The value of name[0..n) in env, or NULL when unset. */
static const char *lookup(interp *ip, const char *name, size_t n)
{
    for (char *const *e = ip->env; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static int malformed(interp *ip, const char *why)
{
    return dms_error_set(ip->err, DMS_E_INVALID, ip->path, "%s: invalid interpolation: %s", ip->path, why);
}

/* The offset of the '}' closing a "${" whose body starts at s, skipping nested "${...}" and "$$"; -1 if
 * none. */
static long closing_brace(const char *s, size_t len)
{
    int nest = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '$' && i + 1 < len && (s[i + 1] == '$' || s[i + 1] == '{')) {
            nest += s[i + 1] == '{';
            i++;
        } else if (s[i] == '}') {
            if (nest == 0)
                return (long)i;
            nest--;
        }
    }
    return -1;
}

/* The body of ${...}: NAME, then nothing or an operator and a word. */
static int braced(interp *ip, const char *s, size_t len, int depth, dmsu_buf *out)
{
    size_t n = 0;
    if (len == 0 || !name_start(s[0]))
        return malformed(ip, "${ must be followed by a variable name");
    while (n < len && name_char(s[n]))
        n++;
    const char *val = lookup(ip, s, n);
    if (n == len)
        return val ? append(ip, out, val, strlen(val)) : 0;
    bool colon = s[n] == ':';
    size_t op = n + colon;
    if (op >= len || !strchr("-+?", s[op]))
        return dms_error_set(ip->err, DMS_E_INVALID, ip->path,
                             "%s: invalid interpolation after ${%.*s: expected }, :-, -, :+, +, :? or ?",
                             ip->path, (int)n, s);
    const char *word = s + op + 1;
    size_t wlen = len - op - 1;
    bool set = val && (!colon || *val);
    switch (s[op]) {
    case '-':
        return set ? append(ip, out, val, strlen(val)) : expand(ip, word, wlen, depth + 1, out);
    case '+':
        return set ? expand(ip, word, wlen, depth + 1, out) : 0;
    default: /* '?': the message is the file's text as written, so it holds no value of env */
        if (set)
            return append(ip, out, val, strlen(val));
        return dms_error_set(ip->err, DMS_E_INVALID, ip->path, "%s: variable %.*s is required%s%.*s",
                             ip->path, (int)n, s, wlen ? ": " : "", (int)(wlen > 200 ? 200 : wlen), word);
    }
}

static int expand(interp *ip, const char *s, size_t len, int depth, dmsu_buf *out)
{
    if (depth > COMPOSE_INTERP_DEPTH)
        return malformed(ip, "${...} nests too deep");
    size_t i = 0;
    while (i < len) {
        const char *dollar = memchr(s + i, '$', len - i);
        size_t lit = dollar ? (size_t)(dollar - (s + i)) : len - i;
        int r = append(ip, out, s + i, lit);
        if (r < 0 || !dollar)
            return r;
        i += lit;
        char next = '\0';
        if (i + 1 < len)
            next = s[i + 1];
        if (next == '$') {
            r = append(ip, out, "$", 1);
            i += 2;
        } else if (next == '{') {
            long close = closing_brace(s + i + 2, len - i - 2);
            if (close < 0)
                return malformed(ip, "${ without a closing }");
            r = braced(ip, s + i + 2, (size_t)close, depth, out);
            i += 2 + (size_t)close + 1;
        } else if (name_start(next)) {
            size_t n = 1;
            while (i + 1 + n < len && name_char(s[i + 1 + n]))
                n++;
            const char *val = lookup(ip, s + i + 1, n);
            r = val ? append(ip, out, val, strlen(val)) : 0;
            i += 1 + n;
        } else {
            r = append(ip, out, "$", 1);
            i++;
        }
        if (r < 0)
            return r;
    }
    return 0;
}

int compose_interp_string(const char *in, char *const *env, const char *path, char **out, dms_error *err)
{
    interp ip = {.env = env, .path = path ? path : "", .err = err};
    dmsu_buf b = {0};
    *out = NULL;
    int r = expand(&ip, in, strlen(in), 0, &b);
    if (r == 0)
        r = append(&ip, &b, "", 1);
    if (r < 0) {
        dmsu_buf_free(&b);
        return r;
    }
    *out = b.data;
    return 0;
}

static int walk(json_t *node, char *const *env, char *path, size_t plen, dms_error *err);

static int walk_string(json_t *node, char *const *env, const char *path, dms_error *err)
{
    const char *s = json_string_value(node);
    if (!strchr(s, '$'))
        return 0;
    char *v = NULL;
    int r = compose_interp_string(s, env, path, &v, err);
    if (r == 0 && json_string_set(node, v) < 0)
        r = dms_error_set(err, DMS_E_INVALID, path, "%s is not valid UTF-8 after interpolation", path);
    free(v);
    return r;
}

static int walk(json_t *node, char *const *env, char *path, size_t plen, dms_error *err)
{
    int r = 0;
    if (json_is_string(node))
        return walk_string(node, env, path, err);
    if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v)
        {
            snprintf(path + plen, COMPOSE_PATH_MAX - plen, "[%zu]", i);
            if ((r = walk(v, env, path, strnlen(path, COMPOSE_PATH_MAX), err)) < 0)
                return r;
        }
    } else if (json_is_object(node)) {
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v)
        {
            if (plen == 0 && strncmp(k, "x-", 2) == 0 && strcmp(k, "x-dms") != 0)
                continue; /* ignored extensions: whatever they hold, dms does not read it */
            snprintf(path + plen, COMPOSE_PATH_MAX - plen, "%s%s", plen ? "." : "", k);
            if ((r = walk(v, env, path, strnlen(path, COMPOSE_PATH_MAX), err)) < 0)
                return r;
        }
    }
    path[plen] = '\0';
    return 0;
}

int compose_interpolate(json_t *root, char *const *env, dms_error *err)
{
    char path[COMPOSE_PATH_MAX] = "";
    return walk(root, env, path, 0, err);
}
