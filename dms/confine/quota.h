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

#include <dms/executor.h>

#include "../core/core.h"
#include "../store/store.h"

/* What the quota reads: borrowed; each outlives the calls that are given it. */
typedef struct quota_deps {
    store *st;            /* the releases' image sizes */
    core *core;           /* the user's droids */
    const char *data_dir; /* $DMS_DATA_DIR: each droid's data directory is droids/<id> beneath it */
    int user_max_disk_mb; /* DMS_USER_MAX_DISK_MB (confine_config; 0: no quota) */
} quota_deps;

/* Bytes the user's droids hold (see above). */
int quota_disk_used(const quota_deps *q, const char *user_id, int64_t *bytes, dms_error *err);
/* 0 while the user is under DMS_USER_MAX_DISK_MB; FORBIDDEN naming "quota.disk_mb", their usage and the
 * setting once they have reached it. */
int quota_check_disk(const quota_deps *q, const char *user_id, dms_error *err);
/* After a build: the size of its image as ex reports it, to keep with the release (0, logged, when the engine
 * cannot say or ex is NULL). */
int64_t quota_image_bytes(dms_executor *ex, const char *image);

#endif
