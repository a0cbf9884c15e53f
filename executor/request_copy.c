/* request_copy.c - the execution request's ownership: its deep copy and its free (dms/request.h). */
#include <dms/request.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- ownership ---- */

void dms_exec_request_free(dms_exec_request *req)
{
    if (!req)
        return;
    free((char *)req->job_id);
    free((char *)req->execution_id);
    free((char *)req->engine.image);
    dmsu_strv_free((char **)req->engine.entrypoint);
    dmsu_strv_free((char **)req->engine.cmd);
    dmsu_strv_free((char **)req->engine.env);
    free((char *)req->engine.working_dir);
    free((char *)req->engine.user);
    for (size_t i = 0; req->mounts && i < req->n_mounts; i++) {
        free((char *)req->mounts[i].source);
        free((char *)req->mounts[i].target);
    }
    free((dms_mount *)req->mounts);
    free((char *)req->network_name);
    for (size_t i = 0; req->ports && i < req->n_ports; i++) {
        free((char *)req->ports[i].protocol);
        free((char *)req->ports[i].host_ip);
    }
    free((dms_port *)req->ports);
    dmsu_strv_free((char **)req->labels);
    free((char *)req->role);
    dmsu_strv_free((char **)req->security.cap_drop);
    dmsu_strv_free((char **)req->security.cap_add);
    dmsu_strv_free((char **)req->network_aliases);
    if (req->healthcheck)
        dmsu_strv_free((char **)req->healthcheck->test);
    free((dms_healthcheck *)req->healthcheck);
    free(req);
}

static int dup_str(const char *in, const char **out)
{
    *out = NULL;
    if (!in)
        return 0;
    *out = strdup(in);
    return *out ? 0 : -1;
}

static int dup_strv(char *const *in, char *const **out)
{
    *out = NULL;
    if (!in)
        return 0;
    *out = dmsu_strv_copy(in);
    return *out ? 0 : -1;
}

/* NULL stays NULL (the image's own check). */
static int dup_healthcheck(const dms_healthcheck *in, const dms_healthcheck **out)
{
    *out = NULL;
    if (!in)
        return 0;
    dms_healthcheck *h = malloc(sizeof(*h));
    if (!h)
        return -1;
    *h = *in;
    *out = h; /* before the test's copy, so that a failed one is freed with the request */
    return dup_strv(in->test, &h->test);
}

int dms_exec_request_copy(const dms_exec_request *req, dms_exec_request **out, dms_error *err)
{
    dms_exec_request *c = calloc(1, sizeof(*c));
    if (!c)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory copying a request");
    *c = *req;
    /* Reset every pointer first so that a partial copy frees cleanly. */
    c->job_id = c->execution_id = c->engine.image = c->engine.working_dir = c->engine.user = NULL;
    c->engine.entrypoint = c->engine.cmd = c->engine.env = c->labels = NULL;
    c->mounts = NULL;
    c->ports = NULL;
    c->network_name = c->role = NULL;
    c->security.cap_drop = c->security.cap_add = c->network_aliases = NULL;
    c->healthcheck = NULL;
    c->n_mounts = c->n_ports = 0;
    bool bad = dup_str(req->job_id, &c->job_id) || dup_str(req->execution_id, &c->execution_id) ||
               dup_str(req->engine.image, &c->engine.image) ||
               dup_strv(req->engine.entrypoint, &c->engine.entrypoint) ||
               dup_strv(req->engine.cmd, &c->engine.cmd) || dup_strv(req->engine.env, &c->engine.env) ||
               dup_str(req->engine.working_dir, &c->engine.working_dir) ||
               dup_str(req->engine.user, &c->engine.user) || dup_str(req->network_name, &c->network_name) ||
               dup_strv(req->labels, &c->labels) || dup_str(req->role, &c->role) ||
               dup_strv(req->security.cap_drop, &c->security.cap_drop) ||
               dup_strv(req->security.cap_add, &c->security.cap_add) ||
               dup_strv(req->network_aliases, &c->network_aliases) ||
               dup_healthcheck(req->healthcheck, &c->healthcheck);
    if (!bad && req->n_mounts) {
        dms_mount *m = calloc(req->n_mounts, sizeof(*m));
        c->mounts = m;
        if (!m)
            bad = true;
        for (size_t i = 0; !bad && i < req->n_mounts; i++) {
            c->n_mounts = i + 1;
            m[i] = req->mounts[i];
            m[i].source = m[i].target = NULL;
            bad =
                dup_str(req->mounts[i].source, &m[i].source) || dup_str(req->mounts[i].target, &m[i].target);
        }
    }
    if (!bad && req->n_ports) {
        dms_port *p = calloc(req->n_ports, sizeof(*p));
        c->ports = p;
        if (!p)
            bad = true;
        for (size_t i = 0; !bad && i < req->n_ports; i++) {
            c->n_ports = i + 1;
            p[i] = req->ports[i];
            p[i].protocol = p[i].host_ip = NULL;
            bad = dup_str(req->ports[i].protocol, &p[i].protocol) ||
                  dup_str(req->ports[i].host_ip, &p[i].host_ip);
        }
    }
    if (bad) {
        dms_exec_request_free(c);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory copying a request");
    }
    *out = c;
    return 0;
}
