/* quota.c - a user's disk use and quota (see quota.h). */
#include "quota.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../common.h"

#define MB             (1024LL * 1024)
#define DU_MAX_ENTRIES 200000 /* a walk stops here: that much is counted, and a tree that big is over */
#define DU_OPEN_FDS    16
#define DU_BLOCK_BYTES 512 /* st_blocks is in 512-byte units (stat(2)) */

/* nftw's callback has no user pointer: one walk per thread at a time, its totals thread-local. */
static _Thread_local int64_t du_bytes;
static _Thread_local long du_entries;

static int du_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)path;
    (void)type;
    (void)ftw;
    du_bytes += (int64_t)st->st_blocks * DU_BLOCK_BYTES;
    return ++du_entries >= DU_MAX_ENTRIES ? FTW_STOP : FTW_CONTINUE;
}

/* Bytes on disk under dir, never following a symlink (FTW_PHYS) or leaving its filesystem (FTW_MOUNT): the
 * clone is the user's tree, and a link in it must not make us count, or walk, the host's. */
static int64_t du(const char *dir)
{
    du_bytes = 0;
    du_entries = 0;
    nftw(dir, du_one, DU_OPEN_FDS, FTW_PHYS | FTW_MOUNT | FTW_ACTIONRETVAL);
    return du_bytes;
}

int quota_disk_used(const quota_deps *q, const char *user_id, int64_t *bytes, dms_error *err)
{
    int64_t total = 0;
    int r = store_user_image_bytes(q->st, user_id, &total, err);
    if (r < 0)
        return r;
    char **ids = core_ids(q->core);
    for (size_t i = 0; ids && ids[i]; i++) {
        droid *d = core_get_copy(q->core, ids[i]);
        char dir[PATH_MAX];
        if (d && strcmp(d->user_id, user_id) == 0 &&
            dmsd_droid_dir(q->data_dir, d->id, dir, sizeof(dir)) == 0)
            total += du(dir);
        droid_free(d);
    }
    dmsu_strv_free(ids);
    *bytes = total;
    return 0;
}

int quota_check_disk(const quota_deps *q, const char *user_id, dms_error *err)
{
    int max = q->user_max_disk_mb;
    int64_t used = 0;
    int r = quota_disk_used(q, user_id, &used, err);
    if (r < 0)
        return r;
    if (max > 0 && used >= (int64_t)max * MB)
        return dms_error_set(
            err, DMS_E_FORBIDDEN, "quota.disk_mb",
            "disk quota reached: your droids hold %lld MB (images of kept releases and their "
            "data directories) and DMS_USER_MAX_DISK_MB allows %d MB per user; delete a droid "
            "first (the operator sets DMS_USER_MAX_DISK_MB)",
            (long long)(used / MB), max);
    return 0;
}

int64_t quota_image_bytes(dms_executor *ex, const char *image)
{
    dms_image_info info = {0};
    dms_error err = {0};
    if (ex && dms_executor_image_info(ex, image, &info, &err) == 0 && info.present)
        return info.size_bytes;
    log_warn("op=quota image=%s error=\"%s\" note=\"its size counts as 0\"", image,
             err.message[0] ? err.message : "the engine does not have it");
    return 0;
}
