/* service.c - one service (services.<name>) into the model: a table of the keys dms supports, each with its
 * reader; any other key is refused naming its path. Cross-service rules (depends_on targets, cycles, the
 * route) are compose.c's. */
#include "compose_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define IMAGE_MAX             255
#define PATH_IN_CONTAINER_MAX 4096

int compose_nomem(dms_error *err)
{
    return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
}

int compose_not_supported(const char *field, dms_error *err)
{
    return dms_error_set(err, DMS_E_INVALID, field, "%s is not supported by dms", field);
}

/* A JSON string (a YAML scalar) into *out (borrowed); else INVALID. */
int compose_need_str(json_t *v, const char *field, const char **out, dms_error *err)
{
    if (!(*out = compose_str(v)))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be a string", field);
    return 0;
}

int compose_set_dup(char **dst, const char *s, dms_error *err)
{
    free(*dst);
    return (*dst = strdup(s)) ? 0 : compose_nomem(err);
}

int compose_check_list(json_t *v, const char *field, dms_error *err)
{
    if (!json_is_array(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be a list", field);
    if (json_array_size(v) > COMPOSE_LIST_MAX)
        return dms_error_set(err, DMS_E_INVALID, field, "%s has more than %d items", field, COMPOSE_LIST_MAX);
    return 0;
}

/* Every key of obj must be in keys (NULL-terminated) or an x- extension. */
int compose_known_keys(json_t *obj, const char *base, const char *const *keys, dms_error *err)
{
    const char *k;
    json_t *v;
    char f[COMPOSE_PATH_MAX];
    if (!json_is_object(obj))
        return dms_error_set(err, DMS_E_INVALID, base, "%s must be a mapping", base);
    if (json_object_size(obj) > COMPOSE_LIST_MAX)
        return dms_error_set(err, DMS_E_INVALID, base, "%s has more than %d keys", base, COMPOSE_LIST_MAX);
    json_object_foreach(obj, k, v)
    {
        bool ok = strncmp(k, "x-", 2) == 0;
        for (size_t i = 0; !ok && keys[i]; i++)
            ok = strcmp(k, keys[i]) == 0;
        if (!ok) {
            compose_path(f, sizeof(f), base, k);
            return compose_not_supported(f, err);
        }
    }
    return 0;
}

/* A list of strings (each bounded by the tree) into a NULL-terminated vector. */
int compose_str_list(json_t *v, const char *field, char ***out, dms_error *err)
{
    int r = compose_check_list(v, field, err);
    size_t i;
    json_t *item;
    char **vec = calloc(1, sizeof(*vec));
    if (!vec)
        return compose_nomem(err);
    json_array_foreach(v, i, item)
    {
        char f[COMPOSE_PATH_MAX];
        const char *s;
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (r == 0)
            r = compose_need_str(item, f, &s, err);
        if (r == 0 && dmsu_strv_push(&vec, s) < 0)
            r = compose_nomem(err);
    }
    if (r < 0) {
        dmsu_strv_free(vec);
        return r;
    }
    *out = vec;
    return 0;
}

/* command and entrypoint: a list, or a string split as a shell splits words. */
static int argv_of(json_t *v, const char *field, char ***out, dms_error *err)
{
    dmsu_strv_free(*out);
    *out = NULL;
    if (json_is_string(v))
        return compose_split_words(json_string_value(v), field, out, err);
    if (json_is_array(v))
        return compose_str_list(v, field, out, err);
    return dms_error_set(err, DMS_E_INVALID, field, "%s must be a string or a list of strings", field);
}

typedef int (*key_check_fn)(const char *key, const char *field, dms_error *err);

static int env_key_check(const char *key, const char *field, dms_error *err)
{
    if (!*key || strchr(key, '=') || strpbrk(key, " \t\n"))
        return dms_error_set(err, DMS_E_INVALID, field,
                             "%s: a variable name must be non-empty, without '=' or blanks", field);
    return 0;
}

static int label_key_check(const char *key, const char *field, dms_error *err)
{
    if (!*key || strchr(key, '='))
        return dms_error_set(err, DMS_E_INVALID, field, "%s: a label key must be non-empty, without '='",
                             field);
    /* io.dms.* are the executor's, dms.* dmsd's (dms.droid, dms.service, ...): a file must not pass its
     * containers off as another droid's. */
    if (strncmp(key, "io.dms.", 7) == 0 || strncmp(key, "dms.", 4) == 0)
        return dms_error_set(err, DMS_E_INVALID, field, "%s: labels io.dms.* and dms.* are reserved for dms",
                             field);
    return 0;
}

/* One K (with value, or NULL) of a map-or-list into vec as "K=V". A NULL value takes K from env when env is
 * given (environment, build args), else it is empty (labels); a variable env lacks is left out. */
static int kv_push(char ***vec, const char *key, const char *val, char *const *env, bool from_env,
                   const char *field, key_check_fn check, dms_error *err)
{
    int r = check(key, field, err);
    if (r < 0)
        return r;
    if (!val && from_env && !(val = dmsu_kv_get(env, key)))
        return 0;
    char *kv = dmsu_strdup_printf("%s=%s", key, val ? val : "");
    if (!kv || dmsu_strv_push(vec, kv) < 0) {
        free(kv);
        return compose_nomem(err);
    }
    free(kv);
    return 0;
}

/* environment, labels, build.args: a mapping K: V (V a scalar or null) or a list of "K=V" / "K". */
static int kv_list(json_t *v, const char *field, char *const *env, bool from_env, key_check_fn check,
                   char ***out, dms_error *err)
{
    char **vec = calloc(1, sizeof(*vec));
    char f[COMPOSE_PATH_MAX];
    int r = 0;
    if (!vec)
        return compose_nomem(err);
    if (json_is_object(v) && json_object_size(v) <= COMPOSE_LIST_MAX) {
        const char *k;
        json_t *item;
        json_object_foreach(v, k, item)
        {
            compose_path(f, sizeof(f), field, k);
            if (r == 0 && !json_is_null(item) && !json_is_string(item))
                r = dms_error_set(err, DMS_E_INVALID, f, "%s must be a string or null", f);
            if (r == 0)
                r = kv_push(&vec, k, compose_str(item), env, from_env, f, check, err);
        }
    } else if (json_is_array(v) && (r = compose_check_list(v, field, err)) == 0) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            const char *s;
            snprintf(f, sizeof(f), "%s[%zu]", field, i);
            if (r == 0 && (r = compose_need_str(item, f, &s, err)) == 0) {
                const char *eq = strchr(s, '=');
                char *key = eq ? strndup(s, (size_t)(eq - s)) : strdup(s);
                r = key ? kv_push(&vec, key, eq ? eq + 1 : NULL, env, from_env, f, check, err)
                        : compose_nomem(err);
                free(key);
            }
        }
    } else if (r == 0) {
        r = dms_error_set(err, DMS_E_INVALID, field,
                          "%s must be a mapping or a list of \"KEY=VALUE\" (at most %d)", field,
                          COMPOSE_LIST_MAX);
    }
    if (r < 0) {
        dmsu_strv_free(vec);
        return r;
    }
    *out = vec;
    return 0;
}

