/* types.c - request -> container create JSON (Engine API v1.41 ContainerConfig + HostConfig). */
#include "types.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <dms/backend.h>

#include "util.h"

#define NANO_CPUS_PER_MILLI 1000000LL
#define NANOS_PER_MS        1000000LL

void docker_container_name(char out[DOCKER_NAME_MAX], const char *executor_id, const char *execution_id)
{
    snprintf(out, DOCKER_NAME_MAX, "dms-%s-%s", executor_id, execution_id);
}

json_t *docker_labels(const char *executor_id, const char *job_id, const char *execution_id, const char *role)
{
    json_t *l = json_pack("{s:s,s:s,s:s}", DMS_LABEL_MANAGED, "true", DMS_LABEL_EXECUTOR, executor_id,
                          DMS_LABEL_BACKEND, "docker");
    if (!l)
        return NULL;
    if (job_id)
        json_object_set_new(l, DMS_LABEL_JOB, json_string(job_id));
    if (execution_id)
        json_object_set_new(l, DMS_LABEL_EXECUTION, json_string(execution_id));
    if (role)
        json_object_set_new(l, DMS_LABEL_ROLE, json_string(role));
    return l;
}

long docker_grace_seconds(int64_t grace_ms)
{
    if (grace_ms <= 0)
        grace_ms = DMS_DEFAULT_STOP_GRACE_MS;
    return (long)((grace_ms + 999) / 1000);
}

int docker_validate_request(const dms_exec_request *req, dms_error *err)
{
    if (!req->engine.image || !*req->engine.image)
        return dms_error_set(err, DMS_E_INVALID, "engine.image",
                             "engine.image is required by the docker backend");
    return 0;
}

static json_t *strv_array(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; a && v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static void port_key(char *buf, size_t n, const dms_port *p)
{
    snprintf(buf, n, "%u/%s", p->container_port, p->protocol ? p->protocol : "tcp");
}

/* The executor's labels (io.dms.*), then the request's own "key=value" labels. */
static json_t *container_labels(const dms_exec_request *req, const char *executor_id)
{
    json_t *labels =
        docker_labels(executor_id, req->job_id, req->execution_id, req->role ? req->role : "job");
    for (size_t i = 0; labels && req->labels && req->labels[i]; i++) {
        const char *eq = strchr(req->labels[i], '=');
        if (!eq)
            continue;
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - req->labels[i]), req->labels[i]);
        json_object_set_new(labels, key, json_string(eq + 1));
    }
    return labels;
}

/* HostConfig's limits: CPU, memory (no swap beyond it), pids, disk, GPUs. */
static void resources_config(json_t *host, const dms_resources *rs)
{
    if (rs->cpu_millis > 0)
        json_object_set_new(host, "NanoCpus", json_integer(rs->cpu_millis * NANO_CPUS_PER_MILLI));
    if (rs->memory_bytes > 0) {
        json_object_set_new(host, "Memory", json_integer(rs->memory_bytes));
        /* No swap beyond the limit, so that exceeding it is an OOM kill and not a slow crawl. */
        json_object_set_new(host, "MemorySwap", json_integer(rs->memory_bytes));
    }
    if (rs->pids_limit > 0)
        json_object_set_new(host, "PidsLimit", json_integer(rs->pids_limit));
    if (rs->disk_bytes > 0) {
        char size[32];
        snprintf(size, sizeof(size), "%lld", (long long)rs->disk_bytes);
        json_object_set_new(host, "StorageOpt", json_pack("{s:s}", "size", size));
    }
    if (rs->gpus != 0)
        json_object_set_new(
            host, "DeviceRequests",
            json_pack("[{s:s,s:i,s:[[s]]}]", "Driver", "", "Count", rs->gpus, "Capabilities", "gpu"));
}

