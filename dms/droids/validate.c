/* validate.c - validation of a droid's fields (see droid.h): name, repo, branch, commit, env, port and
 * volumes; every error is DMS_E_INVALID naming its field. */
#include "droid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "droid_priv.h"

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

static bool compose_path_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' || c == '/';
}

int droid_validate_compose_path(const char *path, dms_error *err)
{
    static const char msg[] = "compose_file must be a path inside the repository: 1-%d characters of "
                              "[A-Za-z0-9._/-], relative, without empty, \".\" or \"..\" parts";
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n > DROID_COMPOSE_PATH_MAX || path[0] == '/')
        return dms_error_set(err, DMS_E_INVALID, "compose_file", msg, DROID_COMPOSE_PATH_MAX);
    for (const char *p = path; *p;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool dots = (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.');
        if (len == 0 || dots)
            return dms_error_set(err, DMS_E_INVALID, "compose_file", msg, DROID_COMPOSE_PATH_MAX);
        for (size_t i = 0; i < len; i++)
            if (!compose_path_char(p[i]))
                return dms_error_set(err, DMS_E_INVALID, "compose_file", msg, DROID_COMPOSE_PATH_MAX);
        p += len + (end ? 1 : 0);
        if (end && !*p)
            return dms_error_set(err, DMS_E_INVALID, "compose_file", msg, DROID_COMPOSE_PATH_MAX);
    }
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

int droid_validate_port(json_t *port, int *out, dms_error *err)
{
    if (!json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > DROID_PORT_MAX)
        return dms_error_set(err, DMS_E_INVALID, "port", "port must be an integer from 1 to %d",
                             DROID_PORT_MAX);
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

int droid_parse_volumes(json_t *arr, droid *d, dms_error *err)
{
    if (!json_is_array(arr))
        return dms_error_set(err, DMS_E_INVALID, "volumes", "volumes must be an array of {name, mount_path}");
    size_t n = json_array_size(arr);
    if (n > DROID_VOLUMES_MAX)
        return dms_error_set(err, DMS_E_INVALID, "volumes", "%zu volumes; at most %d", n, DROID_VOLUMES_MAX);
    droid_volume *v = n ? calloc(n, sizeof(*v)) : NULL;
    if (n && !v)
        return dms_error_set(err, DMS_E_NOMEM, "volumes", "out of memory");
    droid_volumes_free(d->volumes, d->n_volumes);
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
