/* tar.c - a minimal tar writer for build contexts: regular files, directories and symlinks, in sorted order
 * (a stable context keeps the engine's build cache warm), ustar headers plus pax records for names over 100
 * bytes.
 *
 * The tree is the user's (a checkout): it is walked through directory fds with O_NOFOLLOW at every step, so a
 * symlink is archived as a symlink and never followed, wherever it points and whenever it appeared. */
#include "tar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define BLOCK      512
#define COPY_CHUNK (64 * 1024)
#define MAX_DEPTH  64

typedef struct tar_ctx {
    int fd;
    int64_t bytes;
    dms_error *err;
    const char *reserved; /* a top-level name the tree may not supply (the caller's extra file) */
} tar_ctx;

static int out(tar_ctx *t, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(t->fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return dms_error_set_errno(t->err, DMS_E_IO, errno, "write build context");
        p += w;
        len -= (size_t)w;
        t->bytes += w;
    }
    if (t->bytes > DOCKER_TAR_MAX_BYTES)
        return dms_error_set(t->err, DMS_E_INVALID, "context_dir", "build context is larger than %lld bytes",
                             (long long)DOCKER_TAR_MAX_BYTES);
    return 0;
}

static int pad(tar_ctx *t, int64_t size)
{
    static const char zeros[BLOCK];
    size_t rem = (size_t)(size % BLOCK);
    return rem ? out(t, zeros, BLOCK - rem) : 0;
}

static void octal(char *dst, size_t n, uint64_t v)
{
    snprintf(dst, n, "%0*llo", (int)(n - 1), (unsigned long long)v);
}

static int header(tar_ctx *t, const char *name, char type, mode_t mode, int64_t size, time_t mtime,
                  const char *link)
{
    char h[BLOCK];
    memset(h, 0, sizeof(h));
    snprintf(h, 100, "%s", name);
    octal(h + 100, 8, mode & 07777);
    octal(h + 108, 8, 0);
    octal(h + 116, 8, 0);
    octal(h + 124, 12, (uint64_t)size);
    octal(h + 136, 12, (uint64_t)(mtime > 0 ? mtime : 0));
    h[156] = type;
    if (link)
        snprintf(h + 157, 100, "%s", link);
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < BLOCK; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
    h[155] = ' ';
    return out(t, h, BLOCK);
}

/* A pax record "<len> key=value\n", where len counts the whole record including its own digits. */
static int pax_record(dmsu_buf *b, const char *key, const char *value)
{
    size_t body = strlen(key) + strlen(value) + 3; /* ' ' '=' '\n' */
    size_t len = body + 1;
    while (len != body + (size_t)snprintf(NULL, 0, "%zu", len))
        len = body + (size_t)snprintf(NULL, 0, "%zu", len);
    return dmsu_buf_printf(b, "%zu %s=%s\n", len, key, value);
}

