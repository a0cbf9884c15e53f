/* buildreq.c - the engine build request for a droid (see buildreq.h). */
#include "buildreq.h"

#include <stdio.h>
#include <string.h>

#define BYTES_PER_MB (1024LL * 1024)

void buildreq_make(buildreq *out, const build_config *cfg, const char *droid_id, int64_t build_id,
                   const char *context_dir, const char *dockerfile)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->tag, sizeof(out->tag), "dms-droid/%s:b%lld", droid_id, (long long)build_id);
    snprintf(out->build_id, sizeof(out->build_id), "%s-b%lld", droid_id, (long long)build_id);
    snprintf(out->label_droid, sizeof(out->label_droid), "dms.droid=%s", droid_id);
    snprintf(out->label_build, sizeof(out->label_build), "dms.build=%lld", (long long)build_id);
    out->labels[0] = out->label_droid;
    out->labels[1] = out->label_build;
    out->labels[2] = NULL;
    out->req = (dms_build_request){.build_id = out->build_id,
                                   .job_id = droid_id,
                                   .context_dir = context_dir,
                                   .tag = out->tag,
                                   .labels = out->labels,
                                   .memory_bytes = (int64_t)cfg->memory_mb * BYTES_PER_MB,
                                   .cpu_millis = cfg->cpu_millis,
                                   .dockerfile_text = dockerfile};
}
