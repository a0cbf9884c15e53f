/* droid.c - the droid model: validation and JSON (see droid.h). */
#include "droid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"

droid *droid_new(void)
{
    droid *d = calloc(1, sizeof(*d));
    if (d)
        d->state = DROID_PENDING;
    return d;
}

static void volumes_free(droid_volume *v, size_t n)
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
    volumes_free(d->volumes, d->n_volumes);
    free(d->reason);
    free(d->run_id);
    free(d->commit_sha);
    free(d->run_addr);
    free(d->snooze_json);
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
              dup_into(&c->snooze_json, d->snooze_json);
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

/* ---- validation ---- */

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

int droid_validate_name(const char *name, dms_error *err)
{
    if (!name || !*name)
        return dms_error_set(err, DMS_E_INVALID, "name", "name is required");
    size_t n = strlen(name);
    if (n > DROID_NAME_MAX)
        return dms_error_set(err, DMS_E_INVALID, "name", "name is %zu characters long; at most %d", n,
                             DROID_NAME_MAX);
    if (!dmsd_is_slug(name))
        return dms_error_set(err, DMS_E_INVALID, "name", "name may hold only a-z, 0-9 and '-'");
    if (name[0] == '-' || name[n - 1] == '-')
        return dms_error_set(err, DMS_E_INVALID, "name", "name must not begin or end with '-'");
    return 0;
}

int droid_validate_repo(const char *repo, dms_error *err)
{
    if (!repo || !*repo)
        return dms_error_set(err, DMS_E_INVALID, "repo", "repo is required");
    if (strlen(repo) > DROID_REPO_MAX)
        return dms_error_set(err, DMS_E_INVALID, "repo", "repo is longer than %d characters", DROID_REPO_MAX);
    if (has_control(repo) || strchr(repo, ' '))
        return dms_error_set(err, DMS_E_INVALID, "repo",
                             "repo must not contain spaces or control characters");
    static const char *const schemes[] = {"https://", "http://", "ssh://", "git://", "file://"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(schemes); i++)
        if (strncmp(repo, schemes[i], strlen(schemes[i])) == 0 && repo[strlen(schemes[i])])
            return 0;
    if (repo[0] == '/') /* a local (bare) repository path */
        return 0;
    /* scp-like: user@host:path */
    const char *at = strchr(repo, '@'), *colon = strchr(repo, ':');
    if (at && colon && at < colon && at > repo && colon[1] && !strstr(repo, "://"))
        return 0;
    return dms_error_set(
        err, DMS_E_INVALID, "repo",
        "repo must be an https://, http://, ssh://, git:// or file:// URL, user@host:path, or an "
        "absolute path");
}

int droid_validate_branch(const char *b, dms_error *err)
{
    if (!b || !*b)
        return dms_error_set(err, DMS_E_INVALID, "branch", "branch must not be empty");
    size_t n = strlen(b);
    if (n > DROID_BRANCH_MAX)
        return dms_error_set(err, DMS_E_INVALID, "branch", "branch is longer than %d characters",
                             DROID_BRANCH_MAX);
    /* git check-ref-format's rules, the ones that matter for a branch name. */
    if (has_control(b) || strpbrk(b, " ~^:?*[\\") || strstr(b, "..") || strstr(b, "@{") || strstr(b, "//") ||
        b[0] == '-' || b[0] == '/' || b[n - 1] == '/' || b[n - 1] == '.' ||
        (n >= 5 && strcmp(b + n - 5, ".lock") == 0) || strcmp(b, "@") == 0)
        return dms_error_set(err, DMS_E_INVALID, "branch", "\"%.64s\" is not a valid branch name", b);
    return 0;
}

#define COMMIT_MIN_HEX 7
#define COMMIT_MAX_HEX 40

int droid_validate_commit(const char *c, dms_error *err)
{
    size_t n = c ? strlen(c) : 0;
    if (n < COMMIT_MIN_HEX || n > COMMIT_MAX_HEX)
        return dms_error_set(err, DMS_E_INVALID, "commit", "commit must be %d-%d hexadecimal characters",
                             COMMIT_MIN_HEX, COMMIT_MAX_HEX);
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)c[i]))
            return dms_error_set(err, DMS_E_INVALID, "commit", "commit must be hexadecimal");
    return 0;
}