static json_t *mounts_array(const dms_exec_request *req)
{
    json_t *mounts = json_array();
    for (size_t i = 0; i < req->n_mounts; i++) {
        const dms_mount *m = &req->mounts[i];
        json_t *mo = json_pack("{s:s,s:b}", "Target", m->target, "ReadOnly", m->read_only);
        switch (m->type) {
        case DMS_MOUNT_BIND:
            json_object_set_new(mo, "Type", json_string("bind"));
            json_object_set_new(mo, "Source", json_string(m->source));
            break;
        case DMS_MOUNT_VOLUME:
            json_object_set_new(mo, "Type", json_string("volume"));
            json_object_set_new(mo, "Source", json_string(m->source));
            break;
        case DMS_MOUNT_TMPFS:
            json_object_set_new(mo, "Type", json_string("tmpfs"));
            if (m->size_bytes > 0)
                json_object_set_new(mo, "TmpfsOptions",
                                    json_pack("{s:I}", "SizeBytes", (json_int_t)m->size_bytes));
            break;
        }
        json_array_append_new(mounts, mo);
    }
    return mounts;
}

/* NetworkMode, and the published ports (ExposedPorts in the spec, PortBindings in HostConfig). */
static void network_config(json_t *spec, json_t *host, const dms_exec_request *req)
{
    const char *mode = "bridge";
    if (req->network_mode == DMS_NET_NONE)
        mode = "none";
    else if (req->network_mode == DMS_NET_HOST)
        mode = "host";
    else if (req->network_mode == DMS_NET_NAMED)
        mode = req->network_name;
    json_object_set_new(host, "NetworkMode", json_string(mode));
    /* Aliases are the endpoint's, under the same name as NetworkMode (API 1.41 NetworkingConfig). The engine
     * keeps them in the container, not the network (docs/engine-notes.md §6): a network removed under a
     * created container and made again before its start (start_container's retry) still resolves the alias,
     * and adoption after a restart has nothing to restore. */
    if (req->network_mode == DMS_NET_NAMED && req->network_aliases && req->network_aliases[0])
        json_object_set_new(spec, "NetworkingConfig",
                            json_pack("{s:{s:{s:o}}}", "EndpointsConfig", req->network_name, "Aliases",
                                      strv_array(req->network_aliases)));
    if (req->n_ports) {
        json_t *exposed = json_object(), *bindings = json_object();
        for (size_t i = 0; i < req->n_ports; i++) {
            const dms_port *p = &req->ports[i];
            char key[32], hp[8] = "";
            port_key(key, sizeof(key), p);
            if (p->host_port)
                snprintf(hp, sizeof(hp), "%u", p->host_port);
            json_object_set_new(exposed, key, json_object());
            json_object_set_new(
                bindings, key,
                json_pack("[{s:s,s:s}]", "HostIp", p->host_ip ? p->host_ip : "127.0.0.1", "HostPort", hp));
        }
        json_object_set_new(spec, "ExposedPorts", exposed);
        json_object_set_new(host, "PortBindings", bindings);
    }
}

static void security_config(json_t *host, const dms_exec_request *req)
{
    /* API 1.41 HostConfig: SecurityOpt "no-new-privileges" (runc sets PR_SET_NO_NEW_PRIVS for every process
     * of the container, exec'd ones included), CapDrop then CapAdd applied to the engine's default set, names
     * with or without CAP_ (ours are without). */
    const dms_security *sec = &req->security;
    if (sec->no_new_privileges)
        json_object_set_new(host, "SecurityOpt", json_pack("[s]", "no-new-privileges"));
    if (sec->cap_drop)
        json_object_set_new(host, "CapDrop", strv_array(sec->cap_drop));
    if (sec->cap_add)
        json_object_set_new(host, "CapAdd", strv_array(sec->cap_add));
    json_object_set_new(host, "LogConfig",
                        json_pack("{s:s,s:{s:s,s:s}}", "Type", DOCKER_LOG_DRIVER, "Config", "max-size",
                                  DOCKER_LOG_MAX_SIZE, "max-file", DOCKER_LOG_MAX_FILE));
}

