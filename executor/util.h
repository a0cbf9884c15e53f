/* executor/util.h - private helpers shared inside libdms-executor, by its backends and by dmsd and the CLIs.
 * Not installed, and not exported by the library: they are built into libdms-util.a (util.c, beneath.c,
 * dflines.c, capmask.c), which every consumer links, so libdms-executor.so exports only its public API
 * (executor/libdms-executor.map). Their own prefix is dmsu_ (dmsu_buf_append, dmsu_strv_free, ...), never the
 * public API's dms_; the macros keep DMS_.
 * Cleanup attributes after crun/systemd: a variable declared _cleanup_free_ is freed when it goes out of
 * scope, so early returns do not leak. A function uses these or one `goto done`, never both. */
#ifndef DMS_UTIL_H
#define DMS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include <dms/error.h>

static inline void dmsu_freep(void *p)
{
    free(*(void **)p);
}
static inline void dmsu_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}
static inline void dmsu_json_decrefp(json_t **j)
{
    json_decref(*j);
}
void dmsu_strv_free(char **v);
static inline void dmsu_strv_freep(char ***v)
{
    dmsu_strv_free(*v);
}

#define _cleanup_free_  __attribute__((cleanup(dmsu_freep)))
#define _cleanup_close_ __attribute__((cleanup(dmsu_closep)))
#define _cleanup_json_  __attribute__((cleanup(dmsu_json_decrefp)))
#define _cleanup_strv_  __attribute__((cleanup(dmsu_strv_freep)))

/* Takes ownership out of a cleanup variable: return steal_pointer(&p). */
static inline void *dmsu_steal_ptr(void *pp)
{
    void **p = (void **)pp;
    void *v = *p;
    *p = NULL;
    return v;
}
#define steal_pointer(pp) dmsu_steal_ptr(pp)
static inline int dmsu_steal_fd(int *fd)
{
    int v = *fd;
    *fd = -1;
    return v;
}

#define DMS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Modes of what dms writes: state files hold requests (a workload's env, its secrets), results and captured
 * output, so they are readable by their owner only, whatever the caller's umask. */
#define DMS_PRIVATE_FILE_MODE 0600
#define DMS_PRIVATE_DIR_MODE  0700
/* PATH of a helper process whose caller has none. */
#define DMS_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* NULL-terminated string vectors. */
size_t dmsu_strv_len(char *const *v);
char **dmsu_strv_copy(char *const *v);                  /* NULL in -> NULL out; NULL on OOM sets errno */
int dmsu_strv_push(char ***v, const char *s);           /* 0 or -ENOMEM */
bool dmsu_strv_contains(char *const *v, const char *s); /* v may be NULL */

