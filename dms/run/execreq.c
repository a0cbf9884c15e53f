/* execreq.c - droid + release -> dms_exec_request (see execreq.h). */
#include "execreq.h"

#include <stdio.h>
#include <string.h>

#include "../common.h"

/* One named volume per droid volume, by its engine name. Returns how many. */
static size_t fill_mounts(execreq *r, const droid *d)
{
    size_t n = 0;
    /* The API accepts at most DROID_VOLUMES_MAX volumes (droid.c); the bound keeps this function safe anyway.
     */
    for (size_t i = 0; i < d->n_volumes && i < DROID_VOLUMES_MAX; i++, n++) {
        droid_volume_engine_name(d, i, r->vol_names[i], sizeof(r->vol_names[i]));
        r->mounts[i] = (dms_mount){
            .type = DMS_MOUNT_VOLUME, .source = r->vol_names[i], .target = d->volumes[i].mount_path};
    }
    return n;
}

int execreq_build(execreq *r, const execreq_input *in, dms_error *err)
{
    const droid *d = in->d;
    memset(r, 0, sizeof(*r));
    size_t n_mounts = fill_mounts(r, d);
    snprintf(r->label_droid, sizeof(r->label_droid), "dms.droid=%s", d->id);
    snprintf(r->label_release, sizeof(r->label_release), "dms.release=%lld", (long long)in->release);
    r->labels[0] = r->label_droid;
    r->labels[1] = r->label_release;
    r->labels[2] = NULL;
    r->port = (dms_port){.container_port = (uint16_t)d->port, .host_port = 0, .host_ip = "127.0.0.1"};
    int rc = droid_env_vector(d, &r->env, err);
    /* Its user's network, its limits and the security part of every droid (confine/). */
    if (rc == 0)
        rc = confine_user_network(in->executor_id, d->user_id, r->net, sizeof(r->net), err);
    r->req = (dms_exec_request){
        .job_id = d->id,
        .execution_id = in->exec_id,
        .engine = {.image = in->image, .env = r->env},
        .resources = confine_resources(confine_droid_limits(in->confine, &d->resources)),
        .mounts = r->mounts,
        .n_mounts = n_mounts,
        .network_mode = DMS_NET_NAMED,
        .network_name = r->net,
        .ports = &r->port,
        .n_ports = 1,
        .labels = r->labels,
        .stop_grace_ms = DROID_STOP_GRACE_MS,
        /* Apps are often PID 1 without a SIGTERM handler (httpd -f): an init gives them default signal
         * handling, so a stop takes milliseconds instead of the whole grace period. */
        .init = true,
        .security = *confine_security(),
    };
    return rc;
}

void execreq_clear(execreq *r)
{
    dmsu_strv_free(r->env);
    r->env = NULL;
    free(r->svc_mounts);
    r->svc_mounts = NULL;
    dmsu_strv_free(r->svc_strs);
    r->svc_strs = NULL;
    free(r->svc_labels);
    r->svc_labels = NULL;
}