/* Config.Healthcheck (API 1.41 HealthConfig): Test ["CMD", argv...], ["CMD-SHELL", line] or ["NONE"]; the
 * periods in nanoseconds, where 0 inherits the image's HEALTHCHECK value and, without one, the engine's
 * default (docs/engine-notes.md §10); the request's 1 ms granularity keeps the engine's minimum of 1 ms. No
 * check asked for: no Healthcheck, so the image's own runs as it would under `docker run`. */
static void healthcheck_config(json_t *spec, const dms_healthcheck *h)
{
    if (!h)
        return;
    json_t *test = json_array();
    if (h->disable) {
        json_array_append_new(test, json_string("NONE"));
        json_object_set_new(spec, "Healthcheck", json_pack("{s:o}", "Test", test));
        return;
    }
    json_array_append_new(test, json_string(h->shell ? "CMD-SHELL" : "CMD"));
    for (size_t i = 0; h->test && h->test[i]; i++)
        json_array_append_new(test, json_string(h->test[i]));
    json_object_set_new(spec, "Healthcheck",
                        json_pack("{s:o,s:I,s:I,s:I,s:i}", "Test", test, "Interval",
                                  (json_int_t)(h->interval_ms * NANOS_PER_MS), "Timeout",
                                  (json_int_t)(h->timeout_ms * NANOS_PER_MS), "StartPeriod",
                                  (json_int_t)(h->start_period_ms * NANOS_PER_MS), "Retries", h->retries));
}

dms_health docker_health_of(json_t *state)
{
    /* State.Health is there only for a container with a check (API 1.41 ContainerState.Health); its Status
     * is "starting", "healthy" or "unhealthy" ("none" is in the API's enum but not sent by 20.10). A
     * container that stopped keeps "unhealthy" (docs/engine-notes.md §10): no check runs, so no verdict. */
    if (!json_is_true(json_object_get(state, "Running")))
        return DMS_HEALTH_NONE;
    const char *st = json_string_value(json_object_get(json_object_get(state, "Health"), "Status"));
    if (!st)
        return DMS_HEALTH_NONE;
    if (strcmp(st, "starting") == 0)
        return DMS_HEALTH_STARTING;
    if (strcmp(st, "healthy") == 0)
        return DMS_HEALTH_HEALTHY;
    if (strcmp(st, "unhealthy") == 0)
        return DMS_HEALTH_UNHEALTHY;
    return DMS_HEALTH_NONE;
}

json_t *docker_container_spec(const dms_exec_request *req, const char *executor_id)
{
    _cleanup_json_ json_t *spec = json_object();
    json_t *host = json_object();
    if (!spec || !host) {
        json_decref(host);
        return NULL;
    }
    json_object_set_new(spec, "HostConfig", host);
    json_object_set_new(spec, "Image", json_string(req->engine.image));
    if (req->engine.entrypoint)
        json_object_set_new(spec, "Entrypoint", strv_array(req->engine.entrypoint));
    if (req->engine.cmd)
        json_object_set_new(spec, "Cmd", strv_array(req->engine.cmd));
    json_object_set_new(spec, "Env", strv_array(req->engine.env));
    if (req->engine.working_dir)
        json_object_set_new(spec, "WorkingDir", json_string(req->engine.working_dir));
    if (req->engine.user)
        json_object_set_new(spec, "User", json_string(req->engine.user));
    /* Jobs never get a TTY: a TTY stream is not framed, and API 1.41 does not say which kind a response is.
     */
    json_object_set_new(spec, "Tty", json_false());
    json_object_set_new(spec, "OpenStdin", json_false());
    json_object_set_new(spec, "AttachStdout", json_true());
    json_object_set_new(spec, "AttachStderr", json_true());
    json_object_set_new(spec, "StopTimeout", json_integer(docker_grace_seconds(req->stop_grace_ms)));
    json_object_set_new(spec, "Labels", container_labels(req, executor_id));
    resources_config(host, &req->resources);
    json_object_set_new(host, "Mounts", mounts_array(req));
    network_config(spec, host, req);
    if (req->init)
        json_object_set_new(host, "Init", json_true());
    security_config(host, req);
    healthcheck_config(spec, req->healthcheck);
    return steal_pointer(&spec);
}

