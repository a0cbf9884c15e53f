/* dfpolicy.c - the walk of a Dockerfile that decides what it may reach (see dfpolicy.h).
 *
 * It follows the classic builder's dispatch (Docker 20.10, builder/dockerfile): ARGs before the first FROM
 * are the only variables FROM sees (their defaults expanded in order, a build arg overriding a default); each
 * stage starts with no declared ARG; in a stage, a variable is first looked up in the environment (what ENV
 * set, over what the base image set), then in the stage's ARGs (a build arg, the default, the global value).
 * FROM <name> is a stage when an earlier stage has that name (in any case), else an image; COPY --from=<x> is
 * an earlier stage by name, a stage by number, else an image, and is not expanded. An ONBUILD trigger runs in
 * whatever build starts from the image later, whose stages and environment we cannot know. */
#include "dfpolicy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <dms/backend.h>

#include "util.h"
#include "dockerfile.h"
#include "imageref.h"

#define SHOWN_MAX 200 /* what of a value a refusal quotes */

typedef struct var {
    char *name;
    char *value; /* NULL: declared without a value (ARG) */
    bool known;  /* false: set from something we could not resolve */
} var;

typedef struct vars {
    var *v;
    size_t n;
} vars;

typedef struct stage {
    char *name;       /* lower case, or NULL */
    vars env;         /* what ENV set in this stage and the stages it starts from */
    bool env_known;   /* nothing else is in its environment (scratch, or stages from scratch) */
    bool opaque;      /* an ARG or ENV set a name we could not read: no variable of it can be known */
    bool has_onbuild; /* its triggers run (and may set anything) when a later stage starts from it */
} stage;

typedef struct walk {
    const dfp_policy *p;
    char esc;
    vars meta; /* the ARGs before the first FROM */
    vars args; /* the ARGs declared in the current stage */
    stage *st; /* every stage so far; the current one is the last */
    size_t n_st;
    bool onbuild; /* checking ONBUILD triggers */
    int line;
    dms_error *err;
} walk;

/* ---- variables ---- */

static var *vars_find(const vars *vs, const char *name)
{
    for (size_t i = vs->n; i-- > 0;)
        if (strcmp(vs->v[i].name, name) == 0)
            return &vs->v[i];
    return NULL;
}

static int vars_set(vars *vs, const char *name, const char *value, bool known)
{
    var *v = vars_find(vs, name);
    if (!v) {
        var *nv = realloc(vs->v, (vs->n + 1) * sizeof(*nv));
        if (!nv)
            return -DMS_E_NOMEM;
        vs->v = nv;
        v = memset(&vs->v[vs->n++], 0, sizeof(*v));
        if (!(v->name = strdup(name)))
            return -DMS_E_NOMEM;
    }
    free(v->value);
    v->value = value ? strdup(value) : NULL;
    v->known = known;
    return value && !v->value ? -DMS_E_NOMEM : 0;
}

static void vars_clear(vars *vs)
{
    for (size_t i = 0; i < vs->n; i++) {
        free(vs->v[i].name);
        free(vs->v[i].value);
    }
    free(vs->v);
    memset(vs, 0, sizeof(*vs));
}

static int vars_copy(vars *dst, const vars *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (vars_set(dst, src->v[i].name, src->v[i].value, src->v[i].known) < 0)
            return -DMS_E_NOMEM;
    return 0;
}

/* The proxy variables the engine lets through without an ARG (builtinAllowedBuildArgs), from build args only.
 */
