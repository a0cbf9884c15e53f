/* network.c - named networks: made on first use (labelled as ours), removed on request when nothing uses
 * them.
 *
 * Engine behaviour this relies on (20.10.24, API 1.41, measured):
 * - POST /networks/create with CheckDuplicate answers 409 when the name exists: someone made it meanwhile.
 * - DELETE /networks/{name} answers 403 while a running container is attached ("has active endpoints"), but
 * 204 when a container is only created on it; that container's start then fails with 404 "network X not
 * found".
 * - A create whose bridge finds no free subnet fails with "could not find an available, non-overlapping IPv4
 *   address pool among the defaults to assign to the network": dockerd's default-address-pools hold about 30
 *   bridge networks. */
#include "docker.h"

#include <stdio.h>
#include <string.h>

#include "types.h"
#include "util.h"

#define POOL_EXHAUSTED_MARK "address pool"

int docker_ensure_network(docker_executor *ex, const char *name, dms_error *err)
{
    char p[200];
    docker_response resp;
    snprintf(p, sizeof(p), "/networks/%s", name);
    int r = docker_call(&ex->client, "GET", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    long st = resp.status;
    dms_buf_free(&resp.body);
    if (st == 200)
        return 0;
    _cleanup_json_ json_t *labels = docker_labels(ex->id, NULL, NULL, "network");
    _cleanup_json_ json_t *body = json_pack("{s:s,s:b,s:s,s:O}", "Name", name, "CheckDuplicate", 1, "Driver",
                                            "bridge", "Labels", labels);
    _cleanup_free_ char *js = json_dumps(body, JSON_COMPACT);
    r = docker_call(&ex->client, "POST", "/networks/create", js, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    /* 409: created meanwhile by someone else, which is fine. */
    if (resp.status != 201 && resp.status != 409) {
        char what[160], msg[DMS_ERROR_MSG_MAX];
        snprintf(what, sizeof(what), "create network %s", name);
        docker_response_message(&resp, msg, sizeof(msg));
        if (strstr(msg, POOL_EXHAUSTED_MARK))
            r = dms_error_set(
                err, DMS_E_ENGINE, "network.name",
                "%s: the engine has no address pool left for another network (the operator widens "
                "dockerd's default-address-pools): %s",
                what, msg);
        else
            r = docker_error_from_response(&resp, what, err);
    }
    dms_buf_free(&resp.body);
    return r;
}

bool docker_network_missing(const docker_response *resp)
{
    char msg[DMS_ERROR_MSG_MAX];
    if (resp->status != 404)
        return false;
    docker_response_message(resp, msg, sizeof(msg));
    return strncmp(msg, "network ", 8) == 0 && strstr(msg, "not found");
}

int docker_remove_network(void *cookie, const char *name, dms_error *err)
{
    docker_executor *ex = cookie;
    char p[200];
    snprintf(p, sizeof(p), "/networks/%s", name);
    docker_response resp;
    int r = docker_call(&ex->client, "GET", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    if (resp.status != 200) {
        r = docker_error_from_response(&resp, "inspect network", err);
        dms_buf_free(&resp.body);
        return r;
    }
    json_t *j = docker_response_json(&resp, "inspect network", err);
    dms_buf_free(&resp.body);
    const char *owner = json_string_value(json_object_get(json_object_get(j, "Labels"), DMS_LABEL_EXECUTOR));
    bool ours = owner && strcmp(owner, ex->id) == 0;
    json_decref(j);
    if (!ours)
        return dms_error_set(err, DMS_E_NOT_OURS, "name", "network %s does not carry %s=%s; not removing it",
                             name, DMS_LABEL_EXECUTOR, ex->id);
    r = docker_call(&ex->client, "DELETE", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r == 0 && resp.status == 403) {
        char msg[DMS_ERROR_MSG_MAX];
        docker_response_message(&resp, msg, sizeof(msg));
        r = dms_error_set(err, DMS_E_CONFLICT, "name", "remove network %s: in use: %s", name, msg);
    } else if (r == 0 && resp.status != 204 && resp.status != 404) {
        char what[160];
        snprintf(what, sizeof(what), "remove network %s", name);
        r = docker_error_from_response(&resp, what, err);
    }
    dms_buf_free(&resp.body);
    return r;
}
