/* request_json.c - the execution request's JSON form (dms/request.h): strict parsing (unknown keys and values
 * out of range are refused with the field that holds them) and its serialisation. */
#include <dms/request.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "request_limits.h"
#include "util.h"

/* ---- JSON ---- */

/* Refuses keys outside `allowed` (NULL-terminated), naming the first unknown one. */
static int check_keys(json_t *obj, const char *prefix, const char *const *allowed, dms_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = true;
        if (!ok) {
            char field[DMS_ERROR_FIELD_MAX];
            snprintf(field, sizeof(field), "%s%s", prefix, key);
            return dms_error_set(err, DMS_E_INVALID, field, "unknown field \"%s\"", field);
        }
    }
    return 0;
}

static int get_string(json_t *obj, const char *key, const char *field, const char **out, dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be a string", field);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must not contain NUL bytes", field);
    *out = strdup(json_string_value(v));
    return *out ? 0 : dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
}

static int get_int(json_t *obj, const char *key, const char *field, int64_t lo, int64_t hi, int64_t *out,
                   dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be an integer", field);
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be between %lld and %lld", field,
                             (long long)lo, (long long)hi);
    *out = i;
    return 0;
}

static int get_bool(json_t *obj, const char *key, const char *field, bool *out, dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be true or false", field);
    *out = json_is_true(v);
    return 0;
}

static int get_strv(json_t *obj, const char *key, const char *field, char *const **out, dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be an array of strings", field);
    if (json_array_size(v) > ARGV_MAX_ITEMS)
        return dms_error_set(err, DMS_E_INVALID, field, "%s has too many items", field);
    char **a = calloc(json_array_size(v) + 1, sizeof(char *));
    if (!a)
        return dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item)) {
            dmsu_strv_free(a);
            return dms_error_set(err, DMS_E_INVALID, field, "%s[%zu] must be a string without NUL bytes",
                                 field, i);
        }
        if (!(a[i] = strdup(json_string_value(item)))) {
            dmsu_strv_free(a);
            return dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
        }
    }
    *out = a;
    return 0;
}

/* {"K": "V"} or ["K=V"] into "K=V" items (labels and env accept both). */
static int get_kv(json_t *obj, const char *key, const char *field, char *const **out, dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_array(v))
        return get_strv(obj, key, field, out, err);
    if (!json_is_object(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be an object of strings or an array of K=V",
                             field);
    char **a = calloc(json_object_size(v) + 1, sizeof(char *));
    if (!a)
        return dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
    size_t n = 0;
    const char *k;
    json_t *val;
    json_object_foreach(v, k, val)
    {
        if (!json_is_string(val) || strlen(json_string_value(val)) != json_string_length(val)) {
            dmsu_strv_free(a);
            return dms_error_set(err, DMS_E_INVALID, field, "%s.%s must be a string", field, k);
        }
        if (strchr(k, '=')) {
            dmsu_strv_free(a);
            return dms_error_set(err, DMS_E_INVALID, field, "%s: key \"%s\" must not contain '='", field, k);
        }
        if (!(a[n++] = dmsu_strdup_printf("%s=%s", k, json_string_value(val)))) {
            dmsu_strv_free(a);
            return dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
        }
    }
    *out = a;
    return 0;
}

static int parse_engine(json_t *e, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"image", "entrypoint", "cmd", "env", "working_dir", "user", NULL};
    int r;
    if (!json_is_object(e))
        return dms_error_set(err, DMS_E_INVALID, "engine", "engine must be an object");
    if ((r = check_keys(e, "engine.", keys, err)) < 0 ||
        (r = get_string(e, "image", "engine.image", &req->engine.image, err)) < 0 ||
        (r = get_strv(e, "entrypoint", "engine.entrypoint", &req->engine.entrypoint, err)) < 0 ||
        (r = get_strv(e, "cmd", "engine.cmd", &req->engine.cmd, err)) < 0 ||
        (r = get_kv(e, "env", "engine.env", &req->engine.env, err)) < 0 ||
        (r = get_string(e, "working_dir", "engine.working_dir", &req->engine.working_dir, err)) < 0 ||
        (r = get_string(e, "user", "engine.user", &req->engine.user, err)) < 0)
        return r;
    return 0;
}

