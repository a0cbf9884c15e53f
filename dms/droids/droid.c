/* droid.c - the droid model: new, free and copy, its stored forms (resources, volumes) and its public JSON
 * (see droid.h). Validation of each field: validate.c; create and PATCH bodies: parse.c. */
#include "droid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "droid_priv.h"

droid *droid_new(void)
{
    droid *d = calloc(1, sizeof(*d));
    if (d)
        d->state = DROID_PENDING;
    return d;
}

void droid_volumes_free(droid_volume *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].mount_path);
    }
    free(v);
}

void droid_free(droid *d)
{
    if (!d)
        return;
    free(d->user_id);
    free(d->name);
    free(d->repo);
    free(d->branch);
    free(d->commit);
    free(d->language);
    free(d->env_json);
    droid_volumes_free(d->volumes, d->n_volumes);
    free(d->reason);
    free(d->run_id);
    free(d->commit_sha);
    free(d->run_addr);
    free(d->snooze_json);
    free(d->compose_file);
    free(d->services_json);
    free(d);
}

static bool dup_into(char **dst, const char *src)
{
    *dst = NULL;
    return !src || (*dst = strdup(src)) != NULL;
}

droid *droid_copy(const droid *d)
{
    droid *c = malloc(sizeof(*c));
    if (!c)
        return NULL;
    *c = *d;
    c->volumes = NULL;
    c->n_volumes = 0;
    bool ok = dup_into(&c->user_id, d->user_id) & dup_into(&c->name, d->name) & dup_into(&c->repo, d->repo) &
              dup_into(&c->branch, d->branch) & dup_into(&c->commit, d->commit) &
              dup_into(&c->language, d->language) & dup_into(&c->env_json, d->env_json) &
              dup_into(&c->reason, d->reason) & dup_into(&c->run_id, d->run_id) &
              dup_into(&c->commit_sha, d->commit_sha) & dup_into(&c->run_addr, d->run_addr) &
              dup_into(&c->snooze_json, d->snooze_json) & dup_into(&c->compose_file, d->compose_file) &
              dup_into(&c->services_json, d->services_json);
    if (ok && d->n_volumes) {
        c->volumes = calloc(d->n_volumes, sizeof(*c->volumes));
        ok = c->volumes != NULL;
        for (size_t i = 0; ok && i < d->n_volumes; i++) {
            c->n_volumes = i + 1;
            ok = dup_into(&c->volumes[i].name, d->volumes[i].name) &&
                 dup_into(&c->volumes[i].mount_path, d->volumes[i].mount_path);
        }
    }
    if (!ok) {
        droid_free(c);
        return NULL;
    }
    return c;
}

/* ---- resources ---- */

static const char *const resource_keys[] = {"memory_mb", "cpu_millis", "pids", NULL};

static int *resource_slot(droid_resources *r, size_t i)
{
    return i == 0 ? &r->memory_mb : i == 1 ? &r->cpu_millis : &r->pids;
}

int droid_parse_resources(json_t *o, droid_resources *out, dms_error *err)
{
    droid_resources r = {0};
    char field[48];
    if (o && !json_is_null(o)) {
        if (!json_is_object(o))
            return dms_error_set(err, DMS_E_INVALID, "resources",
                                 "resources must be an object {memory_mb, cpu_millis, pids}");
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            size_t i = 0;
            while (resource_keys[i] && strcmp(resource_keys[i], k) != 0)
                i++;
            snprintf(field, sizeof(field), "resources.%.24s", k);
            if (!resource_keys[i])
                return dms_error_set(err, DMS_E_INVALID, field,
                                     "unknown key %s (known: memory_mb, cpu_millis, pids)", field);
            if (json_is_null(v))
                continue;
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX)
                return dms_error_set(err, DMS_E_INVALID, field,
                                     "%s must be a positive integer (or null: the default)", field);
            *resource_slot(&r, i) = (int)json_integer_value(v);
        }
    }
    *out = r;
    return 0;
}

char *droid_resources_to_json(const droid_resources *r)
{
    json_t *o = json_object();
    for (size_t i = 0; o && resource_keys[i]; i++)
        if (*resource_slot((droid_resources *)r, i) > 0)
            json_object_set_new(o, resource_keys[i], json_integer(*resource_slot((droid_resources *)r, i)));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

int droid_resources_from_json(const char *json, droid_resources *out, dms_error *err)
{
    json_error_t jerr;
    _cleanup_json_ json_t *o = json_loads(json && *json ? json : "{}", 0, &jerr);
    if (!o)
        return dms_error_set(err, DMS_E_INTERNAL, "resources", "stored resources are not JSON: %s",
                             jerr.text);
    return droid_parse_resources(o, out, err);
}

/* ---- volumes, env ---- */

char *droid_volumes_to_json(const droid *d)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < d->n_volumes; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:s}", "name", d->volumes[i].name, "mount_path", d->volumes[i].mount_path));
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

int droid_volumes_from_json(droid *d, const char *json, dms_error *err)
{
    json_error_t jerr;
    _cleanup_json_ json_t *a = json_loads(json ? json : "[]", 0, &jerr);
    if (!a)
        return dms_error_set(err, DMS_E_INTERNAL, "volumes", "stored volumes are not JSON: %s", jerr.text);
    return droid_parse_volumes(a, d, err);
}