static bool builtin_arg(const char *name)
{
    static const char *const names[] = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                                        "FTP_PROXY",  "ftp_proxy",  "NO_PROXY",    "no_proxy",
                                        "ALL_PROXY",  "all_proxy"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(names); i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static df_var from_var(const var *v, const char **value)
{
    if (!v->value)
        return DF_VAR_UNSET;
    *value = v->value;
    return v->known ? DF_VAR_SET : DF_VAR_UNKNOWN;
}

/* getBuildArg: a build arg, else the declared default; undeclared names are unset (the proxies excepted). */
static df_var arg_value(const walk *w, const var *declared, const char *name, const char **value)
{
    const char *given = dmsu_kv_get(w->p->build_args, name);
    if ((declared || builtin_arg(name)) && given) {
        *value = given;
        return DF_VAR_SET;
    }
    return declared ? from_var(declared, value) : DF_VAR_UNSET;
}

/* What FROM and the ARGs before it see. */
static df_var meta_lookup(void *ud, const char *name, const char **value)
{
    const walk *w = ud;
    return arg_value(w, vars_find(&w->meta, name), name, value);
}

/* What an instruction of the current stage sees. */
static df_var stage_lookup(void *ud, const char *name, const char **value)
{
    const walk *w = ud;
    const stage *s = &w->st[w->n_st - 1];
    if (s->opaque)
        return DF_VAR_UNKNOWN;
    const var *e = vars_find(&s->env, name);
    if (e)
        return from_var(e, value);
    if (!s->env_known)
        return DF_VAR_UNKNOWN; /* the base image's environment, which comes first, may set it */
    const var *a = vars_find(&w->args, name);
    df_var r = arg_value(w, a, name, value);
    if (a && r == DF_VAR_UNSET) /* ARG NAME without a default: the global ARG's value */
        return arg_value(w, vars_find(&w->meta, name), name, value);
    return r;
}

static df_var unknown_lookup(void *ud, const char *name, const char **value)
{
    (void)ud, (void)name, (void)value;
    return DF_VAR_UNKNOWN;
}

/* ---- refusals ---- */

static int refuse(walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(walk *w, const char *fmt, ...)
{
    char msg[DMS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return dms_error_set(w->err, DMS_E_BUILD_FAILED, "dockerfile", "Dockerfile line %d: %s%s", w->line,
                         w->onbuild ? "ONBUILD " : "", msg);
}

/* written: the reference as the Dockerfile spells it, when substitution made ref of it. */
static int check_image(walk *w, const char *what, const char *written, const char *ref)
{
    char why[256];
    if (dfp_image_allowed(w->p, ref, why, sizeof(why)))
        return 0;
    if (strcmp(written, ref) != 0)
        return refuse(w, "%s %.*s (that is %.*s): %s", what, SHOWN_MAX, written, SHOWN_MAX, ref, why);
    return refuse(w, "%s %.*s: %s", what, SHOWN_MAX, ref, why);
}

/* ---- instructions ---- */

static const stage *stage_named(const walk *w, const char *name, size_t before)
{
    for (size_t i = 0; i < before; i++)
        if (w->st[i].name && strcasecmp(w->st[i].name, name) == 0)
            return &w->st[i];
    return NULL;
}

/* A name FROM ... AS <name> may give (parseBuildStageName). */
static bool stage_name_valid(const char *s)
{
    if (!(*s >= 'a' && *s <= 'z'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == strlen(s);
}

/* A new current stage: from >= 0 starts from that earlier stage (its environment carries over), else from an
 * image (env_known false) or scratch (true). */
static int add_stage(walk *w, const char *name, long from, bool env_known)
{
    stage *v = realloc(w->st, (w->n_st + 1) * sizeof(*v));
    if (!v)
        return dms_error_set(w->err, DMS_E_NOMEM, NULL, "out of memory");
    w->st = v;
    stage *s = memset(&w->st[w->n_st], 0, sizeof(*s));
    s->env_known = env_known;
    if (from >= 0) {
        const stage *f = &w->st[from];
        s->env_known = f->env_known && !f->has_onbuild;
        s->opaque = f->opaque;
        if (vars_copy(&s->env, &f->env) < 0)
            return dms_error_set(w->err, DMS_E_NOMEM, NULL, "out of memory");
    }
    w->n_st++;
    if (name && !(s->name = strdup(name)))
        return dms_error_set(w->err, DMS_E_NOMEM, NULL, "out of memory");
    vars_clear(&w->args); /* every stage starts with no declared ARG */
    return 0;
}

static int do_from(walk *w, const df_instr *in)
{
    static const char *const flags[] = {"platform", NULL};
    const char *fv[1];
    _cleanup_strv_ char **words = df_split_ws(in->args);
    size_t n = dmsu_strv_len(words);
    dms_error e;
    if (df_flags(in, flags, fv, &e) < 0)
        return refuse(w, "FROM: %s", e.message);
    if (n != 1 && !(n == 3 && strcasecmp(words[1], "as") == 0))
        return refuse(w, "FROM takes an image and optionally AS <name>");
    char *name = n == 3 ? words[2] : NULL;
    for (char *c = name; c && *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + ('a' - 'A') : *c);
    if (name && (!stage_name_valid(name) || stage_named(w, name, w->n_st)))
        return refuse(w, "FROM ... AS %.*s: not a valid stage name, or one used twice", SHOWN_MAX, name);
    _cleanup_free_ char *base = NULL;
    bool unresolved;
    if (df_expand(words[0], w->esc, meta_lookup, w, &base, &unresolved, &e) < 0)
        return refuse(w, "FROM %.*s: %s", SHOWN_MAX, words[0], e.message);
    if (unresolved || !*base)
        return refuse(w, "FROM %.*s: cannot be resolved to an image", SHOWN_MAX, words[0]);
    const stage *prev = stage_named(w, base, w->n_st);
    if (prev)
        return add_stage(w, name, (long)(prev - w->st), false);
    if (strcmp(base, "scratch") == 0)
        return add_stage(w, name, -1, true);
    int r = check_image(w, "FROM", words[0], base);
    return r < 0 ? r : add_stage(w, name, -1, false);
}

/* A name we can read: nothing the engine would expand or unquote first. */
static bool plain_name(const walk *w, const char *s)
{
    return *s && !strpbrk(s, "'\"$") && !strchr(s, w->esc);
}

/* name=value pairs of ARG or ENV: all values are expanded before any is set, as the engine expands the whole
 * instruction first. A name we cannot read makes the stage opaque (refused before the first FROM, where FROM
 * depends on it). */
static int set_pairs(walk *w, const char *what, char **keys, char **values, vars *into, df_lookup_fn lookup)
{
    vars pending = {0};
    int r = 0;
    for (size_t i = 0; keys[i] && r == 0; i++) {
        if (!plain_name(w, keys[i])) {
            if (!w->n_st)
                r = refuse(w, "%s %.*s: not a plain name", what, SHOWN_MAX, keys[i]);
            else
                w->st[w->n_st - 1].opaque = true;
            continue;
        }
        _cleanup_free_ char *v = NULL;
        bool unresolved = false;
        dms_error e;
        if (values[i] && df_expand(values[i], w->esc, lookup, w, &v, &unresolved, &e) < 0)
            r = refuse(w, "%s %.*s: %s", what, SHOWN_MAX, keys[i], e.message);
        else if (vars_set(&pending, keys[i], values[i] ? v : NULL, !unresolved) < 0)
            r = dms_error_set(w->err, DMS_E_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < pending.n && r == 0; i++)
        if (vars_set(into, pending.v[i].name, pending.v[i].value, pending.v[i].known) < 0)
            r = dms_error_set(w->err, DMS_E_NOMEM, NULL, "out of memory");
    vars_clear(&pending);
    return r;
}

/* Splits each word at its first '=' into keys and values (NULL without one); a word without one is refused
 * when need_value. */
static int split_pairs(walk *w, const char *what, char **words, bool need_value, char ***keys, char ***values)
{
    size_t n = dmsu_strv_len(words);
    *keys = calloc(n + 1, sizeof(char *));
    *values = calloc(n + 1, sizeof(char *));
    if (!*keys || !*values)
        return dms_error_set(w->err, DMS_E_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char *eq = strchr(words[i], '=');
        if (!eq && need_value)
            return refuse(w, "%s %.*s: expected name=value", what, SHOWN_MAX, words[i]);
        if (!((*keys)[i] = strndup(words[i], eq ? (size_t)(eq - words[i]) : strlen(words[i]))) ||
            (eq && !((*values)[i] = strdup(eq + 1))))
            return dms_error_set(w->err, DMS_E_NOMEM, NULL, "out of memory");
    }
    return 0;
}

static void free_pairs(char **keys, char **values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(values ? values[i] : NULL);
    free(values);
    dmsu_strv_free(keys);
}

static int do_arg(walk *w, const df_instr *in)
{
    _cleanup_strv_ char **words = df_words(in->args, w->esc);
    char **keys = NULL, **values = NULL;
    size_t n = dmsu_strv_len(words);
    int r = n ? split_pairs(w, "ARG", words, false, &keys, &values) : refuse(w, "ARG needs a name");
    if (r == 0)
        r = w->n_st ? set_pairs(w, "ARG", keys, values, &w->args, stage_lookup)
                    : set_pairs(w, "ARG", keys, values, &w->meta, meta_lookup);
    free_pairs(keys, values, n);
    return r;
}

/* ENV name=value ..., or the old form ENV name value (the value is the rest of the line). */
static int do_env(walk *w, const df_instr *in)
{
    _cleanup_strv_ char **words = df_words(in->args, w->esc);
    char **keys = NULL, **values = NULL;
    size_t n = dmsu_strv_len(words);
    int r;
    if (!n)
        return refuse(w, "ENV needs a name and a value");
    if (strchr(words[0], '=')) {
        r = split_pairs(w, "ENV", words, true, &keys, &values);
    } else {
        size_t k = strcspn(in->args, " \t\v\f\r");
        const char *v = in->args + k + strspn(in->args + k, " \t\v\f\r");
        n = 1;
        keys = calloc(2, sizeof(char *));
        values = calloc(2, sizeof(char *));
        r = !keys || !values || !(keys[0] = strndup(in->args, k)) || !(values[0] = strdup(v))
                ? dms_error_set(w->err, DMS_E_NOMEM, NULL, "out of memory")
            : !*v ? refuse(w, "ENV %.*s: needs a value", SHOWN_MAX, keys[0])
                  : 0;
    }
    if (r == 0)
        r = set_pairs(w, "ENV", keys, values, &w->st[w->n_st - 1].env, stage_lookup);
    free_pairs(keys, values, n);
    return r;
}

/* strconv.ParseInt(s, 10, 64) succeeds: COPY --from=<number> is a stage by index, never an image. */
static bool is_int(const char *s)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (!*p || strspn(p, "0123456789") != strlen(p))
        return false;
    errno = 0;
    (void)strtoll(s, NULL, 10);
    return errno == 0;
}

static int do_copy(walk *w, const df_instr *in)
{
    static const char *const flags[] = {"from", "chown", "chmod", NULL};
    const char *fv[3];
    dms_error e;
    if (df_flags(in, flags, fv, &e) < 0)
        return refuse(w, "COPY: %s", e.message);
    const char *from = fv[0];
    /* An earlier stage by name or number; in a trigger, the stages are those of a build we cannot see, so
     * only a number is sure to be one. The engine does not expand --from: a '$' in it is not a reference. */
    if (!from || !*from || is_int(from) || (!w->onbuild && w->n_st && stage_named(w, from, w->n_st - 1)))
        return 0;
    return check_image(w, "COPY --from", from, from);
}

/* A URL of any scheme, or a git remote in scp form (user@host:path). */
static bool remote_source(const char *s)
{
    const char *at = strchr(s, '@'), *colon = strchr(s, ':'), *slash = strchr(s, '/');
    return strstr(s, "://") || (at && colon && at < colon && (!slash || colon < slash));
}

/* The known beginning of a source whose end we could not resolve is already a path when a '/' comes before
 * any
 * ':' or '@': no scheme and no user@host can follow. */
static bool local_prefix(const char *s)
{
    return s[strcspn(s, "/:@")] == '/';
}

static int check_source(walk *w, const char *src)
{
    _cleanup_free_ char *v = NULL;
    bool unresolved;
    dms_error e;
    if (df_expand(src, w->esc, w->onbuild ? unknown_lookup : stage_lookup, w, &v, &unresolved, &e) < 0)
        return refuse(w, "ADD %.*s: %s", SHOWN_MAX, src, e.message);
    if (remote_source(v))
        return refuse(
            w,
            "ADD %.*s: a URL or git source is refused (dockerd would fetch it itself, from the host's "
            "network): add the file to the repository",
            SHOWN_MAX, src);
    if (unresolved && !local_prefix(v))
        return refuse(
            w,
            "ADD %.*s: cannot tell what it names (a variable the base image may set): spell the path "
            "out",
            SHOWN_MAX, src);
    return 0;
}

static int do_add(walk *w, const df_instr *in)
{
    static const char *const flags[] = {"chown", "chmod", NULL};
    const char *fv[2];
    dms_error e;
    if (df_flags(in, flags, fv, &e) < 0)
        return refuse(w, "ADD: %s", e.message);
    _cleanup_strv_ char **words = NULL;
    if (df_json_or_ws(in->args, &words, &e) < 0)
        return refuse(w, "ADD %.*s: %s", SHOWN_MAX, in->args, e.message);
    size_t n = dmsu_strv_len(words);
    if (n < 2)
        return refuse(w, "ADD needs a source and a destination");
    int r = 0;
    for (size_t i = 0; i + 1 < n && r == 0; i++)
        r = check_source(w, words[i]);
    return r;
}

static int check_one(walk *w, const df_instr *in);

/* The trigger is the line without its ONBUILD, which the engine parses again as a Dockerfile of its own
 * (default escape) when a later build starts from the image. */
static int do_onbuild(walk *w, const df_instr *in)
{
    if (in->flags[0])
        return refuse(w, "ONBUILD takes no flags");
    const char *t = in->original + strlen(in->cmd);
    t += strspn(t, " \t\n\f\r");
    df_file f;
    dms_error e;
    int r = df_parse(t, strlen(t), &f, &e);
    if (r < 0)
        r = r == -DMS_E_NOMEM ? r : refuse(w, "ONBUILD: %s", e.message);
    walk sub = {.p = w->p, .esc = f.escape, .onbuild = true, .line = w->line, .err = w->err};
    for (size_t i = 0; r == 0 && i < f.n; i++)
        r = check_one(&sub, &f.v[i]);
    df_file_clear(&f);
    if (r == 0 && w->n_st)
        w->st[w->n_st - 1].has_onbuild = true;
    return r;
}

static bool known_instruction(const char *cmd)
{
    static const char *const names[] = {"add",    "arg",   "cmd",         "copy",  "entrypoint", "env",
                                        "expose", "from",  "healthcheck", "label", "maintainer", "onbuild",
                                        "run",    "shell", "stopsignal",  "user",  "volume",     "workdir"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(names); i++)
        if (strcmp(names[i], cmd) == 0)
            return true;
    return false;
}

static int check_one(walk *w, const df_instr *in)
{
    const char *c = in->cmd;
    static const char *const no_flags[] = {NULL};
    dms_error e;
    if (!w->onbuild)
        w->line = in->line;
    if (!known_instruction(c))
        return refuse(w, "unknown instruction %.*s", SHOWN_MAX, c);
    if (w->onbuild && (!strcmp(c, "from") || !strcmp(c, "onbuild") || !strcmp(c, "maintainer")))
        return refuse(w, "%s cannot be an ONBUILD trigger", c);
    if (!w->onbuild && !w->n_st && strcmp(c, "arg") != 0 && strcmp(c, "from") != 0)
        return refuse(w, "%s before the first FROM", c);
    if (!strcmp(c, "from"))
        return do_from(w, in);
    if (!strcmp(c, "arg"))
        return w->onbuild ? 0 : do_arg(w, in);
    if (!strcmp(c, "env"))
        return w->onbuild ? 0 : do_env(w, in);
    if (!strcmp(c, "copy"))
        return do_copy(w, in);
    if (!strcmp(c, "add"))
        return do_add(w, in);
    if (!strcmp(c, "onbuild"))
        return do_onbuild(w, in);
    if (!strcmp(c, "run") && df_flags(in, no_flags, NULL, &e) < 0)
        return refuse(w, "RUN: %s",
                      e.message); /* --mount=from=... is BuildKit's; refused before it means anything */
    return 0;
}

int dfp_check(const char *text, size_t len, const dfp_policy *p, dms_error *err)
{
    df_file f;
    dms_error e;
    int r = df_parse(text, len, &f, &e);
    if (r < 0) {
        df_file_clear(&f);
        return r == -DMS_E_NOMEM ? dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory")
                                 : dms_error_set(err, DMS_E_BUILD_FAILED, "dockerfile", "%s", e.message);
    }
    walk w = {.p = p, .esc = f.escape, .err = err};
    for (size_t i = 0; r == 0 && i < f.n; i++)
        r = check_one(&w, &f.v[i]);
    if (r == 0 && !w.n_st)
        r = dms_error_set(err, DMS_E_BUILD_FAILED, "dockerfile", "the Dockerfile has no FROM instruction");
    vars_clear(&w.meta);
    vars_clear(&w.args);
    for (size_t i = 0; i < w.n_st; i++) {
        free(w.st[i].name);
        vars_clear(&w.st[i].env);
    }
    free(w.st);
    df_file_clear(&f);
    return r;
}

/* ---- images ---- */

bool dfp_image_allowed(const dfp_policy *p, const char *ref, char *why, size_t why_size)
{
    imgref r;
    const char *reason =
        "not an image this build may use: the stack images (" DFP_STACK_PREFIX "*), the images of "
        "your own droids (" DFP_DROID_PREFIX "<droid id>:<tag>) and what the operator allows "
        "(DMS_BUILD_ALLOWED_IMAGES) are";
    if (!imgref_parse(ref, &r))
        reason = "not a valid image reference";
    else if (imgref_listed(p->allowed, ref, &r))
        return true; // NOLINT(bugprone-branch-clone): the pinned refusal must come before the stack prefix
    else if (r.pinned)
        reason = "an image id or digest is refused unless DMS_BUILD_ALLOWED_IMAGES names it exactly";
    else if (!strncmp(r.canon, DFP_STACK_PREFIX, strlen(DFP_STACK_PREFIX)))
        return true;
    else if (!strncmp(r.canon, DFP_DROID_PREFIX, strlen(DFP_DROID_PREFIX)) && p->own_droid) {
        const char *id = r.canon + strlen(DFP_DROID_PREFIX);
        size_t n = strcspn(id, ":/");
        char buf[IMGREF_MAX];
        if (id[n] == ':' && n > 0) {
            memcpy(buf, id, n);
            buf[n] = '\0';
            if (p->own_droid(p->ud, buf))
                return true;
        }
    }
    if (why)
        snprintf(why, why_size, "%s", reason);
    return false;
}

int dfp_allowlist_validate(const char *list, dms_error *err)
{
    return imgref_list_validate(list, err);
}