static int parse_resources(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"cpu_millis", "memory_bytes", "disk_bytes",
                                       "pids_limit", "gpus",         NULL};
    int r;
    int64_t gpus = 0;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "resources", "resources must be an object");
    if ((r = check_keys(o, "resources.", keys, err)) < 0 ||
        (r = get_int(o, "cpu_millis", "resources.cpu_millis", 0, CPU_MILLIS_MAX, &req->resources.cpu_millis,
                     err)) < 0 ||
        (r = get_int(o, "memory_bytes", "resources.memory_bytes", 0, INT64_MAX, &req->resources.memory_bytes,
                     err)) < 0 ||
        (r = get_int(o, "disk_bytes", "resources.disk_bytes", 0, INT64_MAX, &req->resources.disk_bytes,
                     err)) < 0 ||
        (r = get_int(o, "pids_limit", "resources.pids_limit", 0, INT64_MAX, &req->resources.pids_limit,
                     err)) < 0 ||
        (r = get_int(o, "gpus", "resources.gpus", -1, 1024, &gpus, err)) < 0)
        return r;
    req->resources.gpus = (int32_t)gpus;
    return 0;
}

static int parse_mounts(json_t *a, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"type", "source", "target", "read_only", "size_bytes", NULL};
    char field[DMS_ERROR_FIELD_MAX], prefix[DMS_ERROR_FIELD_MAX];
    int r;
    if (!json_is_array(a))
        return dms_error_set(err, DMS_E_INVALID, "mounts", "mounts must be an array");
    if (json_array_size(a) > MOUNTS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "mounts", "at most %d mounts", MOUNTS_MAX);
    if (json_array_size(a) == 0)
        return 0;
    dms_mount *m = calloc(json_array_size(a), sizeof(*m));
    if (!m)
        return dms_error_set(err, DMS_E_NOMEM, "mounts", "out of memory");
    req->mounts = m;
    size_t i;
    json_t *item;
    json_array_foreach(a, i, item)
    {
        req->n_mounts = i + 1;
        snprintf(prefix, sizeof(prefix), "mounts[%zu].", i);
        if (!json_is_object(item))
            return dms_error_set(err, DMS_E_INVALID, prefix, "mounts[%zu] must be an object", i);
        if ((r = check_keys(item, prefix, keys, err)) < 0)
            return r;
        const char *type = NULL;
        snprintf(field, sizeof(field), "mounts[%zu].type", i);
        if ((r = get_string(item, "type", field, &type, err)) < 0)
            return r;
        if (type && strcmp(type, "bind") == 0)
            m[i].type = DMS_MOUNT_BIND;
        else if (type && strcmp(type, "volume") == 0)
            m[i].type = DMS_MOUNT_VOLUME;
        else if (type && strcmp(type, "tmpfs") == 0)
            m[i].type = DMS_MOUNT_TMPFS;
        free((char *)type);
        if (!m[i].type)
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be bind, volume or tmpfs", field);
        snprintf(field, sizeof(field), "mounts[%zu].source", i);
        if ((r = get_string(item, "source", field, &m[i].source, err)) < 0)
            return r;
        snprintf(field, sizeof(field), "mounts[%zu].target", i);
        if ((r = get_string(item, "target", field, &m[i].target, err)) < 0)
            return r;
        snprintf(field, sizeof(field), "mounts[%zu].read_only", i);
        if ((r = get_bool(item, "read_only", field, &m[i].read_only, err)) < 0)
            return r;
        snprintf(field, sizeof(field), "mounts[%zu].size_bytes", i);
        if ((r = get_int(item, "size_bytes", field, 0, INT64_MAX, &m[i].size_bytes, err)) < 0)
            return r;
    }
    return 0;
}

