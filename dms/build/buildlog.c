/* buildlog.c - a build log file with a cap and one rotation (see buildlog.h). */
#include "buildlog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define NOTE_PREFIX "[dms] "

static void write_all(buildlog *l, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(l->fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* disk full or the like: the build goes on, its log is short */
        s += w;
        n -= (size_t)w;
        l->written += w;
    }
}

/* The previous build's log is kept once; an empty one is a follower's placeholder and is not worth keeping.
 */
static int rotate(const char *path, const char *old, dms_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : dms_error_set_errno(err, DMS_E_IO, errno, "stat %s", path);
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        if (rename(path, old) < 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "rename %s to %s", path, old);
        return 0;
    }
    if (unlink(path) < 0 && errno != ENOENT)
        return dms_error_set_errno(err, DMS_E_IO, errno, "remove %s", path);
    return 0;
}

int buildlog_open(buildlog *l, const char *dir, const char *name, int64_t max_bytes, dms_error *err)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    snprintf(l->name, sizeof(l->name), "%s", name);
    l->max_bytes = max_bytes < BUILDLOG_MIN_BYTES ? BUILDLOG_MIN_BYTES : max_bytes;
    char path[PATH_MAX], old[PATH_MAX];
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) < 0 ||
        dmsu_snprintf_ok(old, sizeof(old), "%s/%s.1", dir, name) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "build log path too long: %s/%s", dir, name);
    int r = rotate(path, old, err);
    if (r < 0)
        return r;
    /* Made under another name and renamed over the log's: a follower that finds no log makes an empty one
     * (api/logs.c), and it may do so between the rotation and this create. The rename replaces it (a new
     * inode, which the follower notices) instead of failing the build with EEXIST. */
    char fresh[PATH_MAX + 8];
    if (dmsu_snprintf_ok(fresh, sizeof(fresh), "%s.new", path) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "build log path too long: %s/%s", dir, name);
    unlink(fresh);
    l->fd =
        open(fresh, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, DMS_PRIVATE_FILE_MODE);
    if (l->fd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", fresh);
    if (rename(fresh, path) != 0) {
        r = dms_error_set_errno(err, DMS_E_IO, errno, "rename %s to %s", fresh, path);
        close(l->fd);
        l->fd = -1;
        unlink(fresh);
        return r;
    }
    return 0;
}

void buildlog_line(buildlog *l, const char *line, size_t len)
{
    if (l->fd < 0)
        return;
    int64_t need = (int64_t)len + 1;
    if (!l->capped && l->written + need <= l->max_bytes - BUILDLOG_NOTE_RESERVE_BYTES) {
        write_all(l, line, len);
        write_all(l, "\n", 1);
        return;
    }
    if (!l->capped) {
        l->capped = true;
        buildlog_note(l, "%s reached its cap of %lld bytes (DMS_BUILD_LOG_MAX_MB): further output is dropped",
                      l->name, (long long)l->max_bytes);
    }
    l->dropped += need;
}

void buildlog_note(buildlog *l, const char *fmt, ...)
{
    if (l->fd < 0)
        return;
    char line[BUILDLOG_NOTE_MAX] = NOTE_PREFIX;
    size_t pre = sizeof(NOTE_PREFIX) - 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + pre, sizeof(line) - pre - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = strlen(line);
    line[len++] = '\n';
    if (l->written + (int64_t)len > l->max_bytes)
        return;
    write_all(l, line, len);
}

void buildlog_close(buildlog *l)
{
    if (l->fd < 0)
        return;
    if (l->dropped > 0)
        buildlog_note(l, "%s: %lld bytes of output were dropped past its cap", l->name,
                      (long long)l->dropped);
    close(l->fd);
    l->fd = -1;
}