int droid_volume_engine_name(const droid *d, size_t i, char *buf, size_t size)
{
    if (i >= d->n_volumes || dmsu_snprintf_ok(buf, size, "%s-%s", d->id, d->volumes[i].name) < 0)
        return -DMS_E_INVALID;
    return 0;
}

int droid_env_vector(const droid *d, char ***out, dms_error *err)
{
    json_error_t jerr;
    _cleanup_json_ json_t *env = json_loads(d->env_json ? d->env_json : "{}", 0, &jerr);
    if (!json_is_object(env))
        return dms_error_set(err, DMS_E_INTERNAL, "env", "stored env is not a JSON object");
    _cleanup_strv_ char **v = calloc(1, sizeof(char *));
    if (!v)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    const char *k;
    json_t *val;
    json_object_foreach(env, k, val)
    {
        _cleanup_free_ char *kv = dmsu_strdup_printf("%s=%s", k, json_string_value(val));
        if (!kv || dmsu_strv_push(&v, kv) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    if (!json_object_get(env, "PORT")) {
        _cleanup_free_ char *kv = dmsu_strdup_printf("PORT=%d", d->port);
        if (!kv || dmsu_strv_push(&v, kv) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    *out = steal_pointer(&v);
    return 0;
}

/* ---- JSON ---- */

/* A compose droid's services as users see them: name, state, restarts, exit code (the routed one's are the
 * droid's own); null for a droid of one container. */
static json_t *services_json(const droid *d)
{
    json_t *arr = d->services_json ? json_loads(d->services_json, 0, NULL) : NULL;
    if (!json_is_array(arr)) {
        json_decref(arr);
        return json_null();
    }
    json_t *out = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        /* "routed": the droid's own container (the routed service, or the primary of a droid without one) */
        bool own = json_is_true(json_object_get(e, "routed"));
        bool routed = own && !json_is_true(json_object_get(e, "unrouted"));
        json_t *code = json_object_get(e, "exit_code");
        json_t *s = json_pack("{s:O, s:b, s:s, s:I, s:O}", "name", json_object_get(e, "name"), "routed", routed,
                              "status", own ? droid_state_name(d->state)
                                               : json_string_value(json_object_get(e, "state")) ?: "pending",
                              "restarts",
                              own ? (json_int_t)d->crash_count : json_integer_value(json_object_get(e, "restarts")),
                              "exit_code", code ? code : json_null());
        if (s)
            json_array_append_new(out, s);
    }
    json_decref(arr);
    return out ? out : json_null();
}

/* A string member; one that is not UTF-8 (a reason can quote a tool's output) is shown with U+FFFD for each
 * bad byte, as the status route does, rather than failing the whole droid's JSON. */
static json_t *str_or_null(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    char *clean = dmsu_utf8_sanitize(s, strlen(s), NULL);
    j = clean ? json_string(clean) : NULL;
    free(clean);
    return j ? j : json_null();
}

json_t *droid_to_json(const droid *d)
{
    char created[32], updated[32];
    dmsd_format_time(d->created_ns, created, sizeof(created));
    dmsd_format_time(d->updated_ns, updated, sizeof(updated));
    json_t *env = json_loads(d->env_json ? d->env_json : "{}", 0, NULL);
    json_t *vols = json_array();
    for (size_t i = 0; vols && i < d->n_volumes; i++)
        json_array_append_new(vols, json_pack("{s:s, s:s}", "name", d->volumes[i].name, "mount_path",
                                              d->volumes[i].mount_path));
    json_t *url = json_null();
    if (d->host_port > 0 && d->run_id) {
        char u[64];
        snprintf(u, sizeof(u), "http://127.0.0.1:%d", d->host_port);
        url = json_string(u);
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:i, s:o, s:o, s:s, s:o, s:s, s:s, s:o, s:o, s:o, s:o}", "id", d->id,
        "name", d->name ? d->name : "", "repo", str_or_null(d->repo), "branch", str_or_null(d->branch),
        "commit", str_or_null(d->commit), "language", str_or_null(d->language), "port", d->port, "env",
        env ? env : json_object(), "volumes", vols ? vols : json_array(), "status",
        droid_state_name(d->state), "reason", str_or_null(d->reason), "created_at", created, "updated_at",
        updated, "release", d->want_release ? json_integer(d->want_release) : json_null(), "commit_sha",
        str_or_null(d->commit_sha), "url", url, "host_port",
        d->host_port > 0 ? json_integer(d->host_port) : json_null());
    json_t *snooze = d->snooze_json ? json_loads(d->snooze_json, 0, NULL) : NULL;
    if (o) {
        json_object_set_new(o, "snooze", snooze ? snooze : json_null());
        json_object_set_new(o, "compose_file", str_or_null(d->compose_file));
        json_object_set_new(o, "services", services_json(d));
        json_object_set_new(o, "build_timeout_s",
                            d->build_timeout_s > 0 ? json_integer(d->build_timeout_s) : json_null());
    } else {
        json_decref(snooze);
    }
    /* As asked (null: the operator's default); the view replaces it with what the container gets. */
    json_t *res = json_object();
    for (size_t i = 0; o && res && resource_keys[i]; i++) {
        int v = *resource_slot((droid_resources *)&d->resources, i);
        json_object_set_new(res, resource_keys[i], v > 0 ? json_integer(v) : json_null());
    }
    if (o && res)
        json_object_set_new(o, "resources", res);
    else
        json_decref(res);
    return o;
}