static int parse_network(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"mode", "name", "aliases", "ports", NULL};
    static const char *const port_keys[] = {"container", "host", "protocol", "host_ip", NULL};
    char field[DMS_ERROR_FIELD_MAX], prefix[DMS_ERROR_FIELD_MAX];
    int r;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "network", "network must be an object");
    if ((r = check_keys(o, "network.", keys, err)) < 0)
        return r;
    const char *mode = NULL;
    if ((r = get_string(o, "mode", "network.mode", &mode, err)) < 0 ||
        (r = get_string(o, "name", "network.name", &req->network_name, err)) < 0 ||
        (r = get_strv(o, "aliases", "network.aliases", &req->network_aliases, err)) < 0) {
        free((char *)mode);
        return r;
    }
    if (!mode || strcmp(mode, "default") == 0 || strcmp(mode, "bridge") == 0)
        req->network_mode = req->network_name && !mode ? DMS_NET_NAMED : DMS_NET_DEFAULT;
    else if (strcmp(mode, "none") == 0)
        req->network_mode = DMS_NET_NONE;
    else if (strcmp(mode, "host") == 0)
        req->network_mode = DMS_NET_HOST;
    else if (strcmp(mode, "named") == 0)
        req->network_mode = DMS_NET_NAMED;
    else {
        free((char *)mode);
        return dms_error_set(err, DMS_E_INVALID, "network.mode",
                             "network.mode must be default, none, host or named");
    }
    free((char *)mode);
    json_t *ports = json_object_get(o, "ports");
    if (!ports || json_is_null(ports))
        return 0;
    if (!json_is_array(ports))
        return dms_error_set(err, DMS_E_INVALID, "network.ports", "network.ports must be an array");
    if (json_array_size(ports) > PORTS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "network.ports", "at most %d ports", PORTS_MAX);
    if (json_array_size(ports) == 0)
        return 0;
    dms_port *p = calloc(json_array_size(ports), sizeof(*p));
    if (!p)
        return dms_error_set(err, DMS_E_NOMEM, "network.ports", "out of memory");
    req->ports = p;
    size_t i;
    json_t *item;
    json_array_foreach(ports, i, item)
    {
        req->n_ports = i + 1;
        snprintf(prefix, sizeof(prefix), "network.ports[%zu].", i);
        if (!json_is_object(item))
            return dms_error_set(err, DMS_E_INVALID, prefix, "network.ports[%zu] must be an object", i);
        if ((r = check_keys(item, prefix, port_keys, err)) < 0)
            return r;
        int64_t cp = 0, hp = 0;
        snprintf(field, sizeof(field), "network.ports[%zu].container", i);
        if ((r = get_int(item, "container", field, 1, 65535, &cp, err)) < 0)
            return r;
        if (cp == 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s is required (1-65535)", field);
        snprintf(field, sizeof(field), "network.ports[%zu].host", i);
        if ((r = get_int(item, "host", field, 0, 65535, &hp, err)) < 0)
            return r;
        p[i].container_port = (uint16_t)cp;
        p[i].host_port = (uint16_t)hp;
        snprintf(field, sizeof(field), "network.ports[%zu].protocol", i);
        if ((r = get_string(item, "protocol", field, &p[i].protocol, err)) < 0)
            return r;
        snprintf(field, sizeof(field), "network.ports[%zu].host_ip", i);
        if ((r = get_string(item, "host_ip", field, &p[i].host_ip, err)) < 0)
            return r;
    }
    return 0;
}

static int parse_limits(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"result_output_bytes", "log_file_bytes", NULL};
    int r;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "limits", "limits must be an object");
    if ((r = check_keys(o, "limits.", keys, err)) < 0 ||
        (r = get_int(o, "result_output_bytes", "limits.result_output_bytes", 0, RESULT_OUTPUT_MAX_BYTES,
                     &req->limits.result_output_bytes, err)) < 0 ||
        (r = get_int(o, "log_file_bytes", "limits.log_file_bytes", 0, INT64_MAX, &req->limits.log_file_bytes,
                     err)) < 0)
        return r;
    return 0;
}

static int parse_security(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"no_new_privileges", "cap_drop", "cap_add", NULL};
    dms_security *s = &req->security;
    int r;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "security", "security must be an object");
    if ((r = check_keys(o, "security.", keys, err)) < 0 ||
        (r = get_bool(o, "no_new_privileges", "security.no_new_privileges", &s->no_new_privileges, err)) <
            0 ||
        (r = get_strv(o, "cap_drop", "security.cap_drop", &s->cap_drop, err)) < 0 ||
        (r = get_strv(o, "cap_add", "security.cap_add", &s->cap_add, err)) < 0)
        return r;
    return 0;
}

/* "healthcheck": {"test": [...], "shell": false, "disable": false, "interval_ms": 0, "timeout_ms": 0,
 * "start_period_ms": 0, "retries": 0}; null is the same as leaving it out (the image's own check). */