int compose_labels(json_t *v, const char *field, char ***out, dms_error *err)
{
    return kv_list(v, field, NULL, false, label_key_check, out, err);
}

int compose_container_path(const char *s, const char *field, dms_error *err)
{
    if (!s || s[0] != '/' || strlen(s) > PATH_IN_CONTAINER_MAX || strstr(s, "/../") ||
        (strlen(s) >= 3 && strcmp(s + strlen(s) - 3, "/..") == 0) || strchr(s, ':'))
        return dms_error_set(err, DMS_E_INVALID, field,
                             "%s must be an absolute path in the container, without ..", field);
    return 0;
}

static int read_build(compose_svc *c, json_t *v, const char *field)
{
    static const char *const keys[] = {"context", "dockerfile", "args", "target", NULL};
    compose_build *b = c->svc->build = calloc(1, sizeof(*b));
    char f[COMPOSE_PATH_MAX];
    const char *s;
    int r;
    if (!b)
        return compose_nomem(c->err);
    if (json_is_string(v))
        return compose_repo_path(json_string_value(v), field, &b->context, c->err);
    if ((r = compose_known_keys(v, field, keys, c->err)) < 0)
        return r;
    json_t *ctx = json_object_get(v, "context"), *df = json_object_get(v, "dockerfile");
    json_t *args = json_object_get(v, "args"), *target = json_object_get(v, "target");
    compose_path(f, sizeof(f), field, "context");
    if (ctx && !json_is_null(ctx) ? (r = compose_need_str(ctx, f, &s, c->err)) < 0 ||
                                        (r = compose_repo_path(s, f, &b->context, c->err)) < 0
                                  : (r = compose_set_dup(&b->context, ".", c->err)) < 0)
        return r;
    compose_path(f, sizeof(f), field, "dockerfile");
    if (df && !json_is_null(df) &&
        ((r = compose_need_str(df, f, &s, c->err)) < 0 ||
         (r = compose_repo_path(s, f, &b->dockerfile, c->err)) < 0))
        return r;
    compose_path(f, sizeof(f), field, "args");
    if (args && !json_is_null(args) &&
        (r = kv_list(args, f, c->env, true, env_key_check, &b->args, c->err)) < 0)
        return r;
    compose_path(f, sizeof(f), field, "target");
    if (target && !json_is_null(target) &&
        ((r = compose_need_str(target, f, &s, c->err)) < 0 ||
         (r = compose_set_dup(&b->target, s, c->err)) < 0))
        return r;
    return 0;
}

