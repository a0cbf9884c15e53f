/* image.c - images: presence, pull, inspection and removal; volumes' removal; the NDJSON reader that pull and
 * build share.
 *
 * A pull answers 200 and then reports failure in-band as NDJSON (docs/engine-notes.md §2): every line is
 * parsed and an `error` key is a failure. Removal checks the io.dms.executor label first: an executor removes
 * only what is its own. */
#include "docker.h"

#include <stdio.h>
#include <string.h>

/* ---- NDJSON lines ---- */

int docker_ndjson_feed(void *ud, const char *data, size_t len)
{
    ndjson *n = ud;
    while (len) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (dmsu_buf_append(&n->line, data, take) < 0)
            return -DMS_E_NOMEM;
        if (!nl)
            break;
        if (n->line.len && !n->line.overflow) {
            json_t *j = json_loadb(n->line.data, n->line.len, 0, NULL);
            int r = j ? n->on_line(n->ud, j) : 0;
            json_decref(j);
            if (r < 0)
                return r;
        }
        n->dropped += n->line.overflow;
        dmsu_buf_reset(&n->line);
        data += take + 1;
        len -= take + 1;
    }
    return 0;
}

/* ---- presence and pull ---- */

int docker_image_present(docker_executor *ex, const char *ref, dms_error *err)
{
    char p[400];
    snprintf(p, sizeof(p), "/images/%s/json", ref);
    docker_response resp;
    int r = docker_call(&ex->client, "GET", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    long st = resp.status;
    if (st != 200 && st != 404)
        r = docker_error_from_response(&resp, "inspect image", err);
    dmsu_buf_free(&resp.body);
    return r < 0 ? r : st == 200;
}

typedef struct pull_ctx {
    docker_executor *ex;
    char error[DMS_ERROR_MSG_MAX];
} pull_ctx;

static int pull_line(void *ud, json_t *j)
{
    pull_ctx *pc = ud;
    const char *e = json_string_value(json_object_get(j, "error"));
    if (e && !pc->error[0])
        snprintf(pc->error, sizeof(pc->error), "%s", e);
    const char *status = json_string_value(json_object_get(j, "status"));
    if (status)
        dms_logf(pc->ex->host, DMS_LOG_DEBUG, "op=pull status=\"%s\"", status);
    return 0;
}

int docker_pull(docker_executor *ex, const char *ref, const docker_abort *abort, dms_error *err)
{
    size_t n = strlen(ref) + 1;
    _cleanup_free_ char *name = malloc(n), *tag = malloc(n);
    if (!name || !tag)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    docker_split_image_ref(ref, name, tag);
    _cleanup_free_ char *en = docker_escape(name), *et = docker_escape(tag);
    char p[1024];
    snprintf(p, sizeof(p), "/images/create?fromImage=%s%s%s", en ? en : "", tag[0] ? "&tag=" : "",
             tag[0] && et ? et : "");
    dms_logf(ex->host, DMS_LOG_INFO, "op=pull image=%s msg=\"not present locally; pulling\"", ref);
    pull_ctx pc = {.ex = ex};
    ndjson nj = {.line = {.max = NDJSON_LINE_MAX}, .on_line = pull_line, .ud = &pc};
    docker_response resp;
    int r = docker_call_stream(&ex->client, "POST", p, NULL, NULL, NULL, 0, abort, docker_ndjson_feed, &nj,
                               &resp, err);
    dmsu_buf_free(&nj.line);
    if (r == -DMS_E_CANCELLED) {
        dmsu_buf_free(&resp.body);
        return r;
    }
    if (r == 0 && resp.status != 200) {
        char msg[DMS_ERROR_MSG_MAX];
        docker_response_message(&resp, msg, sizeof(msg));
        snprintf(pc.error, sizeof(pc.error), "%s", msg[0] ? msg : "no message");
    }
    dmsu_buf_free(&resp.body);
    if (r < 0) {
        char why[DMS_ERROR_MSG_MAX];
        snprintf(why, sizeof(why), "%s", err ? err->message : "");
        return dms_error_set(err, r == -DMS_E_UNAVAILABLE ? DMS_E_UNAVAILABLE : DMS_E_IMAGE, "engine.image",
                             "image %s is not present locally and the pull failed: %s", ref, why);
    }
    if (pc.error[0]) {
        int rr = dms_error_set(err, DMS_E_IMAGE, "engine.image",
                               "image %s is not present locally and the pull failed: %s", ref, pc.error);
        /* A registry that cannot be reached may come back; a name it does not know will not. */
        if (err)
            err->retryable = strstr(pc.error, "no such host") || strstr(pc.error, "timeout") ||
                             strstr(pc.error, "connection refused") || strstr(pc.error, "dial tcp");
        return rr;
    }
    return 0;
}

/* ---- inspection and removal ---- */

int docker_image_info(void *cookie, const char *image, dms_image_info *out, dms_error *err)
{
    docker_executor *ex = cookie;
    char p[400];
    snprintf(p, sizeof(p), "/images/%s/json", image);
    docker_response resp;
    int r = docker_call(&ex->client, "GET", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    if (resp.status == 404) {
        dmsu_buf_free(&resp.body);
        return 0;
    }
    if (resp.status != 200) {
        r = docker_error_from_response(&resp, "inspect image", err);
        dmsu_buf_free(&resp.body);
        return r;
    }
    json_t *j = docker_response_json(&resp, "inspect image", err);
    dmsu_buf_free(&resp.body);
    if (!j)
        return -DMS_E_PROTOCOL;
    const char *owner = json_string_value(
        json_object_get(json_object_get(json_object_get(j, "Config"), "Labels"), DMS_LABEL_EXECUTOR));
    out->present = true;
    out->ours = owner && strcmp(owner, ex->id) == 0;
    snprintf(out->id, sizeof(out->id), "%s", json_string_value(json_object_get(j, "Id")));
    out->size_bytes = json_integer_value(json_object_get(j, "Size"));
    json_decref(j);
    return 0;
}

int docker_remove_image(void *cookie, const char *image, dms_error *err)
{
    docker_executor *ex = cookie;
    dms_image_info info = {0};
    int r = docker_image_info(cookie, image, &info, err);
    if (r < 0)
        return r;
    if (!info.present)
        return dms_error_set(err, DMS_E_NOT_FOUND, "image", "image %s not found", image);
    if (!info.ours)
        return dms_error_set(err, DMS_E_NOT_OURS, "image", "image %s does not carry %s=%s; not removing it",
                             image, DMS_LABEL_EXECUTOR, ex->id);
    char p[400];
    snprintf(p, sizeof(p), "/images/%s", image);
    docker_response resp;
    r = docker_call(&ex->client, "DELETE", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r == 0 && resp.status != 200 && resp.status != 404)
        r = docker_error_from_response(&resp, "remove image", err);
    dmsu_buf_free(&resp.body);
    return r;
}

int docker_remove_volume(void *cookie, const char *name, dms_error *err)
{
    docker_executor *ex = cookie;
    char p[200];
    snprintf(p, sizeof(p), "/volumes/%s", name);
    docker_response resp;
    int r = docker_call(&ex->client, "GET", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    if (resp.status != 200) {
        r = docker_error_from_response(&resp, "inspect volume", err);
        dmsu_buf_free(&resp.body);
        return r;
    }
    json_t *j = docker_response_json(&resp, "inspect volume", err);
    dmsu_buf_free(&resp.body);
    const char *owner = json_string_value(json_object_get(json_object_get(j, "Labels"), DMS_LABEL_EXECUTOR));
    bool ours = owner && strcmp(owner, ex->id) == 0;
    json_decref(j);
    if (!ours)
        return dms_error_set(err, DMS_E_NOT_OURS, "name", "volume %s does not carry %s=%s; not removing it",
                             name, DMS_LABEL_EXECUTOR, ex->id);
    r = docker_call(&ex->client, "DELETE", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r == 0 && resp.status != 204 && resp.status != 404) {
        char what[160];
        snprintf(what, sizeof(what), "remove volume %s", name);
        r = docker_error_from_response(&resp, what, err); /* 409: in use */
    }
    dmsu_buf_free(&resp.body);
    return r;
}