static bool env_key_valid(const char *k)
{
    if (!(isalpha((unsigned char)*k) || *k == '_'))
        return false;
    for (k++; *k; k++)
        if (!(isalnum((unsigned char)*k) || *k == '_'))
            return false;
    return true;
}

#define ENV_KEY_MAX 128

int droid_validate_env(json_t *env, int port, char **out, dms_error *err)
{
    if (!json_is_object(env))
        return dms_error_set(err, DMS_E_INVALID, "env", "env must be an object of strings");
    if (json_object_size(env) > DROID_ENV_MAX_VARS)
        return dms_error_set(err, DMS_E_INVALID, "env", "env has %zu variables; at most %d",
                             json_object_size(env), DROID_ENV_MAX_VARS);
    const char *k;
    json_t *v;
    char field[ENV_KEY_MAX + 8];
    json_object_foreach(env, k, v)
    {
        snprintf(field, sizeof(field), "env.%.*s", ENV_KEY_MAX, k);
        if (strlen(k) > ENV_KEY_MAX || !env_key_valid(k))
            return dms_error_set(err, DMS_E_INVALID, field,
                                 "env key \"%.64s\" must match [A-Za-z_][A-Za-z0-9_]*", k);
        if (!json_is_string(v))
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be a string", field);
        if (json_string_length(v) > DROID_ENV_VALUE_MAX ||
            memchr(json_string_value(v), 0, json_string_length(v)))
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be at most %d bytes without NUL", field,
                                 DROID_ENV_VALUE_MAX);
        if (strcmp(k, "PORT") == 0 && port > 0) {
            char want[8];
            snprintf(want, sizeof(want), "%d", port);
            if (strcmp(json_string_value(v), want) != 0)
                return dms_error_set(err, DMS_E_INVALID, "env.PORT",
                                     "env.PORT (%.16s) disagrees with port (%d)", json_string_value(v), port);
        }
    }
    char *s = json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        return dms_error_set(err, DMS_E_NOMEM, "env", "out of memory");
    *out = s;
    return 0;
}

#define PORT_MAX 65535

int droid_validate_port(json_t *port, int *out, dms_error *err)
{
    if (!json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > PORT_MAX)
        return dms_error_set(err, DMS_E_INVALID, "port", "port must be an integer from 1 to %d", PORT_MAX);
    *out = (int)json_integer_value(port);
    return 0;
}

static int validate_mount_path(const char *p, const char *field, dms_error *err)
{
    if (!p || p[0] != '/' || strlen(p) > DROID_MOUNT_PATH_MAX || strcmp(p, "/") == 0 || has_control(p) ||
        strchr(p, ':') || strchr(p, ','))
        return dms_error_set(
            err, DMS_E_INVALID, field,
            "%s must be an absolute path other than / (at most %d characters, no ':' or ',')", field,
            DROID_MOUNT_PATH_MAX);
    for (const char *c = p; (c = strstr(c, "/..")) != NULL; c += 3)
        if (c[3] == '/' || c[3] == '\0')
            return dms_error_set(err, DMS_E_INVALID, field, "%s must not contain '..'", field);
    return 0;
}

static int parse_volumes(json_t *arr, droid *d, dms_error *err)
{
    if (!json_is_array(arr))
        return dms_error_set(err, DMS_E_INVALID, "volumes", "volumes must be an array of {name, mount_path}");
    size_t n = json_array_size(arr);
    if (n > DROID_VOLUMES_MAX)
        return dms_error_set(err, DMS_E_INVALID, "volumes", "%zu volumes; at most %d", n, DROID_VOLUMES_MAX);
    droid_volume *v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n && !v)
        return dms_error_set(err, DMS_E_NOMEM, "volumes", "out of memory");
    volumes_free(d->volumes, d->n_volumes);
    d->volumes = v;
    d->n_volumes = 0;
    char field[64];
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        snprintf(field, sizeof(field), "volumes[%zu]", i);
        if (!json_is_object(o))
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be an object {name, mount_path}", field);
        const char *k;
        json_t *val;
        json_object_foreach(o, k, val)
        {
            if (strcmp(k, "name") != 0 && strcmp(k, "mount_path") != 0) {
                snprintf(field, sizeof(field), "volumes[%zu].%.32s", i, k);
                return dms_error_set(err, DMS_E_INVALID, field, "unknown key %s", field);
            }
        }
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *path = json_string_value(json_object_get(o, "mount_path"));
        snprintf(field, sizeof(field), "volumes[%zu].name", i);
        if (!name || !dmsd_is_slug(name) || strlen(name) > DROID_VOLUME_NAME_MAX || name[0] == '-')
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be 1-%d characters of [a-z0-9-]", field,
                                 DROID_VOLUME_NAME_MAX);
        snprintf(field, sizeof(field), "volumes[%zu].mount_path", i);
        int r = validate_mount_path(path, field, err);
        if (r < 0)
            return r;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(v[j].name, name) == 0) {
                snprintf(field, sizeof(field), "volumes[%zu].name", i);
                return dms_error_set(err, DMS_E_INVALID, field, "volume \"%s\" is listed twice", name);
            }
            if (strcmp(v[j].mount_path, path) == 0)
                return dms_error_set(err, DMS_E_INVALID, field, "%s is mounted twice", path);
        }
        d->n_volumes = i + 1;
        if (!(v[i].name = strdup(name)) || !(v[i].mount_path = strdup(path)))
            return dms_error_set(err, DMS_E_NOMEM, "volumes", "out of memory");
    }
    return 0;
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

