/* build/dockerfile.h - a Dockerfile read the way Docker 20.10's classic builder reads it, for dfpolicy.c.
 *
 * Lines are split and joined by dmsu_df_scan (executor/util.h: directives, comments, continuations, the
 * escape character); each instruction is then cut as the engine's parser cuts it (the keyword, the builder
 * flags
 * `--name=value` with their quotes removed, the arguments), and words are expanded as its shell lexer expands
 * them (quotes, escapes, $VAR, ${VAR}, ${VAR:-word}, ${VAR:+word}). Where the engine would know a value we do
 * not (a base image's environment), the lookup says so and the expansion reports it unresolved instead of
 * guessing. No I/O; thread-safe.
 */
#ifndef DMSD_BUILD_DOCKERFILE_H
#define DMSD_BUILD_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>

#include <dms/error.h>

typedef struct df_instr {
    char *cmd;    /* the keyword, lower case: "from", "copy", ... */
    char **flags; /* builder flags as written before the arguments ("--from=x", quotes removed); never NULL */
    char *args;   /* the rest, trimmed */
    char *original; /* the whole joined line (an ONBUILD trigger is kept as this text) */
    int line;       /* its first physical line, from 1 */
} df_instr;

typedef struct df_file {
    df_instr *v;
    size_t n;
    char escape; /* '\\' or '`' (the escape directive) */
} df_file;

/* Parses text. INVALID (field "dockerfile") for what the engine's parser refuses at this level. Clear *out
 * with df_file_clear (also after an error). */
int df_parse(const char *text, size_t len, df_file *out, dms_error *err);
void df_file_clear(df_file *f);

/* Words of an instruction's arguments; NULL-terminated vectors the caller frees with dmsu_strv_free. */
/* Split at runs of [\t\v\f\r ] (FROM's arguments, and ADD/COPY's when they are not a JSON array). */
char **df_split_ws(const char *args);
/* ADD/COPY: a JSON array of strings when args begins with '[' (anything else after '[' is INVALID: we do not
 * guess), else df_split_ws. */
int df_json_or_ws(const char *args, char ***out, dms_error *err);
/* ARG/ENV: words at unquoted white space, quotes and escapes kept for the expansion (the parser's
 * parseWords). */
char **df_words(const char *args, char escape);

/* What a variable is worth where a word is expanded. */
typedef enum df_var {
    DF_VAR_UNKNOWN = -1, /* the engine may know a value we do not: the expansion stops unresolved */
    DF_VAR_UNSET = 0,    /* expands to "" */
    DF_VAR_SET = 1,      /* *value */
} df_var;
typedef df_var (*df_lookup_fn)(void *ud, const char *name, const char **value);

/* The shell lexer's ProcessWord: quotes removed, escapes applied, variables substituted. *out (caller frees)
 * is the whole word, or, when *unresolved is set, only what comes before the first value we cannot know.
 * INVALID for what the engine's lexer refuses (an unterminated quote, a bad ${...}) and for invalid UTF-8. */
int df_expand(const char *word, char escape, df_lookup_fn lookup, void *ud, char **out, bool *unresolved,
              dms_error *err);

/* The builder flags of an instruction, checked against the ones it takes (NULL-terminated names, all taking a
 * value). *values gets one pointer per name (into in->flags, NULL when absent). INVALID naming an unknown,
 * repeated or value-less flag. */
int df_flags(const df_instr *in, const char *const *names, const char **values, dms_error *err);

#endif
