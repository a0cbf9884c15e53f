/* artifact.c - a job's artifact taken out of the tree a workload wrote, and opened to be served (see
 * artifact.h). */
#include "artifact.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "job.h"

#define ARTIFACT_TMP_NAME  ".artifact.tar.tmp"
#define COPY_CHUNK_BYTES   (64 * 1024)
#define BYTES_PER_MB       (1024 * 1024)
#define PROC_FD_PATH_BYTES 64

const char *artifact_kind(mode_t mode)
{
    switch (mode & S_IFMT) {
    case S_IFREG:
        return "a regular file";
    case S_IFLNK:
        return "a symbolic link";
    case S_IFIFO:
        return "a FIFO";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFSOCK:
        return "a socket";
    case S_IFDIR:
        return "a directory";
    default:
        return "a file of an unknown kind";
    }
}

/* name (one component) inside dirfd, resolving no symlink at all, not even as the last component (with
 * O_PATH the link itself is opened, so its kind can be reported). Before Linux 5.6 there is no openat2:
 * O_NOFOLLOW covers a single component. -1 with errno on failure. */
static int open_beneath(int dirfd, const char *name, int flags)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    int fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    if (fd < 0 && errno == ENOSYS)
        fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
    return fd;
}

static void describe_limit(int64_t max_bytes, char *buf, size_t size)
{
    if (max_bytes >= BYTES_PER_MB && max_bytes % BYTES_PER_MB == 0)
        snprintf(buf, size, "%lld MB (DMS_JOB_ARTIFACT_MAX_MB)", (long long)(max_bytes / BYTES_PER_MB));
    else
        snprintf(buf, size, "%lld bytes", (long long)max_bytes);
}

/* <dirfd>/ARTIFACT_NAME opened for reading if, and only if, it is a regular file of at most max_bytes
 * (max_bytes < 0: any size); *st gets its stat. The name is opened O_PATH first (an O_PATH open has no side
 * effect, even on a device or a FIFO), and only once fstat says it is a regular file is that same inode
 * reopened through /proc/self/fd: a rename in between cannot make dmsd open something else. */
static int open_regular(int dirfd, const char *what, int64_t max_bytes, struct stat *st, dms_error *err)
{
    _cleanup_close_ int pathfd = open_beneath(dirfd, ARTIFACT_NAME, O_PATH);
    if (pathfd < 0 && errno == ENOENT)
        return dms_error_set(err, DMS_E_NOT_FOUND, NULL, "there is no %s", what);
    if (pathfd < 0 && errno == ELOOP) /* openat2 refuses a symlink even with O_PATH on some kernels */
        return dms_error_set(err, DMS_E_INVALID, NULL, "the %s is a symbolic link: refused", what);
    if (pathfd < 0 || fstat(pathfd, st) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open the %s", what);
    if (!S_ISREG(st->st_mode))
        return dms_error_set(err, DMS_E_INVALID, NULL, "the %s is %s, not a regular file: refused", what,
                             artifact_kind(st->st_mode));
    if (max_bytes >= 0 && st->st_size > max_bytes) { /* a sparse terabyte: refused unread */
        char limit[64];
        describe_limit(max_bytes, limit, sizeof(limit));
        return dms_error_set(err, DMS_E_INVALID, NULL, "the artifact is larger than %s", limit);
    }
    char proc[PROC_FD_PATH_BYTES];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pathfd);
    int fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat again;
    if (fd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "reopen the %s through %s (is /proc mounted?)", what,
                                   proc);
    if (fstat(fd, &again) != 0 || again.st_dev != st->st_dev || again.st_ino != st->st_ino ||
        !S_ISREG(again.st_mode)) {
        close(fd);
        return dms_error_set(err, DMS_E_IO, NULL, "the %s changed while it was opened", what);
    }
    return fd;
}

