/* tar.c - a minimal tar writer for build contexts: regular files, directories and symlinks, in sorted order (a
 * stable context keeps the engine's build cache warm), ustar headers plus pax records for names over 100 bytes. */
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

#define BLOCK 512
#define COPY_CHUNK (64 * 1024)
#define MAX_DEPTH 64

typedef struct tar_ctx {
    int fd;
    int64_t bytes;
    dms_error *err;
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
static int pax_record(dms_buf *b, const char *key, const char *value)
{
    size_t body = strlen(key) + strlen(value) + 3; /* ' ' '=' '\n' */
    size_t len = body + 1;
    while (len != body + (size_t)snprintf(NULL, 0, "%zu", len))
        len = body + (size_t)snprintf(NULL, 0, "%zu", len);
    return dms_buf_printf(b, "%zu %s=%s\n", len, key, value);
}

static int entry_header(tar_ctx *t, const char *name, char type, const struct stat *st, int64_t size,
                        const char *link)
{
    bool long_name = strlen(name) >= 100, long_link = link && strlen(link) >= 100;
    if (long_name || long_link) {
        dms_buf pax = {0};
        int r = 0;
        if ((long_name && pax_record(&pax, "path", name) < 0) || (long_link && pax_record(&pax, "linkpath", link) < 0))
            r = dms_error_set(t->err, DMS_E_NOMEM, NULL, "out of memory");
        if (r == 0)
            r = header(t, "././@PaxHeader", 'x', 0644, (int64_t)pax.len, st->st_mtime, NULL);
        if (r == 0)
            r = out(t, pax.data, pax.len);
        if (r == 0)
            r = pad(t, (int64_t)pax.len);
        dms_buf_free(&pax);
        if (r < 0)
            return r;
    }
    return header(t, name, type, st->st_mode, size, st->st_mtime, link);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int add_file(tar_ctx *t, const char *path, const char *name, const struct stat *st)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return dms_error_set_errno(t->err, DMS_E_INVALID, errno, "build context: cannot read %s", name);
    int r = entry_header(t, name, '0', st, st->st_size, NULL);
    if (r < 0)
        return r;
    char *buf = malloc(COPY_CHUNK);
    if (!buf)
        return dms_error_set(t->err, DMS_E_NOMEM, NULL, "out of memory");
    int64_t left = st->st_size;
    while (left > 0 && r == 0) {
        ssize_t n = read(fd, buf, left < COPY_CHUNK ? (size_t)left : COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = dms_error_set(t->err, DMS_E_INVALID, "context_dir", "build context: %s changed while being read",
                              name);
            break;
        }
        r = out(t, buf, (size_t)n);
        left -= n;
    }
    free(buf);
    return r < 0 ? r : pad(t, st->st_size);
}

static int add_dir(tar_ctx *t, const char *root, const char *rel, int depth)
{
    if (depth > MAX_DEPTH)
        return dms_error_set(t->err, DMS_E_INVALID, "context_dir", "build context nests deeper than %d", MAX_DEPTH);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return dms_error_set_errno(t->err, DMS_E_INVALID, errno, "build context: cannot open %s", path);
    char **names = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (depth == 0 && !strcmp(de->d_name, ".git"))
            continue;
        if (dms_strv_push(&names, de->d_name) < 0) {
            closedir(d);
            dms_strv_free(names);
            return dms_error_set(t->err, DMS_E_NOMEM, NULL, "out of memory");
        }
    }
    closedir(d);
    size_t n = dms_strv_len(names);
    if (n)
        qsort(names, n, sizeof(char *), cmp_names);
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        char child_rel[PATH_MAX], child[PATH_MAX];
        if (dms_snprintf_ok(child_rel, sizeof(child_rel), "%s%s%s", rel, *rel ? "/" : "", names[i]) < 0 ||
            dms_snprintf_ok(child, sizeof(child), "%s/%s", root, child_rel) < 0) {
            r = dms_error_set(t->err, DMS_E_INVALID, "context_dir", "build context: path too long under %s", rel);
            break;
        }
        struct stat st;
        if (lstat(child, &st) != 0) {
            r = dms_error_set_errno(t->err, DMS_E_INVALID, errno, "build context: %s", child_rel);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            char dname[PATH_MAX + 1];
            snprintf(dname, sizeof(dname), "%s/", child_rel);
            r = entry_header(t, dname, '5', &st, 0, NULL);
            if (r == 0)
                r = add_dir(t, root, child_rel, depth + 1);
        } else if (S_ISREG(st.st_mode)) {
            r = add_file(t, child, child_rel, &st);
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t tl = readlink(child, target, sizeof(target) - 1);
            if (tl < 0) {
                r = dms_error_set_errno(t->err, DMS_E_INVALID, errno, "build context: readlink %s", child_rel);
                break;
            }
            target[tl] = '\0';
            r = entry_header(t, child_rel, '2', &st, 0, target);
        }
        /* sockets, fifos and devices are not build input */
    }
    dms_strv_free(names);
    return r;
}

int docker_tar_dir(const char *dir, const char *extra_name, const char *extra_data, size_t extra_len, int fd,
                   int64_t *bytes, dms_error *err)
{
    tar_ctx t = {.fd = fd, .err = err};
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dms_error_set(err, DMS_E_INVALID, "context_dir", "build context %s is not a directory", dir);
    int r = add_dir(&t, dir, "", 0);
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