static int parse_healthcheck(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"test",       "shell",           "disable", "interval_ms",
                                       "timeout_ms", "start_period_ms", "retries", NULL};
    int r;
    if (json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "healthcheck", "healthcheck must be an object");
    if ((r = check_keys(o, "healthcheck.", keys, err)) < 0)
        return r;
    dms_healthcheck *h = calloc(1, sizeof(*h));
    if (!h)
        return dms_error_set(err, DMS_E_NOMEM, "healthcheck", "out of memory");
    req->healthcheck = h; /* owned by req from here: freed with it on any error below */
    int64_t retries = 0;
    if ((r = get_strv(o, "test", "healthcheck.test", &h->test, err)) < 0 ||
        (r = get_bool(o, "shell", "healthcheck.shell", &h->shell, err)) < 0 ||
        (r = get_bool(o, "disable", "healthcheck.disable", &h->disable, err)) < 0 ||
        (r = get_int(o, "interval_ms", "healthcheck.interval_ms", 0, HEALTH_DURATION_MAX_MS, &h->interval_ms,
                     err)) < 0 ||
        (r = get_int(o, "timeout_ms", "healthcheck.timeout_ms", 0, HEALTH_DURATION_MAX_MS, &h->timeout_ms,
                     err)) < 0 ||
        (r = get_int(o, "start_period_ms", "healthcheck.start_period_ms", 0, HEALTH_DURATION_MAX_MS,
                     &h->start_period_ms, err)) < 0 ||
        (r = get_int(o, "retries", "healthcheck.retries", 0, HEALTH_RETRIES_MAX, &retries, err)) < 0)
        return r;
    h->retries = (int)retries;
    return 0;
}

static int parse_request(json_t *root, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"job_id",     "execution_id",  "engine",         "resources",
                                       "mounts",     "network",       "labels",         "limits",
                                       "timeout_ms", "stop_grace_ms", "keep_container", "role",
                                       "init",       "security",      "healthcheck",    NULL};
    int r;
    json_t *v;
    if (!json_is_object(root))
        return dms_error_set(err, DMS_E_INVALID, NULL, "a request must be a JSON object");
    if ((r = check_keys(root, "", keys, err)) < 0 ||
        (r = get_string(root, "job_id", "job_id", &req->job_id, err)) < 0 ||
        (r = get_string(root, "execution_id", "execution_id", &req->execution_id, err)) < 0)
        return r;
    if ((v = json_object_get(root, "engine")) && (r = parse_engine(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "resources")) && (r = parse_resources(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "mounts")) && (r = parse_mounts(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "network")) && (r = parse_network(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "limits")) && (r = parse_limits(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "security")) && (r = parse_security(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "healthcheck")) && (r = parse_healthcheck(v, req, err)) < 0)
        return r;
    if ((r = get_kv(root, "labels", "labels", &req->labels, err)) < 0 ||
        (r = get_int(root, "timeout_ms", "timeout_ms", 0, INT64_MAX, &req->timeout_ms, err)) < 0 ||
        (r = get_int(root, "stop_grace_ms", "stop_grace_ms", 0, STOP_GRACE_MAX_MS, &req->stop_grace_ms,
                     err)) < 0 ||
        (r = get_bool(root, "keep_container", "keep_container", &req->keep_container, err)) < 0 ||
        (r = get_bool(root, "init", "init", &req->init, err)) < 0 ||
        (r = get_string(root, "role", "role", &req->role, err)) < 0)
        return r;
    return 0;
}

int dms_exec_request_from_json(const char *json, size_t len, dms_exec_request **out, dms_error *err)
{
    json_error_t jerr;
    _cleanup_json_ json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dms_error_set(err, DMS_E_INVALID, NULL, "request is not valid JSON: %s (line %d, column %d)",
                             jerr.text, jerr.line, jerr.column);
    dms_exec_request *req = calloc(1, sizeof(*req));
    if (!req)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    int r = parse_request(root, req, err);
    if (r == 0)
        r = dms_exec_request_validate(req, err);
    if (r < 0) {
        dms_exec_request_free(req);
        return r;
    }
    *out = req;
    return 0;
}