static int read_image(compose_svc *c, json_t *v, const char *field)
{
    const char *s;
    int r = compose_need_str(v, field, &s, c->err);
    if (r < 0)
        return r;
    if (!*s || strlen(s) > IMAGE_MAX || strpbrk(s, " \t\n\r"))
        return dms_error_set(c->err, DMS_E_INVALID, field,
                             "%s must be an image reference (at most %d characters, no blanks)", field,
                             IMAGE_MAX);
    return compose_set_dup(&c->svc->image, s, c->err);
}

static int read_command(compose_svc *c, json_t *v, const char *field)
{
    return argv_of(v, field, &c->svc->command, c->err);
}

static int read_entrypoint(compose_svc *c, json_t *v, const char *field)
{
    return argv_of(v, field, &c->svc->entrypoint, c->err);
}

static int read_environment(compose_svc *c, json_t *v, const char *field)
{
    return kv_list(v, field, c->env, true, env_key_check, &c->svc->environment, c->err);
}

static int read_labels(compose_svc *c, json_t *v, const char *field)
{
    return kv_list(v, field, NULL, false, label_key_check, &c->svc->labels, c->err);
}

/* env_file: a path, or a list of paths and {path, required}. */
static int read_env_file(compose_svc *c, json_t *v, const char *field)
{
    static const char *const keys[] = {"path", "required", NULL};
    json_t *one = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
    char f[COMPOSE_PATH_MAX], g[COMPOSE_PATH_MAX];
    size_t i;
    json_t *item;
    int r = one ? compose_check_list(one, field, c->err) : compose_nomem(c->err);
    if (r == 0 && !(c->svc->env_files = calloc(json_array_size(one) + 1, sizeof(compose_env_file))))
        r = compose_nomem(c->err);
    json_array_foreach(one, i, item)
    {
        if (r < 0)
            break;
        compose_env_file *e = &c->svc->env_files[i];
        json_t *path = item;
        const char *s;
        snprintf(f, sizeof(f), json_is_string(v) ? "%s" : "%s[%zu]", field, i);
        e->required = true;
        if (r == 0 && json_is_object(item) && (r = compose_known_keys(item, f, keys, c->err)) == 0) {
            json_t *req = json_object_get(item, "required");
            path = json_object_get(item, "path");
            compose_path(g, sizeof(g), f, "required");
            if (req && (r = compose_parse_bool(compose_str(req), g, &e->required, c->err)) < 0)
                break;
            compose_path(g, sizeof(g), f, "path");
            memcpy(f, g, sizeof(f));
        }
        if (r == 0 && (r = compose_need_str(path, f, &s, c->err)) == 0 &&
            (r = compose_repo_path(s, f, &e->path, c->err)) == 0)
            c->svc->n_env_files = i + 1;
    }
    json_decref(one);
    return r;
}

static int read_working_dir(compose_svc *c, json_t *v, const char *field)
{
    const char *s;
    int r = compose_need_str(v, field, &s, c->err);
    if (r == 0)
        r = compose_container_path(s, field, c->err);
    return r < 0 ? r : compose_set_dup(&c->svc->working_dir, s, c->err);
}

