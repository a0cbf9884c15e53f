/* bindcopy.c - repository paths a compose service mounts, copied out of the checkout (see bindcopy.h). */
#include "bindcopy.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "srchash.h"

typedef struct copy {
    long entries;
    long long bytes;
} copy;

static int copy_tree(copy *c, int from, int to, int depth);

static int copy_file(copy *c, int from, const char *name, int to, mode_t mode)
{
    _cleanup_close_ int in = openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int out =
        in < 0 ? -1 : openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0755);
    if (out < 0)
        return -1;
    fchmod(out, mode & 0755);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if ((c->bytes += n) > BINDCOPY_MAX_BYTES || write(out, buf, (size_t)n) != n)
            return -1;
    }
    return n < 0 ? -1 : 0;
}

/* One entry of from into to: a directory (its tree), a regular file, a link (as a link); nothing else. */
static int copy_entry(copy *c, int from, int to, const char *name, int depth)
{
    struct stat st;
    if (++c->entries > SRCHASH_MAX_ENTRIES || fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    if (S_ISREG(st.st_mode))
        return copy_file(c, from, name, to, st.st_mode);
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlinkat(from, name, target, sizeof(target) - 1);
        if (n < 0)
            return -1;
        target[n] = '\0';
        return symlinkat(target, to, name);
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    if (mkdirat(to, name, 0755) != 0)
        return -1;
    _cleanup_close_ int sub = openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int dst =
        sub < 0 ? -1 : openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return dst < 0 ? -1 : copy_tree(c, sub, dst, depth + 1);
}

static int copy_tree(copy *c, int from, int to, int depth)
{
    if (depth > SRCHASH_MAX_DEPTH)
        return -1;
    int fd = dup(from);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            r = copy_entry(c, from, to, e->d_name, depth);
    closedir(d);
    return r;
}

/* The source's digest: a directory's tree, or a file's content and mode. */
static int digest(int src, const char *rel, struct stat *st, char out[SRCHASH_HEX + 1])
{
    _cleanup_close_ int fd = dmsu_open_beneath(src, rel, O_RDONLY);
    if (fd < 0 || fstat(fd, st) != 0)
        return -1;
    if (S_ISDIR(st->st_mode))
        return srchash_context(fd, "dir", NULL, NULL, out);
    if (!S_ISREG(st->st_mode))
        return -1;
    return srchash_file(fd, st->st_mode, out);
}

/* The copy into tmp (a fresh directory beneath binds): the tree, or the one file as "f". */
static int copy_into(int src, const char *rel, const struct stat *st, int tmp)
{
    copy c = {0};
    _cleanup_close_ int fd = dmsu_open_beneath(src, rel, O_RDONLY);
    if (fd < 0)
        return -1;
    if (S_ISDIR(st->st_mode))
        return copy_tree(&c, fd, tmp, 0);
    /* A single file: copied through its open fd (no second lookup of rel). */
    _cleanup_close_ int out = openat(tmp, "f", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->st_mode & 0755);
    if (out < 0)
        return -1;
    fchmod(out, st->st_mode & 0755);
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if ((c.bytes += n) > BINDCOPY_MAX_BYTES || write(out, buf, (size_t)n) != n)
            return -1;
    return n < 0 ? -1 : 0;
}

int bindcopy_make(int src, const char *rel, const char *binds_dir, const char *field, char *out, size_t size,
                  dms_error *err)
{
    struct stat st;
    char hex[SRCHASH_HEX + 1];
    if (digest(src, rel, &st, hex) < 0)
        return dms_error_set(err, DMS_E_BUILD_FAILED, field,
                             "%s: %s is not a file or directory of the repository (a symbolic link is not "
                             "followed), or holds too much",
                             field, rel);
    int r = dms_mkdir_p(binds_dir, false, err);
    if (r < 0)
        return r;
    char final[PATH_MAX], tmp[PATH_MAX];
    snprintf(final, sizeof(final), "%s/%s", binds_dir, hex);
    if (S_ISREG(st.st_mode))
        snprintf(out, size, "%s/f", final);
    else
        snprintf(out, size, "%s", final);
    if (access(final, F_OK) == 0)
        return 0; /* the same content, copied for an earlier release */
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", binds_dir, hex);
    dms_rm_rf(tmp, NULL);
    if (mkdir(tmp, 0755) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "make %s", tmp);
    _cleanup_close_ int t = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (t < 0 || copy_into(src, rel, &st, t) < 0 || rename(tmp, final) != 0) {
        dms_rm_rf(tmp, NULL);
        return dms_error_set(err, DMS_E_BUILD_FAILED, field,
                             "%s: %s could not be copied (more than %lld MiB or "
                             "%d entries?)",
                             field, rel, BINDCOPY_MAX_BYTES >> 20, SRCHASH_MAX_ENTRIES);
    }
    return 0;
}