/* The port from "port" and env.PORT: both given must agree; neither: the default. */
static int resolve_port(json_t *port, json_t *env, int *out, dms_error *err)
{
    if (port && !json_is_null(port))
        return droid_validate_port(port, out, err);
    json_t *p = json_is_object(env) ? json_object_get(env, "PORT") : NULL;
    if (json_is_string(p)) {
        char *end = NULL;
        long v = strtol(json_string_value(p), &end, 10);
        if (!*json_string_value(p) || *end || v < 1 || v > PORT_MAX)
            return dms_error_set(err, DMS_E_INVALID, "env.PORT", "env.PORT must be a port number (1-%d)",
                                 PORT_MAX);
        *out = (int)v;
        return 0;
    }
    *out = DROID_DEFAULT_PORT;
    return 0;
}

int droid_parse_create(json_t *body, droid *d, dms_error *err)
{
    static const char *const keys[] = {"name", "repo", "branch",  "commit",    "language",
                                       "port", "env",  "volumes", "resources", NULL};
    if (!json_is_object(body))
        return dms_error_set(err, DMS_E_INVALID, "body", "the body must be a JSON object");
    int r;
    const char *name, *repo, *branch, *commit, *language;
    if ((r = dmsd_json_known_keys(body, keys, err)) < 0 ||
        (r = dmsd_json_string(body, "name", false, &name, err)) < 0 ||
        (r = dmsd_json_string(body, "repo", false, &repo, err)) < 0 ||
        (r = dmsd_json_string(body, "branch", false, &branch, err)) < 0 ||
        (r = dmsd_json_string(body, "commit", false, &commit, err)) < 0 ||
        (r = dmsd_json_string(body, "language", false, &language, err)) < 0)
        return r;
    if ((r = droid_validate_name(name, err)) < 0 || (r = droid_validate_repo(repo, err)) < 0)
        return r;
    if (branch && (r = droid_validate_branch(branch, err)) < 0)
        return r;
    if (commit && (r = droid_validate_commit(commit, err)) < 0)
        return r;
    if (language && (!dmsd_is_slug(language) || strlen(language) > DROID_LANGUAGE_MAX))
        return dms_error_set(err, DMS_E_INVALID, "language", "language must be 1-%d characters of [a-z0-9-]",
                             DROID_LANGUAGE_MAX);
    json_t *env = json_object_get(body, "env");
    int port;
    if ((r = resolve_port(json_object_get(body, "port"), env, &port, err)) < 0)
        return r;
    char *env_json = NULL;
    if (env && !json_is_null(env)) {
        if ((r = droid_validate_env(env, port, &env_json, err)) < 0)
            return r;
    } else if (!(env_json = strdup("{}"))) {
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    free(d->env_json);
    d->env_json = env_json;
    d->port = port;
    json_t *vols = json_object_get(body, "volumes");
    if (vols && !json_is_null(vols) && (r = parse_volumes(vols, d, err)) < 0)
        return r;
    if ((r = droid_parse_resources(json_object_get(body, "resources"), &d->resources, err)) < 0)
        return r;
    if (dmsd_set_str(&d->name, name) < 0 || dmsd_set_str(&d->repo, repo) < 0 ||
        dmsd_set_str(&d->branch, branch) < 0 || dmsd_set_str(&d->commit, commit) < 0 ||
        dmsd_set_str(&d->language, language) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return 0;
}

void droid_patch_clear(droid_patch *p)
{
    free(p->name);
    free(p->env_json);
    free(p->branch);
    free(p->commit);
    memset(p, 0, sizeof(*p));
}

int droid_parse_patch(json_t *body, const droid *cur, droid_patch *p, dms_error *err)
{
    static const char *const keys[] = {"name", "port", "env", "branch", "commit", "resources", NULL};
    memset(p, 0, sizeof(*p));
    if (!json_is_object(body))
        return dms_error_set(err, DMS_E_INVALID, "body", "the body must be a JSON object");
    if (json_object_size(body) == 0)
        return dms_error_set(err, DMS_E_INVALID, "body",
                             "nothing to change: give name, port, env, branch, commit or resources");
    int r;
    const char *name, *branch;
    if ((r = dmsd_json_known_keys(body, keys, err)) < 0 ||
        (r = dmsd_json_string(body, "name", false, &name, err)) < 0 ||
        (r = dmsd_json_string(body, "branch", false, &branch, err)) < 0)
        goto fail;
    if (json_object_get(body, "name") && (r = droid_validate_name(name, err)) < 0)
        goto fail;
    /* "branch": null goes back to the repository's default branch. */
    if (branch && (r = droid_validate_branch(branch, err)) < 0)
        goto fail;
    json_t *res = json_object_get(body, "resources");
    if (res) {
        if ((r = droid_parse_resources(res, &p->resources, err)) < 0)
            goto fail;
        p->has_resources = true;
    }
    json_t *commit = json_object_get(body, "commit");
    if (commit) {
        p->has_commit = true;
        if (!json_is_null(commit)) {
            if (!json_is_string(commit)) {
                r = dms_error_set(err, DMS_E_INVALID, "commit", "commit must be a string or null");
                goto fail;
            }
            if ((r = droid_validate_commit(json_string_value(commit), err)) < 0)
                goto fail;
            if (!(p->commit = strdup(json_string_value(commit))))
                goto oom;
        }
    }
    json_t *port = json_object_get(body, "port");
    int new_port = cur->port;
    if (port) {
        if ((r = droid_validate_port(port, &new_port, err)) < 0)
            goto fail;
        p->has_port = true;
        p->port = new_port;
    }
    json_t *env = json_object_get(body, "env");
    if (env) {
        /* env.PORT alone moves the port too, like at create; with "port" both must agree. */
        json_t *ep = json_is_object(env) ? json_object_get(env, "PORT") : NULL;
        if ((r = droid_validate_env(env, port ? new_port : 0, &p->env_json, err)) < 0)
            goto fail;
        if (!port && json_is_string(ep)) {
            int v;
            if ((r = resolve_port(NULL, env, &v, err)) < 0)
                goto fail;
            p->has_port = v != cur->port;
            p->port = v;
        }
    } else if (p->has_port && cur->env_json) {
        /* A new port must not contradict a PORT the env already pins. */
        json_t *old = json_loads(cur->env_json, 0, NULL);
        json_t *ep = json_object_get(old, "PORT");
        bool pinned = json_is_string(ep);
        int v = pinned ? atoi(json_string_value(ep)) : 0;
        json_decref(old);
        if (pinned && v != new_port) {
            r = dms_error_set(err, DMS_E_INVALID, "port", "port %d disagrees with env.PORT (%d); change both",
                              new_port, v);
            goto fail;
        }
    }
    if ((name && !(p->name = strdup(name))))
        goto oom;
    if (json_object_get(body, "branch")) {
        p->has_branch = true;
        if (branch && !(p->branch = strdup(branch)))
            goto oom;
    }
    return 0;
oom:
    r = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
fail:
    droid_patch_clear(p);
    return r;
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
    return parse_volumes(a, d, err);
}

int droid_volume_engine_name(const droid *d, size_t i, char *buf, size_t size)
{
    if (i >= d->n_volumes || dms_snprintf_ok(buf, size, "%s-%s", d->id, d->volumes[i].name) < 0)
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
        _cleanup_free_ char *kv = dms_strdup_printf("%s=%s", k, json_string_value(val));
        if (!kv || dms_strv_push(&v, kv) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    if (!json_object_get(env, "PORT")) {
        _cleanup_free_ char *kv = dms_strdup_printf("PORT=%d", d->port);
        if (!kv || dms_strv_push(&v, kv) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    *out = steal_pointer(&v);
    return 0;
}

/* ---- JSON ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
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
