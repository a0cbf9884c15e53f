/* beneath.c - opening files inside a tree that a user controls (a checkout, a build context).
 *
 * A repository can hold symbolic links to anywhere ("Dockerfile -> /etc/shadow", "package.json ->
 * /root/.ssh/x") and paths can climb out ("../../etc/x" as package.json's "main"). Everything here resolves a
 * relative path beneath a directory fd and refuses any symlink on the way: openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) where the kernel has it (5.6+), else a walk of one openat(O_NOFOLLOW) per component
 * that refuses "..". */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dms/backend.h>

#include "util.h"

#define OPENAT2_EAGAIN_TRIES 8 /* openat2 says EAGAIN when a rename raced the lookup: look again */
#define READ_CHUNK_BYTES     8192

/* One step of the walk: a directory on the way, or the file at its end; neither may be a symlink. */
static int open_component(int cur, const char *comp, bool last, int flags)
{
    if (strcmp(comp, "..") == 0) {
        errno = EXDEV;
        return -1;
    }
    int fd = last ? openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC)
                  : openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* O_PATH | O_NOFOLLOW | O_DIRECTORY on a symlink says ENOTDIR; openat2 says ELOOP. */
    struct stat st;
    if (fd < 0 && errno == ENOTDIR && fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        errno = ELOOP;
    return fd;
}

/* The walk for kernels (or seccomp profiles) without openat2: one component at a time. */
static int open_walk(int dirfd, const char *rel, int flags)
{
    char buf[PATH_MAX];
    if (dmsu_snprintf_ok(buf, sizeof(buf), "%s", rel) < 0)
        return -ENAMETOOLONG;
    int cur = dirfd;
    char *save = NULL;
    char *comp = strtok_r(buf, "/", &save);
    if (!comp) { /* "" or only slashes: the directory itself, as openat2 gives it */
        int fd = openat(dirfd, ".", flags | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
    }
    while (comp) {
        char *next = strtok_r(NULL, "/", &save);
        int fd = open_component(cur, comp, next == NULL, flags);
        int e = errno;
        if (cur != dirfd)
            close(cur);
        if (fd < 0)
            return -e;
        cur = fd;
        comp = next;
    }
    return cur;
}

/* With O_PATH | O_NOFOLLOW, both openat2 and openat hand back a trailing symlink itself: refused too. */
static int no_link(int fd, int flags)
{
    struct stat st;
    if (fd < 0 || !(flags & O_PATH) || fstat(fd, &st) != 0 || !S_ISLNK(st.st_mode))
        return fd;
    close(fd);
    return -ELOOP;
}

static int open_beneath(int dirfd, const char *rel, int flags)
{
    if (!rel || rel[0] == '/')
        return -EXDEV;
    struct open_how how = {
        .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    for (int i = 0; i < OPENAT2_EAGAIN_TRIES; i++) {
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        if (errno == ENOSYS || errno == EPERM)
            return open_walk(dirfd, rel, flags); /* no openat2 here (old kernel, or a seccomp filter) */
        if (errno != EAGAIN)
            return -errno;
    }
    return -EAGAIN;
}

int dmsu_open_beneath(int dirfd, const char *rel, int flags)
{
    return no_link(open_beneath(dirfd, rel, flags), flags);
}

int dmsu_read_fd(int fd, size_t max_bytes, char **out, size_t *len, const char *what, dms_error *err)
{
    dmsu_buf b = {.max = max_bytes};
    char chunk[READ_CHUNK_BYTES];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            dmsu_buf_free(&b);
            return dms_error_set_errno(err, DMS_E_IO, e, "read %s", what);
        }
        if (r == 0)
            break;
        if (dmsu_buf_append(&b, chunk, (size_t)r) < 0) {
            dmsu_buf_free(&b);
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory reading %s", what);
        }
        if (b.overflow) {
            dmsu_buf_free(&b);
            return dms_error_set(err, DMS_E_IO, NULL, "%s is larger than %zu bytes", what, max_bytes);
        }
    }
    if (!b.data && dmsu_buf_append(&b, "", 0) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    *out = b.data;
    if (len)
        *len = b.len;
    return 0;
}

int dmsu_read_file_beneath(int dirfd, const char *rel, size_t max_bytes, char **out, size_t *len,
                           dms_error *err)
{
    /* O_NONBLOCK: a FIFO planted under the name must not hang the reader; it is refused below. */
    _cleanup_close_ int fd = dmsu_open_beneath(dirfd, rel, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        switch (-fd) {
        case ENOENT:
            return dms_error_set(err, DMS_E_NOT_FOUND, NULL, "%s does not exist", rel);
        case ELOOP:
            return dms_error_set(err, DMS_E_INVALID, NULL,
                                 "%s is (or lies under) a symbolic link, which is not followed", rel);
        case EXDEV:
            return dms_error_set(err, DMS_E_INVALID, NULL, "%s leads outside its directory", rel);
        default:
            return dms_error_set_errno(err, DMS_E_IO, -fd, "open %s", rel);
        }
    }
    struct stat st;
    if (fstat(fd, &st) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "stat %s", rel);
    if (!S_ISREG(st.st_mode))
        return dms_error_set(err, DMS_E_INVALID, NULL, "%s is not a regular file", rel);
    return dmsu_read_fd(fd, max_bytes, out, len, rel, err);
}
