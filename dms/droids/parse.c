/* parse.c - a droid's create and PATCH bodies (see droid.h): each field checked (validate.c), the port
 * reconciled with env.PORT, unknown keys refused. */
#include "droid.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "droid_priv.h"

/* env.PORT as a port number (1-DROID_PORT_MAX), or -1. One parser for the check and for what is stored. */
static int env_port(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    return !*s || *end || v < 1 || v > DROID_PORT_MAX ? -1 : (int)v;
}

/* The port from "port" and env.PORT: both given must agree; neither: the default. */
static int resolve_port(json_t *port, json_t *env, int *out, dms_error *err)
{
    if (port && !json_is_null(port))
        return droid_validate_port(port, out, err);
    json_t *p = json_is_object(env) ? json_object_get(env, "PORT") : NULL;
    if (json_is_string(p)) {
        int v = env_port(json_string_value(p));
        if (v < 0)
            return dms_error_set(err, DMS_E_INVALID, "env.PORT", "env.PORT must be a port number (1-%d)",
                                 DROID_PORT_MAX);
        *out = v;
        return 0;
    }
    *out = DROID_DEFAULT_PORT;
    return 0;
}

int droid_parse_create(json_t *body, droid *d, dms_error *err)
{
    static const char *const keys[] = {"name", "repo",    "branch",    "commit",       "language", "port",
                                       "env",  "volumes", "resources", "compose_file", NULL};
    if (!json_is_object(body))
        return dms_error_set(err, DMS_E_INVALID, "body", "the body must be a JSON object");
    int r;
    const char *name, *repo, *branch, *commit, *language, *compose;
    if ((r = dmsd_json_known_keys(body, keys, err)) < 0 ||
        (r = dmsd_json_string(body, "compose_file", false, &compose, err)) < 0 ||
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
    if (compose && (r = droid_validate_compose_path(compose, err)) < 0)
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
    if (vols && !json_is_null(vols) && (r = droid_parse_volumes(vols, d, err)) < 0)
        return r;
    if ((r = droid_parse_resources(json_object_get(body, "resources"), &d->resources, err)) < 0)
        return r;
    if (dmsd_set_str(&d->name, name) < 0 || dmsd_set_str(&d->repo, repo) < 0 ||
        dmsd_set_str(&d->branch, branch) < 0 || dmsd_set_str(&d->commit, commit) < 0 ||
        dmsd_set_str(&d->language, language) < 0 || dmsd_set_str(&d->compose_file, compose) < 0)
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
        int v = pinned ? env_port(json_string_value(ep)) : 0;
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
