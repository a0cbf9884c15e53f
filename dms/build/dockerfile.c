/* dockerfile.c - a Dockerfile cut into instructions and words as the classic builder does (see dockerfile.h).
 *
 * Ports of moby/buildkit's frontend/dockerfile parser (splitCommand, extractBuilderFlags, parseWords,
 * parseMaybeJSONToList) and shell lexer (ProcessWord) as Docker 20.10 vendors them. Where a port would have
 * to guess (invalid UTF-8, a '[' that is not a JSON array), it refuses instead: a check that reads a file
 * differently from the engine that builds it is a way around the check. */
#include "dockerfile.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <dms/backend.h>

#include "util.h"

/* ---- instructions ---- */

static bool ascii_ws(char c) /* the parser's tokenWhitespace, [\t\v\f\r ] */
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

static bool
go_byte_space(unsigned char c) /* unicode.IsSpace(rune(byte)), as extractBuilderFlags tests bytes */
{
    return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0;
}

/* strings.TrimSpace: [*s, *s + *n) without Unicode white space at either end. */
static void trim_space(const char **s, size_t *n)
{
    const char *p = *s, *end = *s + *n, *last = p;
    size_t k;
    while (p < end && (k = dmsu_unicode_space_len(p, end)) > 0)
        p += k;
    *s = p;
    for (const char *q = p; q < end;) {
        k = dmsu_unicode_space_len(q, end);
        q += k ? k : 1;
        if (!k)
            last = q;
    }
    *n = last > p ? (size_t)(last - p) : 0;
}

/* extractBuilderFlags: leading words that start with "--" (quotes and backslashes within them resolved), up
 * to the first other word or a bare "--". *rest points into line. */
static int extract_flags(const char *line, char ***flags, const char **rest)
{
    enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
    dmsu_buf w = {0};
    char quote = 0;
    bool blank_ok = false;
    size_t len = strlen(line);
    int r = 0;
    *rest = "";
    for (size_t pos = 0; pos <= len && r == 0; pos++) {
        char ch = line[pos]; /* line[len] is the NUL */
        if (phase == IN_SPACES) {
            if (pos == len)
                break;
            if (go_byte_space((unsigned char)ch))
                continue;
            if (ch != '-' || pos + 1 == len || line[pos + 1] != '-') {
                *rest = line + pos;
                break;
            }
            phase = IN_WORD;
        }
        bool dashes = w.len == 2 && memcmp(w.data, "--", 2) == 0;
        if (pos == len) {
            if (!dashes && (blank_ok || w.len))
                r = dmsu_strv_push(flags, w.data ? w.data : "");
            break;
        }
        if (phase == IN_WORD && go_byte_space((unsigned char)ch)) {
            if (dashes) {
                *rest = line + pos;
                break;
            }
            if (blank_ok || w.len)
                r = dmsu_strv_push(flags, w.data ? w.data : "");
            dmsu_buf_reset(&w);
            blank_ok = false;
            phase = IN_SPACES;
            continue;
        }
        if (phase == IN_WORD && (ch == '\'' || ch == '"')) {
            quote = ch;
            blank_ok = true;
            phase = IN_QUOTE;
            continue;
        }
        if (phase == IN_QUOTE && ch == quote) {
            phase = IN_WORD;
            continue;
        }
        if (ch == '\\') {
            if (pos + 1 == len) {
                phase = IN_WORD;
                continue;
            }
            ch = line[++pos];
        }
        r = dmsu_buf_append(&w, &ch, 1);
    }
    dmsu_buf_free(&w);
    return r < 0 ? -DMS_E_NOMEM : 0;
}

static int on_instr(void *ud, const dmsu_df_instr *in, dms_error *err)
{
    df_file *f = ud;
    df_instr *v = realloc(f->v, (f->n + 1) * sizeof(*v));
    if (!v)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    f->v = v;
    df_instr *it = memset(&f->v[f->n++], 0, sizeof(*it));
    it->line = in->first_line;
    const char *s = in->text;
    size_t n = in->len;
    trim_space(&s, &n);
    size_t k = 0;
    while (k < n && !ascii_ws(s[k]))
        k++;
    it->cmd = strndup(s, k);
    while (k < n && ascii_ws(s[k]))
        k++;
    _cleanup_free_ char *tail = strndup(s + k, n - k);
    it->original = strndup(s, n);
    if (!it->cmd || !tail || !it->original)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    for (char *c = it->cmd; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + ('a' - 'A') : *c);
    const char *rest;
    if (extract_flags(tail, &it->flags, &rest) < 0 ||
        (!it->flags && !(it->flags = calloc(1, sizeof(char *)))))
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    size_t rl = strlen(rest);
    trim_space(&rest, &rl);
    it->args = strndup(rest, rl);
    return it->args ? 0 : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
}

