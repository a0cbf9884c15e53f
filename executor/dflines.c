/* dflines.c - a Dockerfile's instructions as the engine's parser joins them (see util.h: dmsu_df_scan).
 *
 * Mirrors the classic builder's line parser (moby/buildkit frontend/dockerfile/parser, as vendored by Docker
 * 20.10): lines split at '\n' with one trailing '\r' dropped and a UTF-8 BOM dropped from the first; parser
 * directives (escape, syntax) only before anything else; a comment or blank line skipped, also in the middle
 * of a continuation; the escape character followed only by blanks at the end of a line continues it. Whoever
 * checks a Dockerfile and whoever edits it (the docker backend's labels) see the same instructions as the
 * engine that builds it: a difference would be a way around the check. */
#include <string.h>
#include <strings.h>

#include <dms/backend.h>

#include "util.h"

typedef struct scan {
    const char *p, *end;
    int lineno;
    char esc;
    bool directives_done, seen_escape, seen_syntax;
} scan;

size_t dmsu_unicode_space_len(const char *p, const char *end)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t n = (size_t)(end - p);
    if (n >= 1 && (u[0] == ' ' || (u[0] >= '\t' && u[0] <= '\r')))
        return 1;
    if (n >= 2 && u[0] == 0xC2 && (u[1] == 0x85 || u[1] == 0xA0)) /* U+0085, U+00A0 */
        return 2;
    if (n < 3)
        return 0;
    if ((u[0] == 0xE1 && u[1] == 0x9A && u[2] == 0x80) || (u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x80))
        return 3; /* U+1680, U+3000 */
    if (u[0] == 0xE2 && u[1] == 0x80 && (u[2] <= 0x8A || u[2] == 0xA8 || u[2] == 0xA9 || u[2] == 0xAF))
        return u[2] >= 0x80 ? 3 : 0; /* U+2000..200A, U+2028, U+2029, U+202F */
    if (u[0] == 0xE2 && u[1] == 0x81 && u[2] == 0x9F)
        return 3; /* U+205F */
    return 0;
}

static const char *ltrim(const char *p, const char *end)
{
    size_t n;
    while (p < end && (n = dmsu_unicode_space_len(p, end)) > 0)
        p += n;
    return p;
}

/* The next physical line [*l, *l + *n), without its '\n' and one '\r' before it. false at the end. */
static int next_line(scan *s, const char **l, size_t *n, dms_error *err)
{
    if (s->p >= s->end)
        return 0;
    const char *nl = memchr(s->p, '\n', (size_t)(s->end - s->p));
    const char *stop = nl ? nl : s->end;
    if (stop - s->p > DMS_DF_LINE_MAX)
        return dms_error_set(err, DMS_E_INVALID, "dockerfile", "Dockerfile line %d is longer than %d bytes",
                             s->lineno + 1, DMS_DF_LINE_MAX);
    *l = s->p;
    *n = (size_t)(stop - s->p);
    if (*n && (*l)[*n - 1] == '\r')
        (*n)--;
    if (s->lineno == 0 && *n >= 3 && memcmp(*l, "\xEF\xBB\xBF", 3) == 0) {
        *l += 3;
        *n -= 3;
    }
    s->p = nl ? nl + 1 : s->end;
    s->lineno++;
    return 1;
}

static bool re_space(char c) /* RE2's \s */
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* `#\s*name\s*=\s*value`, for escape and syntax only, before anything else; anything else ends the
 * directives. */
static int directive(scan *s, const char *p, const char *end, dms_error *err)
{
    if (s->directives_done)
        return 0;
    s->directives_done = true;
    if (p >= end || *p++ != '#')
        return 0;
    while (p < end && re_space(*p))
        p++;
    const char *name = p;
    while (p < end &&
           ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (p > name && *p >= '0' && *p <= '9')))
        p++;
    size_t name_len = (size_t)(p - name);
    while (p < end && re_space(*p))
        p++;
    if (!name_len || p >= end || *p++ != '=')
        return 0;
    while (p < end && re_space(*p))
        p++;
    while (end > p && re_space(end[-1]))
        end--;
    bool is_escape = name_len == 6 && strncasecmp(name, "escape", 6) == 0;
    bool is_syntax = name_len == 6 && strncasecmp(name, "syntax", 6) == 0;
    if (p >= end || (!is_escape && !is_syntax))
        return 0;
    bool *seen = is_escape ? &s->seen_escape : &s->seen_syntax;
    if (*seen)
        return dms_error_set(err, DMS_E_INVALID, "dockerfile",
                             "Dockerfile line %d: only one %.6s parser directive "
                             "can be used",
                             s->lineno, name);
    *seen = true;
    s->directives_done = false;
    if (is_escape) {
        if (end - p != 1 || (*p != '\\' && *p != '`'))
            return dms_error_set(err, DMS_E_INVALID, "dockerfile",
                                 "Dockerfile line %d: invalid escape token "
                                 "'%.*s' (` or \\)",
                                 s->lineno, (int)(end - p > 8 ? 8 : end - p), p);
        s->esc = *p;
    }
    return 0;
}

static bool is_comment(const char *l, size_t n)
{
    const char *p = ltrim(l, l + n);
    return p < l + n && *p == '#';
}

/* Drops a trailing `<escape>[ \t]*` and says whether it was there. */
static bool continues(const scan *s, const char *l, size_t *n)
{
    size_t k = *n;
    while (k && (l[k - 1] == ' ' || l[k - 1] == '\t'))
        k--;
    if (!k || l[k - 1] != s->esc)
        return false;
    *n = k - 1;
    return true;
}

/* The rest of an instruction whose first line ended in the escape character. */
static int join_continuation(scan *s, dmsu_buf *b, bool *open, dms_error *err)
{
    const char *l;
    size_t n;
    int r;
    while ((r = next_line(s, &l, &n, err)) > 0) {
        if (is_comment(l, n) || ltrim(l, l + n) == l + n)
            continue;
        *open = continues(s, l, &n);
        if (dmsu_buf_append(b, l, n) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        if (!*open)
            return 0;
    }
    return r;
}

int dmsu_df_scan(const char *text, size_t len, dmsu_df_instr_fn fn, void *ud, char *escape, dms_error *err)
{
    if (memchr(text, '\0', len))
        return dms_error_set(err, DMS_E_INVALID, "dockerfile", "the Dockerfile contains a NUL byte");
    scan s = {.p = text, .end = text + len, .esc = '\\'};
    dmsu_buf b = {0};
    const char *l;
    size_t n;
    int r;
    while ((r = next_line(&s, &l, &n, err)) > 0) {
        const char *t = ltrim(l, l + n);
        n -= (size_t)(t - l);
        if ((r = directive(&s, t, t + n, err)) < 0)
            break;
        if (n && *t == '#')
            n = 0;
        dmsu_df_instr in = {.first_line = s.lineno, .start = (size_t)(l - text)};
        in.open = continues(&s, t, &n);
        if (!in.open && n == 0)
            continue;
        dmsu_buf_reset(&b);
        if (dmsu_buf_append(&b, t, n) < 0 ||
            (in.open && (r = join_continuation(&s, &b, &in.open, err)) < 0) ||
            dmsu_buf_append(&b, "", 1) < 0) {
            r = r < 0 ? r : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
            break;
        }
        in.text = b.data;
        in.len = b.len - 1;
        in.last_line = s.lineno;
        in.end = (size_t)(s.p - text);
        if ((r = fn(ud, &in, err)) < 0)
            break;
    }
    dmsu_buf_free(&b);
    if (escape)
        *escape = s.esc;
    return r < 0 ? r : 0;
}
