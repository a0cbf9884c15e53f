/* fsutil.c - state files (atomic writes, capped reads, rm -rf, owner locks), clocks and the host logger hook.
 */
#include <dms/backend.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define LOG_LINE_MAX 2048

int64_t dms_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t dms_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void dms_logf(const dms_host_services *host, dms_log_level level, const char *fmt, ...)
{
    if (!host || !host->log)
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    host->log(host->log_ctx, level, line);
}

/* An existing directory made private: opened without following a symlink (the name could have been replaced
 * by one pointing anywhere); only group and other lose their bits, and only on a directory of ours. */
static int tighten_dir(const char *path, dms_error *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open directory %s", path);
    if (!(st.st_mode & 077) || st.st_uid != geteuid())
        return 0;
    if (fchmod(fd, st.st_mode & 0700) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "make %s private (mode %o)", path,
                                   st.st_mode & 0700);
    return 0;
}

int dms_mkdir_p(const char *path, bool private_last, dms_error *err)
{
    char buf[PATH_MAX];
    if (dmsu_snprintf_ok(buf, sizeof(buf), "%s", path) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "path too long: %.64s...", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    /* Every directory we create is private: it will hold state files, and nobody else needs to look in. */
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, DMS_PRIVATE_DIR_MODE) != 0 && errno != EEXIST)
            return dms_error_set_errno(err, DMS_E_IO, errno, "create directory %s", buf);
        *p = '/';
    }
    bool made = mkdir(buf, DMS_PRIVATE_DIR_MODE) == 0;
    if (!made && errno != EEXIST)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create directory %s", buf);
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return dms_error_set(err, DMS_E_IO, NULL, "%s exists and is not a directory", buf);
    return private_last && !made ? tighten_dir(buf, err) : 0;
}

static int write_replace(const char *path, const char *data, size_t len, bool sync, dms_error *err);

int dms_write_file_atomic(const char *path, const char *data, size_t len, dms_error *err)
{
    return write_replace(path, data, len, true, err);
}

int dms_write_file_replace(const char *path, const char *data, size_t len, dms_error *err)
{
    return write_replace(path, data, len, false, err);
}

static int write_replace(const char *path, const char *data, size_t len, bool sync, dms_error *err)
{
    /* A fresh temp file, never an existing one (O_EXCL) nor through a symlink (O_NOFOLLOW): a name someone
     * planted in the directory is refused, not written through. Unique per process and call, so concurrent
     * writers do not share it; a stale one a crashed process left under the same name is replaced once. */
    static atomic_uint seq;
    char tmp[PATH_MAX];
    if (dmsu_snprintf_ok(tmp, sizeof(tmp), "%s.tmp.%d.%u", path, (int)getpid(), atomic_fetch_add(&seq, 1)) <
        0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "path too long: %.64s...", path);
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    _cleanup_close_ int fd = open(tmp, flags, DMS_PRIVATE_FILE_MODE);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
        fd = open(tmp, flags, DMS_PRIVATE_FILE_MODE);
    if (fd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", tmp);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            unlink(tmp);
            return dms_error_set_errno(err, DMS_E_IO, e, "write %s", tmp);
        }
        off += (size_t)w;
    }
    if ((sync && fsync(fd) != 0) || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return dms_error_set_errno(err, DMS_E_IO, e, "write %s", path);
    }
    return 0;
}

int dms_read_file(const char *path, size_t max_bytes, char **out, size_t *len, dms_error *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return dms_error_set(err, DMS_E_NOT_FOUND, NULL, "%s does not exist", path);
        return dms_error_set_errno(err, DMS_E_IO, errno, "open %s", path);
    }
    return dmsu_read_fd(fd, max_bytes, out, len, path, err);
}

/* rm -rf of a tree a workload may have made (a job's workspace, written by root in a container): nothing in
 * it is followed or opened but directories, each with O_NOFOLLOW (a symlink, FIFO or device node is unlinked
 * as it is). The recursion keeps at most RM_RF_MAX_DEPTH directories open; a subtree deeper than that is
 * renamed up into the top directory under a name of our own, and the top is emptied again until nothing was
 * moved, so a tree of any depth goes (a tree too deep for the old depth limit used to stay on disk for good).
 */
#define RM_RF_MAX_DEPTH 64
#define RM_RF_HOIST_FMT ".dms-rm-%u"

typedef struct rm_ctx {
    int top;          /* the directory being removed */
    unsigned hoisted; /* subtrees moved up into top (names .dms-rm-<n>) */
} rm_ctx;

static int rm_entry(rm_ctx *rc, int parent, const char *name, int depth);

/* Removes every entry of the directory dir (depth: dir's depth below the top). */
static int rm_contents(rm_ctx *rc, int dir, int depth)
{
    int fd = dup(dir); /* closedir closes it; dir stays open (the top is read again by the next pass) */
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return -e;
    }
    rewinddir(d); /* a dup shares the offset the last pass left at the end */
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int rr = rm_entry(rc, dirfd(d), de->d_name, depth + 1);
        if (rr < 0 && r == 0)
            r = rr;
    }
    closedir(d);
    return r;
}

/* Moves the directory parent/name up into the top: the top's next pass removes it from there. */
static int hoist(rm_ctx *rc, int parent, const char *name)
{
    for (;;) {
        char to[32];
        snprintf(to, sizeof(to), RM_RF_HOIST_FMT, rc->hoisted++);
        if (renameat2(parent, name, rc->top, to, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno != EEXIST)
            return -errno;
    }
}

static int rm_entry(rm_ctx *rc, int parent, const char *name, int depth)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -errno;
    if (depth >= RM_RF_MAX_DEPTH)
        return hoist(rc, parent, name);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int r = rm_contents(rc, fd, depth);
    close(fd);
    if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT && r == 0)
        r = -errno;
    return r;
}

static int rm_rf_path(const char *path)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -errno;
    rm_ctx rc = {.top = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (rc.top < 0)
        return errno == ENOENT ? 0 : -errno;
    int r;
    unsigned before;
    do { /* again while a pass moved deeper subtrees up: each pass shortens the tree by RM_RF_MAX_DEPTH - 1 */
        before = rc.hoisted;
        r = rm_contents(&rc, rc.top, 0);
    } while (r == 0 && rc.hoisted != before);
    close(rc.top);
    if (r == 0 && rmdir(path) != 0 && errno != ENOENT)
        r = -errno;
    return r;
}

int dms_rm_rf(const char *path, dms_error *err)
{
    int r = rm_rf_path(path);
    if (r < 0)
        return dms_error_set_errno(err, DMS_E_IO, -r, "remove %s", path);
    return 0;
}

int dms_state_lock(const char *dir, int *fd_out, dms_error *err)
{
    char path[PATH_MAX];
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/owner.lock", dir) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "path too long: %.64s...", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, DMS_PRIVATE_FILE_MODE);
    if (fd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return 0;
        return dms_error_set_errno(err, DMS_E_IO, e, "lock %s", path);
    }
    *fd_out = fd;
    return 1;
}

int dms_state_lock_held(const char *dir)
{
    char path[PATH_MAX];
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/owner.lock", dir) < 0)
        return 0;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* A shared lock is refused while anyone holds the exclusive one. flock locks belong to open file
     * descriptions, so this probe conflicts with an exclusive lock held through another descriptor, even one
     * of this process, and releasing the probe leaves that lock alone. */
    if (flock(fd, LOCK_SH | LOCK_NB) != 0)
        return errno == EWOULDBLOCK ? 1 : 0;
    flock(fd, LOCK_UN);
    return 0;
}