int df_parse(const char *text, size_t len, df_file *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    return dmsu_df_scan(text, len, on_instr, out, &out->escape, err);
}

void df_file_clear(df_file *f)
{
    for (size_t i = 0; f && i < f->n; i++) {
        free(f->v[i].cmd);
        dmsu_strv_free(f->v[i].flags);
        free(f->v[i].args);
        free(f->v[i].original);
    }
    if (f) {
        free(f->v);
        memset(f, 0, sizeof(*f));
    }
}

/* ---- words ---- */

char **df_split_ws(const char *args)
{
    char **v = NULL;
    for (const char *p = args; *p;) {
        while (ascii_ws(*p))
            p++;
        const char *q = p;
        while (*q && !ascii_ws(*q))
            q++;
        if (q > p) {
            _cleanup_free_ char *word = strndup(p, (size_t)(q - p));
            if (!word || dmsu_strv_push(&v, word) < 0) {
                dmsu_strv_free(v);
                return NULL;
            }
        }
        p = q;
    }
    return v;
}

int df_json_or_ws(const char *args, char ***out, dms_error *err)
{
    const char *p = args, *end = args + strlen(args);
    size_t k;
    while (p < end && (k = dmsu_unicode_space_len(p, end)) > 0)
        p += k;
    *out = NULL;
    if (*p != '[') {
        *out = df_split_ws(args);
        return 0;
    }
    json_error_t jerr;
    _cleanup_json_ json_t *a = json_loads(p, JSON_DISABLE_EOF_CHECK, &jerr);
    if (!json_is_array(a))
        return dms_error_set(err, DMS_E_INVALID, NULL, "not a JSON array of strings: %s", a ? "" : jerr.text);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        if (!json_is_string(e) || dmsu_strv_push(out, json_string_value(e)) < 0) {
            dmsu_strv_free(*out);
            *out = NULL;
            return dms_error_set(err, DMS_E_INVALID, NULL, "not a JSON array of strings");
        }
    }
    return 0;
}

char **df_words(const char *args, char escape)
{
    char **v = NULL;
    dmsu_buf w = {0};
    const char *p = args, *end = args + strlen(args);
    char quote = 0;
    bool in_word = false, blank_ok = false;
    int r = 0;
    while (p < end && r == 0) {
        size_t sp = dmsu_unicode_space_len(p, end);
        if (!quote && sp) {
            if (in_word && (blank_ok || w.len))
                r = dmsu_strv_push(&v, w.data ? w.data : "");
            dmsu_buf_reset(&w);
            in_word = blank_ok = false;
            p += sp;
            continue;
        }
        in_word = true;
        char ch = *p++;
        if (!quote && (ch == '\'' || ch == '"')) {
            quote = ch;
            blank_ok = true;
        } else if (quote && ch == quote) {
            quote = 0;
        }
        /* The escape character and what follows it stay in the word (the lexer resolves them), except an
         * escape at the very end, which is dropped; within single quotes it is an ordinary character. */
        if (ch == escape && quote != '\'') {
            if (p == end)
                continue;
            r = dmsu_buf_append(&w, &ch, 1);
            ch = *p++;
        }
        if (r == 0)
            r = dmsu_buf_append(&w, &ch, 1);
    }
    if (r == 0 && in_word && (blank_ok || w.len))
        r = dmsu_strv_push(&v, w.data ? w.data : "");
    dmsu_buf_free(&w);
    if (r < 0) {
        dmsu_strv_free(v);
        return NULL;
    }
    return v;
}

