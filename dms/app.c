/* app.c - small helpers of the application object (see app.h). */
#include "app.h"

#include "common.h"

int app_droid_dir(const app *a, const char *id, char *buf, size_t size)
{
    return dmsd_droid_dir(a->cfg.data_dir, id, buf, size);
}

quota_deps app_quota_deps(const app *a)
{
    return (quota_deps){.st = a->st,
                        .core = a->core,
                        .data_dir = a->cfg.data_dir,
                        .user_max_disk_mb = a->cfg.confine.user_max_disk_mb};
}