/* Copies in to out, at most max_bytes (more is an error: the file grew since its fstat). */
static int copy_bounded(int in, int out, int64_t max_bytes, int64_t *copied, dms_error *err)
{
    char buf[COPY_CHUNK_BYTES];
    *copied = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "read the artifact");
        if (n == 0)
            return 0;
        if (*copied + n > max_bytes) {
            char limit[64];
            describe_limit(max_bytes, limit, sizeof(limit));
            return dms_error_set(err, DMS_E_INVALID, NULL, "the artifact is larger than %s", limit);
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return dms_error_set_errno(err, DMS_E_IO, errno, "write the artifact");
            off += w;
        }
        *copied += n;
    }
}

int artifact_take_out(const char *from_dir, const char *to_dir, int64_t max_bytes, int64_t *bytes,
                      dms_error *err)
{
    _cleanup_close_ int from = open(from_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (from < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open %s", from_dir);
    _cleanup_close_ int to = open(to_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (to < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open %s", to_dir);
    struct stat st;
    _cleanup_close_ int in = open_regular(from, "artifact the package step left", max_bytes, &st, err);
    if (in < 0)
        return in;
    /* The temporary name is dmsd's own, in a directory no workload sees; a leftover of a crash goes first. */
    if (unlinkat(to, ARTIFACT_TMP_NAME, 0) != 0 && errno != ENOENT)
        return dms_error_set_errno(err, DMS_E_IO, errno, "remove %s/%s", to_dir, ARTIFACT_TMP_NAME);
    _cleanup_close_ int out =
        openat(to, ARTIFACT_TMP_NAME, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create %s/%s", to_dir, ARTIFACT_TMP_NAME);
    int64_t copied = 0;
    int r = copy_bounded(in, out, max_bytes, &copied, err);
    if (r == 0 && fsync(out) != 0)
        r = dms_error_set_errno(err, DMS_E_IO, errno, "write %s/%s", to_dir, ARTIFACT_TMP_NAME);
    if (r == 0 && renameat(to, ARTIFACT_TMP_NAME, to, ARTIFACT_NAME) != 0)
        r = dms_error_set_errno(err, DMS_E_IO, errno, "rename to %s/%s", to_dir, ARTIFACT_NAME);
    if (r < 0) {
        unlinkat(to, ARTIFACT_TMP_NAME, 0);
        return r;
    }
    *bytes = copied;
    return 0;
}

int artifact_open(const char *dir, int64_t *bytes, dms_error *err)
{
    _cleanup_close_ int d = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0 && (errno == ENOENT || errno == ENOTDIR))
        return dms_error_set(err, DMS_E_NOT_FOUND, NULL, "there is no artifact");
    if (d < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open %s", dir);
    struct stat st;
    int fd = open_regular(d, "artifact", -1, &st, err);
    if (fd >= 0)
        *bytes = st.st_size;
    return fd;
}

/* One job directory of an older dmsd: 1 taken out, 0 nothing to do, < 0 refused or failed (logged). */
static int adopt_one(const char *jobs_dir, const char *id, int64_t max_bytes)
{
    char dir[PATH_MAX], out[PATH_MAX], copy[PATH_MAX];
    struct stat st;
    if (dmsu_snprintf_ok(dir, sizeof(dir), "%s/%s", jobs_dir, id) < 0 ||
        dmsu_snprintf_ok(out, sizeof(out), "%s/out", dir) < 0 ||
        dmsu_snprintf_ok(copy, sizeof(copy), "%s/" ARTIFACT_NAME, dir) < 0 || lstat(copy, &st) == 0 ||
        lstat(out, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    dms_error err = {0};
    int64_t bytes = 0;
    int r = artifact_take_out(out, dir, max_bytes, &bytes, &err);
    if (r < 0 && r != -DMS_E_NOT_FOUND)
        log_warn("job=%s op=adopt-artifact error=\"%s\" note=\"not served\"", id, err.message);
    else if (r == 0)
        log_info("job=%s op=adopt-artifact bytes=%lld", id, (long long)bytes);
    dms_rm_rf(out, NULL);
    return r < 0 ? r : 1;
}

int artifact_adopt_legacy(const char *jobs_dir, int64_t max_bytes)
{
    DIR *d = opendir(jobs_dir);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (JOB_ID_IS(de->d_name) && (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) &&
            adopt_one(jobs_dir, de->d_name, max_bytes) > 0)
            n++;
    closedir(d);
    return n;
}