int df_flags(const df_instr *in, const char *const *names, const char **values, dms_error *err)
{
    size_t n = 0;
    while (names[n])
        values[n++] = NULL;
    for (char **f = in->flags; *f; f++) {
        const char *name = *f + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        size_t i = 0;
        while (i < n && (strlen(names[i]) != len || strncmp(names[i], name, len) != 0))
            i++;
        if (i == n)
            return dms_error_set(err, DMS_E_INVALID, NULL, "%s takes no flag --%.*s", in->cmd, (int)len,
                                 name);
        if (!eq)
            return dms_error_set(err, DMS_E_INVALID, NULL, "flag --%s needs a value", names[i]);
        if (values[i])
            return dms_error_set(err, DMS_E_INVALID, NULL, "flag --%s is given twice", names[i]);
        values[i] = eq + 1;
    }
    return 0;
}

/* ---- the shell lexer's ProcessWord ---- */

#define EXPAND_NESTING_MAX 32 /* ${a:-${b:-...}} deeper than this is refused, not recursed into */

typedef struct lex {
    const char *p, *end;
    char esc;
    df_lookup_fn lookup;
    void *ud;
    int depth;
    bool unresolved; /* a value we cannot know: everything stops, the output so far is the known prefix */
    dms_error *err;
} lex;

static int until(lex *lx, char stop, dmsu_buf *out);

static int lex_error(lex *lx, const char *what)
{
    return dms_error_set(lx->err, DMS_E_INVALID, NULL, "%s", what);
}

static int put(lex *lx, dmsu_buf *out, const char *s, size_t n)
{
    return dmsu_buf_append(out, s, n) < 0 ? dms_error_set(lx->err, DMS_E_NOMEM, NULL, "out of memory") : 0;
}

static int single_quote(lex *lx, dmsu_buf *out)
{
    const char *start = ++lx->p;
    const char *q = memchr(start, '\'', (size_t)(lx->end - start));
    if (!q)
        return lex_error(lx, "unexpected end of statement while looking for matching single-quote");
    lx->p = q + 1;
    return put(lx, out, start, (size_t)(q - start));
}

static int dollar(lex *lx, dmsu_buf *out);

static int double_quote(lex *lx, dmsu_buf *out)
{
    lx->p++;
    for (;;) {
        if (lx->p >= lx->end)
            return lex_error(lx, "unexpected end of statement while looking for matching double-quote");
        char ch = *lx->p;
        int r;
        if (ch == '"') {
            lx->p++;
            return 0;
        }
        if (ch == '$') {
            if ((r = dollar(lx, out)) < 0 || lx->unresolved)
                return r;
            continue;
        }
        lx->p++;
        if (ch == lx->esc) {
            if (lx->p >= lx->end)
                continue;
            if (*lx->p == '"' || *lx->p == '$' || *lx->p == lx->esc)
                ch = *lx->p++;
        }
        if ((r = put(lx, out, &ch, 1)) < 0)
            return r;
    }
}

/* processName: digits, or one special parameter, or [A-Za-z0-9_]. A name running into a byte over 0x7f may go
 * on with a Unicode letter, as Go's unicode.IsLetter would have it: that is one thing we do not guess. */
static int name(lex *lx, char *buf, size_t size, bool *unknown)
{
    size_t n = 0;
    const char *p = lx->p;
    if (p < lx->end && *p >= '0' && *p <= '9') {
        while (p < lx->end && *p >= '0' && *p <= '9')
            p++;
    } else if (p < lx->end && *p && strchr("@*#?-$!", *p)) {
        p++;
    } else {
        while (p < lx->end && (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                               (*p >= '0' && *p <= '9')))
            p++;
        *unknown = p < lx->end && (unsigned char)*p >= 0x80;
    }
    n = (size_t)(p - lx->p);
    if (n >= size)
        return lex_error(lx, "variable name too long");
    memcpy(buf, lx->p, n);
    buf[n] = '\0';
    lx->p = p;
    return 0;
}

/* The value of a variable into *value; false (and unresolved) when we cannot know it. */
static bool value_of(lex *lx, const char *var, const char **value)
{
    *value = "";
    df_var st = *var ? lx->lookup(lx->ud, var, value) : DF_VAR_UNSET;
    if (st == DF_VAR_UNSET || !*value)
        *value = "";
    lx->unresolved |= st == DF_VAR_UNKNOWN;
    return st != DF_VAR_UNKNOWN;
}

