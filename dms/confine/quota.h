/* confine/quota.h - a user's disk quota (DMS_USER_MAX_DISK_MB): what their droids hold on this host, counted
 * cheaply from what is already known. The droid quota (DMS_USER_MAX_DROIDS) is counted where droids are made,
 * under core's write lock (core_set_user_max_droids).
 *
 * Counted: the image of every release still kept (its size as the engine reported it right after the build,
 * base layers included, so a base image shared by several releases counts each time) and each droid's data
 * directory (the clone and the build logs). Not counted: named volumes (the engine can only size them by
 * walking every volume, GET /system/df), containers' writable layers (inspect ?size=1 walks the layer),
 * engine-side logs (bounded per container by the log driver's max-size), the build cache, and images of
 * builds still running. A build that starts under the quota may end above it; the next one is refused.
 *
 * Thread-safe. */
#ifndef DMSD_QUOTA_H
#define DMSD_QUOTA_H

#include <stdint.h>

#include "../app.h"

/* Bytes the user's droids hold (see above). */
int quota_disk_used(app *a, const char *user_id, int64_t *bytes, dms_error *err);
/* 0 while the user is under DMS_USER_MAX_DISK_MB; FORBIDDEN naming "quota.disk_mb", their usage and the
 * setting once they have reached it. */
int quota_check_disk(app *a, const char *user_id, dms_error *err);
/* After a build: the size of its image as the engine reports it, to keep with the release (0, logged, when
 * the engine cannot say). */
int64_t quota_image_bytes(app *a, const char *image);

#endif
