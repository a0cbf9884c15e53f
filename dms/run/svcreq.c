/* svcreq.c - a compose droid's service -> dms_exec_request (see execreq.h: execreq_build_service). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "execreq.h"

#define NS_PER_MS_I 1000000LL

/* "K=V" into the map (a later one wins). */
static int env_put(json_t *map, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return 0;
    char key[256];
    snprintf(key, sizeof(key), "%.*s", (int)(eq - kv < 255 ? eq - kv : 255), kv);
    return json_object_set_new(map, key, json_string(eq + 1));
}

/* The droid's env, then the service's env files, then its environment, key by key; $PORT for the routed
 * service unless one of them sets it. */
static int service_env(const droid *d, const svcreq_input *sin, char ***out, dms_error *err)
{
    _cleanup_json_ json_t *map = json_loads(d->env_json ? d->env_json : "{}", 0, NULL);
    if (!json_is_object(map))
        return dms_error_set(err, DMS_E_INTERNAL, "env", "stored env is not a JSON object");
    size_t i;
    json_t *line;
    json_array_foreach(sin->env_file, i, line)
    {
        env_put(map, json_string_value(line));
    }
    for (char **e = sin->svc->environment; e && *e; e++)
        env_put(map, *e);
    char port[16];
    snprintf(port, sizeof(port), "%d", sin->routed_port);
    if (sin->routed_port > 0 && !json_object_get(map, "PORT"))
        json_object_set_new(map, "PORT", json_string(port));
    _cleanup_strv_ char **v = calloc(1, sizeof(char *));
    const char *k;
    json_t *val;
    json_object_foreach(map, k, val)
    {
        _cleanup_free_ char *kv = dmsu_strdup_printf("%s=%s", k, json_string_value(val));
        if (!v || !kv || dmsu_strv_push(&v, kv) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    if (!v)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    *out = steal_pointer(&v);
    return 0;
}

/* A string the request points into, kept in r->svc_strs. NULL on OOM. */
static const char *keep(execreq *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *keep(execreq *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0 || dmsu_strv_push(&r->svc_strs, s) < 0) {
        free(n < 0 ? NULL : s);
        return NULL;
    }
    free(s);
    return r->svc_strs[dmsu_strv_len(r->svc_strs) - 1];
}

/* The service's named volumes, by their engine names, and its repository paths, read-only from the copies its
 * release made (build/bindcopy.h). */
static int service_mounts(execreq *r, const droid *d, const svcreq_input *sin, dms_error *err)
{
    const compose_service *s = sin->svc;
    r->svc_mounts = calloc(s->n_volumes + 1, sizeof(*r->svc_mounts));
    if (!r->svc_mounts)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < s->n_volumes; i++) {
        const compose_mount *m = &s->volumes[i];
        if (m->type == COMPOSE_MOUNT_BIND) {
            const char *copy = json_string_value(json_array_get(sin->binds, i));
            if (!copy || copy[0] != '/')
                return dms_error_set(err, DMS_E_INVALID, "volumes",
                                     "services.%s.volumes[%zu]: the release has no copy of %s", s->name, i,
                                     m->source);
            r->svc_mounts[i] =
                (dms_mount){.type = DMS_MOUNT_BIND, .source = copy, .target = m->target, .read_only = true};
            continue;
        }
        const char *name = keep(r, "%s-%s", d->id, m->source);
        if (!name)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        r->svc_mounts[i] = (dms_mount){
            .type = DMS_MOUNT_VOLUME, .source = name, .target = m->target, .read_only = m->read_only};
    }
    r->req.mounts = r->svc_mounts;
    r->req.n_mounts = s->n_volumes;
    return 0;
}

/* dms.droid, dms.release, dms.service and the file's own labels. */
static int service_labels(execreq *r, const droid *d, int64_t release, const compose_service *s,
                          dms_error *err)
{
    size_t n = dmsu_strv_len(s->labels);
    r->svc_labels = calloc(n + 4, sizeof(char *));
    const char *a = keep(r, "dms.droid=%s", d->id), *b = keep(r, "dms.release=%lld", (long long)release),
               *c = keep(r, "dms.service=%s", s->name);
    if (!r->svc_labels || !a || !b || !c)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    r->svc_labels[0] = (char *)a;
    r->svc_labels[1] = (char *)b;
    r->svc_labels[2] = (char *)c;
    for (size_t i = 0; i < n; i++)
        r->svc_labels[3 + i] = s->labels[i];
    r->req.labels = r->svc_labels;
    return 0;
}

/* The file's health check, in the executor's form; NULL when it leaves the image's. */
static const dms_healthcheck *service_health(execreq *r, const compose_healthcheck *h)
{
    if (h->kind == COMPOSE_HEALTH_IMAGE)
        return NULL;
    r->health = (dms_healthcheck){.test = h->kind == COMPOSE_HEALTH_DISABLED ? NULL : h->test,
                                  .shell = h->kind == COMPOSE_HEALTH_SHELL,
                                  .disable = h->kind == COMPOSE_HEALTH_DISABLED,
                                  .interval_ms = h->interval_ms,
                                  .timeout_ms = h->timeout_ms,
                                  .start_period_ms = h->start_period_ms,
                                  .retries = h->retries};
    return &r->health;
}

/* The droid's limits (within the operator's ceilings), lowered where the service asks for less. */
static dms_resources service_limits(const execreq_input *in, const compose_service *s)
{
    dms_resources res = confine_resources(confine_droid_limits(in->confine, &in->d->resources));
    if (s->memory_bytes > 0 && (res.memory_bytes == 0 || s->memory_bytes < res.memory_bytes))
        res.memory_bytes = s->memory_bytes < DMS_MEMORY_MIN_BYTES ? DMS_MEMORY_MIN_BYTES : s->memory_bytes;
    if (s->cpu_millis > 0 && (res.cpu_millis == 0 || s->cpu_millis < res.cpu_millis))
        res.cpu_millis = s->cpu_millis;
    return res;
}

int execreq_build_service(execreq *r, const execreq_input *in, const svcreq_input *sin, dms_error *err)
{
    const droid *d = in->d;
    const compose_service *s = sin->svc;
    memset(r, 0, sizeof(*r));
    r->aliases[0] = s->name;
    r->port = (dms_port){.container_port = (uint16_t)sin->routed_port, .host_ip = "127.0.0.1"};
    r->req = (dms_exec_request){
        .job_id = d->id,
        .execution_id = in->exec_id,
        .engine = {.image = in->image,
                   .entrypoint = s->entrypoint,
                   .cmd = s->command,
                   .working_dir = s->working_dir,
                   .user = s->user},
        .resources = service_limits(in, s),
        .network_mode = DMS_NET_NAMED,
        .network_name = r->net,
        .network_aliases = r->aliases,
        .ports = sin->routed_port > 0 ? &r->port : NULL,
        .n_ports = sin->routed_port > 0 ? 1 : 0,
        .stop_grace_ms = DROID_STOP_GRACE_MS,
        .init = true,
        .security = *confine_security(),
        .healthcheck = service_health(r, &s->healthcheck),
    };
    int rc = service_env(d, sin, &r->env, err);
    r->req.engine.env = r->env;
    if (rc == 0)
        rc = confine_droid_network(in->executor_id, d->id, r->net, sizeof(r->net), err);
    if (rc == 0)
        rc = service_mounts(r, d, sin, err);
    if (rc == 0)
        rc = service_labels(r, d, in->release, s, err);
    return rc;
}