/* ${name:-word} / ${name:+word}, after the ':'. */
static int modifier(lex *lx, const char *var, dmsu_buf *out)
{
    if (lx->p >= lx->end)
        return lex_error(lx, "syntax error: missing '}'");
    char mod = *lx->p++;
    if (lx->depth + 1 > EXPAND_NESTING_MAX)
        return lex_error(lx, "substitutions nest too deeply");
    dmsu_buf word = {0};
    lx->depth++;
    int r = until(lx, '}', &word);
    lx->depth--;
    const char *value;
    if (r == 0 && !lx->unresolved && value_of(lx, var, &value)) {
        if (mod == '+')
            r = *value ? put(lx, out, word.data ? word.data : "", word.len) : 0;
        else if (mod == '-')
            r = *value ? put(lx, out, value, strlen(value))
                       : put(lx, out, word.data ? word.data : "", word.len);
        else
            r = dms_error_set(lx->err, DMS_E_INVALID, NULL, "unsupported modifier (%c) in substitution", mod);
    }
    dmsu_buf_free(&word);
    return r;
}

static int dollar(lex *lx, dmsu_buf *out)
{
    char var[256];
    bool unknown = false;
    const char *value;
    int r;
    lx->p++;
    if (lx->p >= lx->end || *lx->p != '{') {
        if ((r = name(lx, var, sizeof(var), &unknown)) < 0)
            return r;
        if (unknown) {
            lx->unresolved = true;
            return 0;
        }
        if (!*var)
            return put(lx, out, "$", 1);
        return value_of(lx, var, &value) ? put(lx, out, value, strlen(value)) : 0;
    }
    lx->p++;
    if (lx->p >= lx->end)
        return lex_error(lx, "syntax error: missing '}'");
    if (*lx->p == '{' || *lx->p == '}' || *lx->p == ':')
        return lex_error(lx, "syntax error: bad substitution");
    if ((r = name(lx, var, sizeof(var), &unknown)) < 0)
        return r;
    if (unknown) {
        lx->unresolved = true;
        return 0;
    }
    char ch = '\0';
    if (lx->p < lx->end)
        ch = *lx->p++;
    if (ch == '}')
        return value_of(lx, var, &value) ? put(lx, out, value, strlen(value)) : 0;
    if (ch == ':')
        return modifier(lx, var, out);
    return lex_error(lx, "missing ':' in substitution");
}

/* processStopOn: stop is '\0' for the end of the word. */
static int until(lex *lx, char stop, dmsu_buf *out)
{
    while (lx->p < lx->end) {
        char ch = *lx->p;
        int r = 0;
        if (stop && ch == stop) {
            lx->p++;
            return 0;
        }
        if (ch == '\'')
            r = single_quote(lx, out);
        else if (ch == '"')
            r = double_quote(lx, out);
        else if (ch == '$')
            r = dollar(lx, out);
        else {
            lx->p++;
            if (ch == lx->esc) {
                if (lx->p >= lx->end)
                    break;
                ch = *lx->p++;
            }
            r = put(lx, out, &ch, 1);
        }
        if (r < 0 || lx->unresolved)
            return r;
    }
    if (stop)
        return dms_error_set(lx->err, DMS_E_INVALID, NULL,
                             "unexpected end of statement while looking for matching %c", stop);
    return 0;
}

static bool utf8_valid(const char *s)
{
    size_t n = strlen(s), k;
    _cleanup_free_ char *clean = dmsu_utf8_sanitize(s, n, &k);
    return clean && k == n && memcmp(clean, s, n) == 0;
}

int df_expand(const char *word, char escape, df_lookup_fn lookup, void *ud, char **out, bool *unresolved,
              dms_error *err)
{
    *out = NULL;
    *unresolved = false;
    if (!utf8_valid(word))
        return dms_error_set(err, DMS_E_INVALID, NULL, "not valid UTF-8");
    lex lx = {.p = word, .end = word + strlen(word), .esc = escape, .lookup = lookup, .ud = ud, .err = err};
    dmsu_buf b = {0};
    int r = until(&lx, '\0', &b);
    if (r == 0 && dmsu_buf_append(&b, "", 0) < 0)
        r = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if (r < 0) {
        dmsu_buf_free(&b);
        return r;
    }
    *out = b.data;
    *unresolved = lx.unresolved;
    return 0;
}