static int read_user(compose_svc *c, json_t *v, const char *field)
{
    const char *s;
    int r = compose_need_str(v, field, &s, c->err);
    if (r == 0 && (!*s || strlen(s) > COMPOSE_NAME_MAX * 2 || strpbrk(s, " \t\n\r")))
        r = dms_error_set(c->err, DMS_E_INVALID, field, "%s must be a user[:group] name or id", field);
    return r < 0 ? r : compose_set_dup(&c->svc->user, s, c->err);
}

static int read_x_dms(compose_svc *c, json_t *v, const char *field)
{
    static const char *const keys[] = {"singleton", NULL};
    char f[COMPOSE_PATH_MAX];
    int r = compose_known_keys(v, field, keys, c->err);
    json_t *single = json_object_get(v, "singleton");
    compose_path(f, sizeof(f), field, "singleton");
    if (r == 0 && single)
        r = compose_parse_bool(compose_str(single), f, &c->svc->singleton, c->err);
    return r;
}

static const struct {
    const char *key;
    int (*read)(compose_svc *c, json_t *v, const char *field);
} service_keys[] = {
    {"build", read_build},
    {"image", read_image},
    {"command", read_command},
    {"entrypoint", read_entrypoint},
    {"environment", read_environment},
    {"env_file", read_env_file},
    {"ports", compose_read_ports},
    {"expose", compose_read_expose},
    {"depends_on", compose_read_depends_on},
    {"healthcheck", compose_read_healthcheck},
    {"restart", compose_read_restart},
    {"volumes", compose_read_volumes},
    {"working_dir", read_working_dir},
    {"user", read_user},
    {"labels", read_labels},
    {"deploy", compose_read_deploy},
    {"x-dms", read_x_dms},
};

int compose_service_parse(const char *name, json_t *def, char *const *env, char *const *vol_names,
                          compose_service *svc, dms_error *err)
{
    compose_svc c = {.svc = svc, .env = env, .vol_names = vol_names, .err = err};
    const char *k;
    json_t *v;
    compose_path(c.base, sizeof(c.base), "services", name);
    if (!json_is_object(def))
        return dms_error_set(err, DMS_E_INVALID, c.base, "%s must be a mapping", c.base);
    if (!(svc->name = strdup(name)))
        return compose_nomem(err);
    json_object_foreach(def, k, v)
    {
        char f[COMPOSE_PATH_MAX];
        size_t i = 0;
        compose_path(f, sizeof(f), c.base, k);
        while (i < DMS_ARRAY_SIZE(service_keys) && strcmp(k, service_keys[i].key) != 0)
            i++;
        if (i == DMS_ARRAY_SIZE(service_keys)) {
            if (strncmp(k, "x-", 2) == 0)
                continue;
            return compose_not_supported(f, err);
        }
        if (json_is_null(v)) /* `key:` with nothing: as if absent */
            continue;
        int r = service_keys[i].read(&c, v, f);
        if (r < 0)
            return r;
    }
    if (!svc->image && !svc->build)
        return dms_error_set(err, DMS_E_INVALID, c.base, "%s needs image or build", c.base);
    return 0;
}

void compose_service_clear(compose_service *svc)
{
    free(svc->name);
    free(svc->image);
    if (svc->build) {
        free(svc->build->context);
        free(svc->build->dockerfile);
        dmsu_strv_free(svc->build->args);
        free(svc->build->target);
        free(svc->build);
    }
    dmsu_strv_free(svc->command);
    dmsu_strv_free(svc->entrypoint);
    dmsu_strv_free(svc->environment);
    for (size_t i = 0; svc->env_files && svc->env_files[i].path; i++)
        free(svc->env_files[i].path);
    free(svc->env_files);
    free(svc->ports);
    for (size_t i = 0; i < svc->n_depends_on; i++)
        free(svc->depends_on[i].service);
    free(svc->depends_on);
    dmsu_strv_free(svc->healthcheck.test);
    for (size_t i = 0; i < svc->n_volumes; i++) {
        free(svc->volumes[i].source);
        free(svc->volumes[i].target);
    }
    free(svc->volumes);
    free(svc->working_dir);
    free(svc->user);
    dmsu_strv_free(svc->labels);
    memset(svc, 0, sizeof(*svc));
}
