/* build/buildreq.h - what the builder asks the engine to build for a droid: a pure function from the droid's
 * id, the build's id and the operator's limits to a dms_build_request (dms/executor.h), tested without an
 * engine.
 *
 * The names: the image is tagged dms-droid/<droid>:b<build>, the build's executor id is <droid>-b<build>, and
 * its labels dms.droid=<droid> and dms.build=<build> let a cancel, the collector and an operator find it. The
 * limits: DMS_BUILD_MEMORY_MB and DMS_BUILD_CPU_MILLIS.
 *
 * Thread-safe (no state).
 */
#ifndef DMSD_BUILD_BUILDREQ_H
#define DMSD_BUILD_BUILDREQ_H

#include <stdint.h>

#include <dms/executor.h>

#include "buildopts.h"

#define BUILDREQ_TAG_MAX 128

/* The request and the strings it points into. Filled in place: req points into the struct, so it is not
 * copied or moved while req is in use. */
typedef struct buildreq {
    char tag[BUILDREQ_TAG_MAX];
    char build_id[DMS_ID_MAX + 1];
    char label_droid[64];
    char label_build[64];
    char *labels[3];
    dms_build_request req;
} buildreq;

/* Fills out for build build_id of droid droid_id: the context is context_dir, the Dockerfile's text
 * dockerfile (borrowed, as is context_dir: both must outlive out). */
void buildreq_make(buildreq *out, const build_config *cfg, const char *droid_id, int64_t build_id,
                   const char *context_dir, const char *dockerfile);

#endif
