/* network.c - named networks: made on first use (labelled as ours), removed on request when nothing uses
 * them.
 *
 * Engine behaviour this relies on (20.10.24, API 1.41, measured):
 * - POST /networks/create with CheckDuplicate answers 409 when the name exists: someone made it meanwhile.
 * - DELETE /networks/{name} answers 403 while a running container is attached ("has active endpoints"), but
 * 204 when a container is only created on it; that container's start then fails with 404 "network X not
 * found".
 * - CheckDuplicate is not atomic: two creates of one name at once made two networks (seen with two job steps
 * of one user starting together), and every start on that name then failed with 400 "network X is ambiguous
 * (2 matches found on name)". The name is what a container is bound to until it starts (a create with a
 * missing network answers 201), so removing the duplicates before starting again is enough.
 * - A create whose bridge finds no free subnet fails with "could not find an available, non-overlapping IPv4
 *   address pool among the defaults to assign to the network": dockerd's default-address-pools hold about 30
 *   bridge networks. */
#include "docker.h"

#include <stdio.h>
#include <string.h>

#include "types.h"
#include "util.h"

#define POOL_EXHAUSTED_MARK "address pool"
#define AMBIGUOUS_MARK      "is ambiguous"

int docker_ensure_network(docker_executor *ex, const char *name, dms_error *err)
{
    char p[200];
    docker_response resp;
    snprintf(p, sizeof(p), "/networks/%s", name);
    int r = docker_call(&ex->client, "GET", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    long st = resp.status;
    dmsu_buf_free(&resp.body);
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
    dmsu_buf_free(&resp.body);
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

bool docker_network_ambiguous(const docker_response *resp)
{
    char msg[DMS_ERROR_MSG_MAX];
    if (resp->status != 400 && resp->status != 409)
        return false;
    docker_response_message(resp, msg, sizeof(msg));
    return strncmp(msg, "network ", 8) == 0 && strstr(msg, AMBIGUOUS_MARK);
}

static int by_id(const void *a, const void *b)
{
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "Id")),
                  json_string_value(json_object_get(*(json_t *const *)b, "Id")));
}

/* Every one of our networks named exactly name (the engine's name filter matches substrings), by Id. */
static int networks_named(docker_executor *ex, const char *name, json_t **out, dms_error *err)
{
    char filter[200], path[400];
    snprintf(filter, sizeof(filter), "{\"name\":[\"%s\"],\"label\":[\"%s=%s\"]}", name, DMS_LABEL_EXECUTOR,
             ex->id);
    _cleanup_free_ char *ef = docker_escape(filter);
    snprintf(path, sizeof(path), "/networks?filters=%s", ef ? ef : "");
    docker_response resp;
    int r = docker_call(&ex->client, "GET", path, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r == 0 && resp.status != 200)
        r = docker_error_from_response(&resp, "list networks", err);
    json_t *all = r == 0 ? docker_response_json(&resp, "list networks", err) : NULL;
    dmsu_buf_free(&resp.body);
    if (r < 0 || !all)
        return r < 0 ? r : -DMS_E_PROTOCOL;
    json_t *mine = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(all, i, n)
    {
        const char *nm = json_string_value(json_object_get(n, "Name"));
        if (nm && strcmp(nm, name) == 0 && json_is_string(json_object_get(n, "Id")))
            json_array_append(mine, n);
    }
    json_decref(all);
    /* One order for every process: whoever removes duplicates keeps the same last one. */
    size_t cnt = json_array_size(mine);
    json_t **v = calloc(cnt + 1, sizeof(*v)); // NOLINT(bugprone-sizeof-expression): an array of pointers
    for (i = 0; v && i < cnt; i++)
        v[i] = json_incref(json_array_get(mine, i));
    if (v)
        qsort(v, cnt, sizeof(*v), by_id); // NOLINT(bugprone-sizeof-expression): an array of pointers
    json_array_clear(mine);
    for (i = 0; v && i < cnt; i++)
        json_array_append_new(mine, v[i]);
    free(v);
    *out = mine;
    return 0;
}

int docker_network_dedupe(docker_executor *ex, const char *name, dms_error *err)
{
    json_t *nets = NULL;
    int r = networks_named(ex, name, &nets, err);
    if (r < 0)
        return r;
    /* All but the one with the greatest Id go, unless a container uses one (403): it is kept instead. Every
     * process walks the same order and keeps its last, so however many remove at once, one network stays. */
    size_t left = json_array_size(nets);
    for (size_t i = 0; i < json_array_size(nets) && left > 1; i++) {
        char p[200];
        snprintf(p, sizeof(p), "/networks/%s",
                 json_string_value(json_object_get(json_array_get(nets, i), "Id")));
        docker_response resp;
        if (docker_call(&ex->client, "DELETE", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, NULL) == 0 &&
            (resp.status == 204 || resp.status == 404))
            left--;
        dmsu_buf_free(&resp.body);
    }
    dms_logf(ex->host, DMS_LOG_INFO, "op=network network=%s duplicates=%zu left=%zu", name,
             json_array_size(nets), left);
    json_decref(nets);
    return 0;
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
        dmsu_buf_free(&resp.body);
        return r;
    }
    json_t *j = docker_response_json(&resp, "inspect network", err);
    dmsu_buf_free(&resp.body);
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
    dmsu_buf_free(&resp.body);
    return r;
}