void docker_split_image_ref(const char *ref, char *name, char *tag)
{
    const char *at = strchr(ref, '@');
    if (at) {
        strcpy(name, ref);
        tag[0] = '\0';
        return;
    }
    const char *slash = strrchr(ref, '/');
    const char *colon = strrchr(slash ? slash : ref, ':');
    if (colon) {
        memcpy(name, ref, (size_t)(colon - ref));
        name[colon - ref] = '\0';
        strcpy(tag, colon + 1);
    } else {
        strcpy(name, ref);
        strcpy(tag, "latest");
    }
}

/* Where our LABEL goes, as the engine's parser sees the file (dmsu_df_scan): after every FROM, before every
 * FROM but the first (the end of the stage before it), and at the end of the file. */
typedef struct label_points {
    dmsu_buf offsets; /* size_t each, ascending */
    size_t froms;
    bool open; /* an instruction (the last) runs into the end of the file */
} label_points;

static int add_point(label_points *lp, size_t at, dms_error *err)
{
    if (dmsu_buf_append(&lp->offsets, &at, sizeof(at)) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return 0;
}

static int note_point(void *ud, const dmsu_df_instr *in, dms_error *err)
{
    label_points *lp = ud;
    size_t k = strcspn(in->text, " \t\v\f\r"); /* splitCommand's separators */
    lp->open = in->open;
    if (k != 4 || strncasecmp(in->text, "FROM", 4) != 0)
        return 0;
    int r = lp->froms++ ? add_point(lp, in->start, err) : 0;
    return r < 0 ? r : add_point(lp, in->end, err);
}

/* A copy of the Dockerfile with `label_line` after every FROM and at the end of every stage.
 *
 * After every FROM, so that every image a build makes, intermediate ones included, carries our labels from
 * its first step: a build that is cancelled or dies leaves nothing cleanup cannot find. At the end of every
 * stage, so that a LABEL of the Dockerfile (`LABEL io.dms.executor=someone-else`) cannot take the image a
 * stage ends with, the tagged one included, out of cleanup and image removal. One LABEL instruction each: the
 * engine makes one step per label of the labels= query, so the query keeps only per-build values. Only stable
 * labels go in the text (a per-build value would change every later step's cache key). The lines are split
 * and joined by dmsu_df_scan, as the engine does, so a LABEL goes in only where an instruction ends and every
 * instruction of the file means what it meant. NULL when the file is not one we can edit (no FROM, an
 * instruction running into the end of the file, or not parseable): then the query carries every label. Caller
 * frees. */
char *docker_label_stages(const char *text, size_t len, const char *label_line)
{
    label_points lp = {0};
    dms_error err;
    if (dmsu_df_scan(text, len, note_point, &lp, NULL, &err) < 0 || lp.open || !lp.froms ||
        add_point(&lp, len, &err) < 0) {
        dmsu_buf_free(&lp.offsets);
        return NULL;
    }
    dmsu_buf b = {0};
    size_t at = 0, n = lp.offsets.len / sizeof(size_t);
    bool failed = false; /* any append that fails fails the copy: a hole in it would change the build */
    for (size_t i = 0; i < n; i++) {
        size_t point;
        memcpy(&point, lp.offsets.data + i * sizeof(size_t), sizeof(point));
        failed |= dmsu_buf_append(&b, text + at, point - at) < 0;
        if (point > 0 && text[point - 1] != '\n')
            failed |= dmsu_buf_append(&b, "\n", 1) < 0;
        failed |= dmsu_buf_printf(&b, "%s\n", label_line) < 0;
        at = point;
    }
    failed |= dmsu_buf_append(&b, text + at, len - at) < 0;
    dmsu_buf_free(&lp.offsets);
    if (failed || !b.data) {
        dmsu_buf_free(&b);
        return NULL;
    }
    return b.data;
}