/* Formatted strdup; NULL on OOM. */
char *dmsu_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* snprintf that reports truncation: 0 if it fit, -1 if not. */
int dmsu_snprintf_ok(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A growable byte buffer with a hard cap (every buffer fed by the network or a workload is capped). */
typedef struct dmsu_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;    /* 0 = unlimited */
    bool overflow; /* an append hit max; data holds the first max bytes */
} dmsu_buf;
int dmsu_buf_append(dmsu_buf *b, const void *data, size_t len); /* 0, or -ENOMEM */
int dmsu_buf_printf(dmsu_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dmsu_buf_reset(dmsu_buf *b);
void dmsu_buf_free(dmsu_buf *b);
/* Drops the first n bytes. */
void dmsu_buf_consume(dmsu_buf *b, size_t n);

/* The environment of a helper process dms starts (Caddy, the process backend's supervisor): PATH (the
 * caller's, else DMS_DEFAULT_PATH), the caller's value of each name in keep (NULL-terminated, may be NULL)
 * that it has, then extra ("K=V" each; may be NULL). Nothing else of the caller's environment: a secret or a
 * DMS_* setting never reaches a child. Caller frees with dmsu_strv_free; NULL when out of memory. */
char **dmsu_env_minimal(const char *const *keep, const char *const *extra);

/* Environment/option lookup in "key=value" vectors; NULL if absent. Borrowed. */
const char *dmsu_kv_get(char *const *kv, const char *key);

/* UTF-8, with the one decoder of the tree: well-formed means no overlong forms, no surrogates and no code
 * point beyond U+10FFFF. */
/* True if the NUL-terminated s is well-formed UTF-8. */
bool dmsu_utf8_valid(const char *s);
/* A copy of data with invalid UTF-8 and NUL bytes replaced by U+FFFD (JSON strings must be UTF-8). Caller
 * frees; NULL when out of memory. *out_len (may be NULL) gets the copy's length. */
char *dmsu_utf8_sanitize(const char *data, size_t len, size_t *out_len);

/* Parses a non-negative decimal int64; -1 on error. */
int64_t dmsu_parse_i64(const char *s);
/* Parses the non-negative decimal int64 that s starts with, after any spaces and tabs: "\t 1234 kB" gives
 * 1234 and, if end is not NULL, *end at " kB". -1 (and *end = s) if no digit follows the blanks, the number
 * overflows or s is NULL. For a number inside a line of text (a /proc status field, an HTTP status line, a
 * line the shim writes); dmsu_parse_i64 for a field that must be the number alone. */
int64_t dmsu_parse_i64_prefix(const char *s, const char **end);

/* ---- trees a user controls (beneath.c) ----
 * A checkout or a build context may hold symlinks to anywhere and names that climb out. These resolve rel
 * beneath dirfd with no symlink on the way (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or a walk of
 * O_NOFOLLOW opens where openat2 is missing). O_CLOEXEC and O_NOFOLLOW are added. The fd, or -errno: ELOOP
 * for a symlink, EXDEV for a path that leads out (absolute, or through ".."). */
int dmsu_open_beneath(int dirfd, const char *rel, int flags);
/* A regular file beneath dirfd (as above; a FIFO or device is refused, never opened blocking), at most
 * max_bytes; caller frees *out (NUL-terminated). NOT_FOUND if absent, INVALID for a symlink, a path out or
 * not a regular file. Messages name rel only. */
int dmsu_read_file_beneath(int dirfd, const char *rel, size_t max_bytes, char **out, size_t *len,
                           dms_error *err);
/* Reads fd to its end, at most max_bytes (IO error beyond); what names it in messages. Caller frees *out. */
int dmsu_read_fd(int fd, size_t max_bytes, char **out, size_t *len, const char *what, dms_error *err);

/* ---- Dockerfiles (dflines.c) ---- */

#define DMS_DF_LINE_MAX 65535 /* the engine's parser refuses longer lines (bufio.Scanner's token limit) */

/* One instruction as the engine's parser joins it. */
typedef struct dmsu_df_instr {
    const char *text; /* the joined line (first line left-trimmed, continuations joined, comment and blank
                         lines inside dropped); NUL-terminated, borrowed for the callback */
    size_t len;
    int first_line, last_line; /* physical lines, from 1 */
    size_t start;              /* offset of its first physical line */
    size_t end;                /* offset just past its last physical line (and that line's '\n') */
    bool open;                 /* the text ended inside its continuation */
} dmsu_df_instr;
typedef int (*dmsu_df_instr_fn)(void *ud, const dmsu_df_instr *in, dms_error *err);

/* Calls fn for each instruction of a Dockerfile, in order, exactly as Docker 20.10's classic builder splits
 * and joins its lines (parser directives, comments, continuations, the escape character). *escape (may be
 * NULL) gets the escape character in effect. INVALID (field "dockerfile") for what the engine refuses at this
 * level (a NUL byte, a line over DMS_DF_LINE_MAX, a repeated or bad directive); fn's negative return stops
 * the scan and is returned. */
int dmsu_df_scan(const char *text, size_t len, dmsu_df_instr_fn fn, void *ud, char *escape, dms_error *err);
/* Bytes of the Unicode white space character at p (Go's unicode.IsSpace, UTF-8), 0 if there is none. */
size_t dmsu_unicode_space_len(const char *p, const char *end);

/* ---- ids (randid.c; link -luuid) ---- */

/* prefix + 12 hex digits of a random UUID into buf: 0, or -1 if it did not fit. Not for secrets (a secret
 * wants more than 48 bits: getrandom). */
int dmsu_random_id(char *buf, size_t size, const char *prefix);

#endif