static json_t *strv_json(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; a && v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *healthcheck_json(const dms_healthcheck *h)
{
    json_t *o = json_pack("{s:b,s:b,s:I,s:I,s:I,s:i}", "shell", h->shell, "disable", h->disable,
                          "interval_ms", (json_int_t)h->interval_ms, "timeout_ms", (json_int_t)h->timeout_ms,
                          "start_period_ms", (json_int_t)h->start_period_ms, "retries", h->retries);
    if (o && h->test)
        json_object_set_new(o, "test", strv_json(h->test));
    return o;
}

char *dms_exec_request_to_json(const dms_exec_request *req)
{
    static const char *const mount_types[] = {"", "bind", "volume", "tmpfs"};
    static const char *const net_modes[] = {"default", "none", "host", "named"};
    _cleanup_json_ json_t *root = json_object();
    if (!root)
        return NULL;
    if (req->job_id)
        json_object_set_new(root, "job_id", json_string(req->job_id));
    if (req->execution_id)
        json_object_set_new(root, "execution_id", json_string(req->execution_id));
    json_t *e = json_object();
    json_object_set_new(root, "engine", e);
    if (req->engine.image)
        json_object_set_new(e, "image", json_string(req->engine.image));
    if (req->engine.entrypoint)
        json_object_set_new(e, "entrypoint", strv_json(req->engine.entrypoint));
    if (req->engine.cmd)
        json_object_set_new(e, "cmd", strv_json(req->engine.cmd));
    if (req->engine.env)
        json_object_set_new(e, "env", strv_json(req->engine.env));
    if (req->engine.working_dir)
        json_object_set_new(e, "working_dir", json_string(req->engine.working_dir));
    if (req->engine.user)
        json_object_set_new(e, "user", json_string(req->engine.user));
    json_object_set_new(root, "resources",
                        json_pack("{s:I,s:I,s:I,s:I,s:i}", "cpu_millis",
                                  (json_int_t)req->resources.cpu_millis, "memory_bytes",
                                  (json_int_t)req->resources.memory_bytes, "disk_bytes",
                                  (json_int_t)req->resources.disk_bytes, "pids_limit",
                                  (json_int_t)req->resources.pids_limit, "gpus", (int)req->resources.gpus));
    json_t *mounts = json_array();
    for (size_t i = 0; i < req->n_mounts; i++) {
        const dms_mount *m = &req->mounts[i];
        json_t *mo = json_pack("{s:s,s:s?,s:s?,s:b,s:I}", "type",
                               (m->type >= 1 && m->type <= 3) ? mount_types[m->type] : "", "source",
                               m->source, "target", m->target, "read_only", m->read_only, "size_bytes",
                               (json_int_t)m->size_bytes);
        json_array_append_new(mounts, mo);
    }
    json_object_set_new(root, "mounts", mounts);
    json_t *net = json_object();
    json_object_set_new(
        net, "mode",
        json_string(req->network_mode <= DMS_NET_NAMED ? net_modes[req->network_mode] : "default"));
    if (req->network_name)
        json_object_set_new(net, "name", json_string(req->network_name));
    if (req->network_aliases)
        json_object_set_new(net, "aliases", strv_json(req->network_aliases));
    json_t *ports = json_array();
    for (size_t i = 0; i < req->n_ports; i++) {
        const dms_port *p = &req->ports[i];
        json_array_append_new(ports, json_pack("{s:i,s:i,s:s?,s:s?}", "container", p->container_port, "host",
                                               p->host_port, "protocol", p->protocol, "host_ip", p->host_ip));
    }
    json_object_set_new(net, "ports", ports);
    json_object_set_new(root, "network", net);
    if (req->labels)
        json_object_set_new(root, "labels", strv_json(req->labels));
    json_object_set_new(root, "limits",
                        json_pack("{s:I,s:I}", "result_output_bytes",
                                  (json_int_t)req->limits.result_output_bytes, "log_file_bytes",
                                  (json_int_t)req->limits.log_file_bytes));
    json_object_set_new(root, "timeout_ms", json_integer(req->timeout_ms));
    json_object_set_new(root, "stop_grace_ms", json_integer(req->stop_grace_ms));
    json_object_set_new(root, "keep_container", json_boolean(req->keep_container));
    json_object_set_new(root, "init", json_boolean(req->init));
    if (req->role)
        json_object_set_new(root, "role", json_string(req->role));
    json_t *sec = json_pack("{s:b}", "no_new_privileges", req->security.no_new_privileges);
    if (sec && req->security.cap_drop)
        json_object_set_new(sec, "cap_drop", strv_json(req->security.cap_drop));
    if (sec && req->security.cap_add)
        json_object_set_new(sec, "cap_add", strv_json(req->security.cap_add));
    json_object_set_new(root, "security", sec);
    if (req->healthcheck)
        json_object_set_new(root, "healthcheck", healthcheck_json(req->healthcheck));
    return json_dumps(root, JSON_COMPACT);
}
