/* datadir.c - dmsd's data directory, made private at startup (see datadir.h). */
#include "datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "common.h"

#define DATADIR_SETTING "DMS_DATA_DIR"
#define DATADIR_MARKER  "dms.db" /* a data dir an older dmsd used holds its store */

/* True if the directory holds nothing at all (a fresh one the operator made for dmsd). */
static bool dir_empty(int fd)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        if (dup_fd >= 0)
            close(dup_fd);
        return false;
    }
    bool empty = true;
    struct dirent *de;
    while (empty && (de = readdir(d)))
        empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* A directory that is shared by design (/tmp) or someone else's is never dmsd's to use or to change. */
static int check_owned(const struct stat *st, const char *path, dms_error *err)
{
    if (st->st_mode & (S_ISVTX | S_IWOTH))
        return dms_error_set(err, DMS_E_INVALID, DATADIR_SETTING,
                             "%s is shared (mode %04o): give dmsd a directory of its own", path,
                             (unsigned)(st->st_mode & 07777));
    if (st->st_uid != geteuid())
        return dms_error_set(
            err, DMS_E_INVALID, DATADIR_SETTING,
            "%s belongs to uid %u, not to dmsd's user (uid %u): give dmsd a directory of its own", path,
            (unsigned)st->st_uid, (unsigned)geteuid());
    return 0;
}

/* Takes group and other bits away from the directory open at fd, and says so. */
static int make_private(int fd, const struct stat *st, const char *path, dms_error *err)
{
    if (!(st->st_mode & 077))
        return 0;
    mode_t now = st->st_mode & 0700;
    if (fchmod(fd, now) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "make %s private (mode %04o)", path, (unsigned)now);
    log_warn("component=dmsd op=data-dir path=%s was=%04o now=%04o note=\"made private: it was open to other "
             "users (an older dmsd)\"",
             path, (unsigned)(st->st_mode & 07777), (unsigned)now);
    return 0;
}

static int prepare_subdirs(int dir_fd, const char *abs, dms_error *err)
{
    static const char *const names[] = DATADIR_SUBDIRS;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(names); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", abs, names[i]);
        _cleanup_close_ int fd = openat(dir_fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT)
            continue;
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "open directory %s", path);
        int r = check_owned(&st, path, err);
        if (r < 0 || (r = make_private(fd, &st, path, err)) < 0)
            return r;
    }
    return 0;
}

int datadir_prepare(const char *path, char *abs, size_t abs_size, dms_error *err)
{
    int r = dms_mkdir_p(path, false, err);
    if (r < 0)
        return r;
    char real[PATH_MAX];
    if (!realpath(path, real))
        return dms_error_set_errno(err, DMS_E_IO, errno, "resolve %s", path);
    if (dmsu_snprintf_ok(abs, abs_size, "%s", real) < 0)
        return dms_error_set(err, DMS_E_INVALID, DATADIR_SETTING, "%.64s...: path too long", real);
    _cleanup_close_ int fd = open(abs, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open directory %s", abs);
    if ((r = check_owned(&st, abs, err)) < 0)
        return r;
    /* Open to others: ours to close only if an older dmsd used it or nothing is in it yet; anything else
     * (a home directory, /srv) is not dmsd's to change. */
    if ((st.st_mode & 077) && faccessat(fd, DATADIR_MARKER, F_OK, AT_SYMLINK_NOFOLLOW) != 0 && !dir_empty(fd))
        return dms_error_set(err, DMS_E_INVALID, DATADIR_SETTING,
                             "%s holds other files and is open to other users (mode %04o): give dmsd a "
                             "directory of its own, or make this one 0700",
                             abs, (unsigned)(st.st_mode & 07777));
    if ((r = make_private(fd, &st, abs, err)) < 0)
        return r;
    return prepare_subdirs(fd, abs, err);
}