static int entry_header(tar_ctx *t, const char *name, char type, const struct stat *st, int64_t size,
                        const char *link)
{
    bool long_name = strlen(name) >= 100, long_link = link && strlen(link) >= 100;
    if (long_name || long_link) {
        dmsu_buf pax = {0};
        int r = 0;
        if ((long_name && pax_record(&pax, "path", name) < 0) ||
            (long_link && pax_record(&pax, "linkpath", link) < 0))
            r = dms_error_set(t->err, DMS_E_NOMEM, NULL, "out of memory");
        if (r == 0)
            r = header(t, "././@PaxHeader", 'x', 0644, (int64_t)pax.len, st->st_mtime, NULL);
        if (r == 0)
            r = out(t, pax.data, pax.len);
        if (r == 0)
            r = pad(t, (int64_t)pax.len);
        dmsu_buf_free(&pax);
        if (r < 0)
            return r;
    }
    return header(t, name, type, st->st_mode, size, st->st_mtime, link);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A regular file, opened without following a link, and written with what fstat says of the open file (a name
 * replaced since the directory was read is either refused or read as what it is now, never followed). */
static int add_file(tar_ctx *t, int dir, const char *name, const char *rel)
{
    _cleanup_close_ int fd = openat(dir, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return dms_error_set_errno(t->err, DMS_E_INVALID, errno, "build context: cannot read %s", rel);
    if (!S_ISREG(st.st_mode))
        return dms_error_set(t->err, DMS_E_INVALID, "context_dir",
                             "build context: %s changed while being read", rel);
    int r = entry_header(t, rel, '0', &st, st.st_size, NULL);
    if (r < 0)
        return r;
    char *buf = malloc(COPY_CHUNK);
    if (!buf)
        return dms_error_set(t->err, DMS_E_NOMEM, NULL, "out of memory");
    int64_t left = st.st_size;
    while (left > 0 && r == 0) {
        ssize_t n = read(fd, buf, left < COPY_CHUNK ? (size_t)left : COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = dms_error_set(t->err, DMS_E_INVALID, "context_dir",
                              "build context: %s changed while being read", rel);
            break;
        }
        r = out(t, buf, (size_t)n);
        left -= n;
    }
    free(buf);
    return r < 0 ? r : pad(t, st.st_size);
}

/* The names in a directory, sorted (a stable context keeps the engine's build cache warm). At the top, .git
 * and the name reserved for the caller's extra file are left out. */
static int sorted_names(tar_ctx *t, DIR *d, int depth, char ***out)
{
    char **names = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (depth == 0 && (!strcmp(de->d_name, ".git") || (t->reserved && !strcmp(de->d_name, t->reserved))))
            continue;
        if (dmsu_strv_push(&names, de->d_name) < 0) {
            dmsu_strv_free(names);
            return dms_error_set(t->err, DMS_E_NOMEM, NULL, "out of memory");
        }
    }
    size_t n = dmsu_strv_len(names);
    if (n)
        qsort(names, n, sizeof(char *), cmp_names);
    *out = names;
    return 0;
}

static int add_dir(tar_ctx *t, int dir, const char *rel, int depth);

/* One entry of a directory: a directory (recursed into through its fd), a regular file or a symlink (as a
 * symlink: its target is never looked at). */
static int add_entry(tar_ctx *t, int dir, const char *name, const char *rel, int depth)
{
    struct stat st;
    if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return dms_error_set_errno(t->err, DMS_E_INVALID, errno, "build context: %s", rel);
    if (S_ISDIR(st.st_mode)) {
        char dname[PATH_MAX + 1];
        snprintf(dname, sizeof(dname), "%s/", rel);
        int r = entry_header(t, dname, '5', &st, 0, NULL);
        _cleanup_close_ int sub =
            r < 0 ? -1 : openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (r == 0 && sub < 0)
            r = dms_error_set_errno(t->err, DMS_E_INVALID, errno, "build context: cannot open %s", rel);
        return r < 0 ? r : add_dir(t, dmsu_steal_fd(&sub), rel, depth + 1);
    }
    if (S_ISREG(st.st_mode))
        return add_file(t, dir, name, rel);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t tl = readlinkat(dir, name, target, sizeof(target) - 1);
        if (tl < 0)
            return dms_error_set_errno(t->err, DMS_E_INVALID, errno, "build context: readlink %s", rel);
        target[tl] = '\0';
        return entry_header(t, rel, '2', &st, 0, target);
    }
    return 0; /* sockets, fifos and devices are not build input */
}

/* Takes dir (an open directory fd) and closes it. */
static int add_dir(tar_ctx *t, int dir, const char *rel, int depth)
{
    if (depth > MAX_DEPTH) {
        close(dir);
        return dms_error_set(t->err, DMS_E_INVALID, "context_dir", "build context nests deeper than %d",
                             MAX_DEPTH);
    }
    DIR *d = fdopendir(dir);
    if (!d) {
        int e = errno;
        close(dir);
        return dms_error_set_errno(t->err, DMS_E_INVALID, e, "build context: cannot open %s",
                                   *rel ? rel : ".");
    }
    char **names = NULL;
    int r = sorted_names(t, d, depth, &names);
    for (size_t i = 0; r == 0 && names && names[i]; i++) {
        char child_rel[PATH_MAX];
        if (dmsu_snprintf_ok(child_rel, sizeof(child_rel), "%s%s%s", rel, *rel ? "/" : "", names[i]) < 0)
            r = dms_error_set(t->err, DMS_E_INVALID, "context_dir", "build context: path too long under %s",
                              rel);
        else
            r = add_entry(t, dirfd(d), names[i], child_rel, depth);
    }
    dmsu_strv_free(names);
    closedir(d);
    return r;
}

int docker_tar_dir(const char *dir, const char *extra_name, const char *extra_data, size_t extra_len, int fd,
                   int64_t *bytes, dms_error *err)
{
    tar_ctx t = {.fd = fd, .err = err, .reserved = extra_name};
    struct stat st;
    int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 || fstat(root, &st) != 0) {
        if (root >= 0)
            close(root);
        return dms_error_set(err, DMS_E_INVALID, "context_dir", "build context %s is not a directory", dir);
    }
    int r = add_dir(&t, root, "", 0);
    if (r < 0)
        return r;
    if (extra_name) {
        struct stat es = {.st_mode = S_IFREG | 0644, .st_mtime = st.st_mtime};
        if ((r = entry_header(&t, extra_name, '0', &es, (int64_t)extra_len, NULL)) < 0 ||
            (r = out(&t, extra_data, extra_len)) < 0 || (r = pad(&t, (int64_t)extra_len)) < 0)
            return r;
    }
    static const char zeros[2 * BLOCK];
    if ((r = out(&t, zeros, sizeof(zeros))) < 0)
        return r;
    *bytes = t.bytes;
    return 0;
}
