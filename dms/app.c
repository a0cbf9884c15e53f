/* app.c - small helpers of the application object (see app.h). */
#include "app.h"

#include "common.h"

int app_droid_dir(const app *a, const char *id, char *buf, size_t size)
{
    return dmsu_snprintf_ok(buf, size, "%s/droids/%s", a->cfg.data_dir, id) < 0 ? -DMS_E_INVALID : 0;
}
