/* service_run.c - the keys of a service that say how it runs: ports and expose, depends_on, healthcheck,
 * restart, volumes and deploy. Each reader fills the service or fails naming the key path. */
#include "compose_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int add_port(compose_svc *c, compose_port p)
{
    for (size_t i = 0; i < c->svc->n_ports; i++)
        if (c->svc->ports[i].port == p.port && c->svc->ports[i].proto == p.proto)
            return 0;
    compose_port *n = realloc(c->svc->ports, (c->svc->n_ports + 1) * sizeof(*n));
    if (!n)
        return compose_nomem(c->err);
    c->svc->ports = n;
    n[c->svc->n_ports++] = p;
    return 0;
}

/* The long port syntax: target (and protocol) kept; published, host_ip, mode, name, app_protocol read and
 * dropped, since dms never publishes. */
static int port_long(compose_svc *c, json_t *item, const char *f, compose_port *p)
{
    static const char *const keys[] = {"target", "published", "protocol",     "host_ip",
                                       "mode",   "name",      "app_protocol", NULL};
    char g[COMPOSE_PATH_MAX], spec[64];
    int r = compose_known_keys(item, f, keys, c->err);
    json_t *target = json_object_get(item, "target"), *proto = json_object_get(item, "protocol");
    compose_path(g, sizeof(g), f, "target");
    if (r == 0 && !compose_str(target))
        r = dms_error_set(c->err, DMS_E_INVALID, g, "%s is required", g);
    if (r == 0 && strchr(compose_str(target), '/'))
        r = dms_error_set(c->err, DMS_E_INVALID, g, "%s must be a port number", g);
    if (r == 0)
        r = compose_parse_port(compose_str(target), g, p, c->err);
    compose_path(g, sizeof(g), f, "protocol");
    if (r == 0 && proto) {
        snprintf(spec, sizeof(spec), "%d/%s", p->port, compose_str(proto) ? compose_str(proto) : "?");
        r = compose_parse_port(spec, g, p, c->err);
    }
    return r;
}

static int read_ports_list(compose_svc *c, json_t *v, const char *field, bool allow_long)
{
    int r = compose_check_list(v, field, c->err);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        char f[COMPOSE_PATH_MAX];
        compose_port p = {0};
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (r == 0)
            r = allow_long && json_is_object(item) ? port_long(c, item, f, &p)
                                                   : compose_parse_port(compose_str(item), f, &p, c->err);
        if (r == 0)
            r = add_port(c, p);
    }
    return r;
}

int compose_read_ports(compose_svc *c, json_t *v, const char *field)
{
    return read_ports_list(c, v, field, true);
}

int compose_read_expose(compose_svc *c, json_t *v, const char *field)
{
    return read_ports_list(c, v, field, false);
}

int compose_read_restart(compose_svc *c, json_t *v, const char *field)
{
    static const struct {
        const char *name;
        compose_restart policy;
    } policies[] = {{"no", COMPOSE_RESTART_NO},
                    {"always", COMPOSE_RESTART_ALWAYS},
                    {"on-failure", COMPOSE_RESTART_ON_FAILURE},
                    {"unless-stopped", COMPOSE_RESTART_UNLESS_STOPPED}};
    const char *s;
    int r = compose_need_str(v, field, &s, c->err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(policies); i++)
        if (strcmp(s, policies[i].name) == 0) {
            c->svc->restart = policies[i].policy;
            return 0;
        }
    if (strncmp(s, "on-failure:", 11) == 0) {
        int64_t n;
        if ((r = compose_parse_int(s + 11, field, 1, COMPOSE_RETRIES_MAX, &n, c->err)) < 0)
            return r;
        c->svc->restart = COMPOSE_RESTART_ON_FAILURE;
        c->svc->restart_max = (int)n;
        return 0;
    }
    return dms_error_set(c->err, DMS_E_INVALID, field,
                         "%s must be no, always, on-failure, on-failure:N or unless-stopped", field);
}

static int dep_cmp(const void *a, const void *b)
{
    return strcmp(((const compose_dep *)a)->service, ((const compose_dep *)b)->service);
}

/* One dependency (name from a list item or a mapping key; spec the mapping's value, or NULL). */
static int add_dep(compose_svc *c, const char *name, json_t *spec, const char *f)
{
    static const char *const keys[] = {"condition", "required", "restart", NULL};
    static const char *const conds[] = {"service_started", "service_healthy",
                                        "service_completed_successfully"};
    compose_service *s = c->svc;
    compose_dep *d = &s->depends_on[s->n_depends_on];
    char g[COMPOSE_PATH_MAX];
    int r = 0;
    if (!name || !compose_valid_service_name(name))
        return dms_error_set(c->err, DMS_E_INVALID, f, "%s must name a service", f);
    for (size_t i = 0; i < s->n_depends_on; i++)
        if (strcmp(s->depends_on[i].service, name) == 0)
            return dms_error_set(c->err, DMS_E_INVALID, f, "%s names %s twice", c->base, name);
    *d = (compose_dep){.condition = COMPOSE_COND_STARTED, .required = true};
    if (!(d->service = strdup(name)))
        return compose_nomem(c->err);
    s->n_depends_on++;
    if (!spec || json_is_null(spec))
        return 0;
    if ((r = compose_known_keys(spec, f, keys, c->err)) < 0)
        return r;
    json_t *cond = json_object_get(spec, "condition"), *req = json_object_get(spec, "required");
    json_t *restart = json_object_get(spec, "restart");
    compose_path(g, sizeof(g), f, "condition");
    if (cond) {
        size_t i = 0;
        while (i < DMS_ARRAY_SIZE(conds) && (!compose_str(cond) || strcmp(compose_str(cond), conds[i]) != 0))
            i++;
        if (i == DMS_ARRAY_SIZE(conds))
            return dms_error_set(
                c->err, DMS_E_INVALID, g,
                "%s must be service_started, service_healthy or service_completed_successfully", g);
        d->condition = (compose_condition)i;
    }
    compose_path(g, sizeof(g), f, "required");
    if (req && (r = compose_parse_bool(compose_str(req), g, &d->required, c->err)) < 0)
        return r;
    compose_path(g, sizeof(g), f, "restart");
    if (restart && (r = compose_parse_bool(compose_str(restart), g, &d->restart, c->err)) < 0)
        return r;
    return 0;
}

/* depends_on: a list of service names, or a mapping name: {condition, required, restart}. Whether each
 * name is a service of the file is compose.c's check. */
int compose_read_depends_on(compose_svc *c, json_t *v, const char *field)
{
    size_t n = json_is_array(v) ? json_array_size(v) : json_is_object(v) ? json_object_size(v) : 0;
    char f[COMPOSE_PATH_MAX];
    int r = 0;
    if (!json_is_array(v) && !json_is_object(v))
        return dms_error_set(c->err, DMS_E_INVALID, field, "%s must be a list or a mapping of services",
                             field);
    if (n > COMPOSE_SERVICES_MAX)
        return dms_error_set(c->err, DMS_E_INVALID, field, "%s names more than %d services", field,
                             COMPOSE_SERVICES_MAX);
    if (!(c->svc->depends_on = calloc(n + 1, sizeof(compose_dep))))
        return compose_nomem(c->err);
    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            snprintf(f, sizeof(f), "%s[%zu]", field, i);
            if ((r = add_dep(c, compose_str(item), NULL, f)) < 0)
                return r;
        }
    } else {
        const char *k;
        json_t *spec;
        json_object_foreach(v, k, spec)
        {
            compose_path(f, sizeof(f), field, k);
            if ((r = add_dep(c, k, spec, f)) < 0)
                return r;
        }
    }
    qsort(c->svc->depends_on, c->svc->n_depends_on, sizeof(compose_dep), dep_cmp);
    return 0;
}

/* test: "cmd" (run by the shell), ["CMD", argv...], ["CMD-SHELL", "cmd"] or ["NONE"]. */
static int health_test(compose_svc *c, json_t *test, const char *f)
{
    compose_healthcheck *h = &c->svc->healthcheck;
    char **argv = NULL;
    int r;
    if (json_is_string(test)) {
        h->kind = COMPOSE_HEALTH_SHELL;
        return (h->test = calloc(2, sizeof(char *))) && (h->test[0] = strdup(json_string_value(test)))
                   ? 0
                   : compose_nomem(c->err);
    }
    if ((r = compose_str_list(test, f, &argv, c->err)) < 0)
        return r;
    size_t n = dmsu_strv_len(argv);
    if (n == 1 && strcmp(argv[0], "NONE") == 0) {
        h->kind = COMPOSE_HEALTH_DISABLED;
    } else if (n >= 2 && strcmp(argv[0], "CMD") == 0) {
        h->kind = COMPOSE_HEALTH_CMD;
    } else if (n == 2 && strcmp(argv[0], "CMD-SHELL") == 0) {
        h->kind = COMPOSE_HEALTH_SHELL;
    } else {
        dmsu_strv_free(argv);
        return dms_error_set(
            c->err, DMS_E_INVALID, f,
            "%s must be a command string, [\"CMD\", args...], [\"CMD-SHELL\", \"command\"] or "
            "[\"NONE\"]",
            f);
    }
    if (h->kind != COMPOSE_HEALTH_DISABLED) {
        h->test = argv;
        free(argv[0]);
        memmove(argv, argv + 1, n * sizeof(*argv)); /* drop "CMD"/"CMD-SHELL", keep the NULL */
        return 0;
    }
    dmsu_strv_free(argv);
    return 0;
}

int compose_read_healthcheck(compose_svc *c, json_t *v, const char *field)
{
    static const char *const keys[] = {"test",           "interval", "timeout", "start_period",
                                       "start_interval", "retries",  "disable", NULL};
    static const char *const durations[] = {"interval", "timeout", "start_period", "start_interval"};
    compose_healthcheck *h = &c->svc->healthcheck;
    int64_t *dst[] = {&h->interval_ms, &h->timeout_ms, &h->start_period_ms, &h->start_interval_ms};
    char f[COMPOSE_PATH_MAX];
    int r = compose_known_keys(v, field, keys, c->err);
    json_t *x;
    for (size_t i = 0; r == 0 && i < DMS_ARRAY_SIZE(durations); i++) {
        compose_path(f, sizeof(f), field, durations[i]);
        if ((x = json_object_get(v, durations[i])) && !json_is_null(x))
            r = compose_parse_duration_ms(compose_str(x), f, dst[i], c->err);
    }
    compose_path(f, sizeof(f), field, "retries");
    if (r == 0 && (x = json_object_get(v, "retries")) && !json_is_null(x)) {
        int64_t n;
        if ((r = compose_parse_int(compose_str(x), f, 0, COMPOSE_RETRIES_MAX, &n, c->err)) == 0)
            h->retries = (int)n;
    }
    compose_path(f, sizeof(f), field, "test");
    if (r == 0 && (x = json_object_get(v, "test")) && !json_is_null(x))
        r = health_test(c, x, f);
    bool disable = false;
    compose_path(f, sizeof(f), field, "disable");
    if (r == 0 && (x = json_object_get(v, "disable")) && !json_is_null(x))
        r = compose_parse_bool(compose_str(x), f, &disable, c->err);
    if (r == 0 && disable) {
        dmsu_strv_free(h->test);
        h->test = NULL;
        h->kind = COMPOSE_HEALTH_DISABLED;
    }
    return r;
}

static bool volume_declared(compose_svc *c, const char *name)
{
    return dmsu_strv_contains(c->vol_names, name);
}

/* The source of a mount: a declared named volume, or ./path in the repository (then read-only). */
static int mount_source(compose_svc *c, compose_mount *m, const char *src, bool bind, const char *f)
{
    if (bind) {
        m->type = COMPOSE_MOUNT_BIND;
        return compose_repo_path(src, f, &m->source, c->err);
    }
    if (src[0] == '/' || src[0] == '~')
        return dms_error_set(c->err, DMS_E_INVALID, f,
                             "%s: host paths are not allowed; use a named volume or ./path in the repository",
                             f);
    if (!volume_declared(c, src))
        return dms_error_set(c->err, DMS_E_INVALID, f,
                             "%s names a volume that the top-level volumes does not declare", f);
    m->type = COMPOSE_MOUNT_VOLUME;
    return compose_set_dup(&m->source, src, c->err);
}

/* "name:/path[:ro|rw]" or "./rel:/path[:ro]". An anonymous volume ("/path") is refused: name it. */
static int mount_short(compose_svc *c, compose_mount *m, const char *s, const char *f)
{
    char buf[COMPOSE_STRING_MAX + 1];
    char *parts[4] = {0};
    size_t n = 0;
    if (strlen(s) >= sizeof(buf))
        return dms_error_set(c->err, DMS_E_INVALID, f, "%s is too long", f);
    strcpy(buf, s);
    for (char *p = buf, *save = NULL; n < 4 && (p = strtok_r(n ? NULL : p, ":", &save)); n++)
        parts[n] = p;
    if (n < 2 || n > 3)
        return dms_error_set(c->err, DMS_E_INVALID, f,
                             "%s must be volume:/path[:ro] or ./path:/path[:ro] (anonymous volumes are not "
                             "supported)",
                             f);
    bool bind = parts[0][0] == '.';
    int r = mount_source(c, m, parts[0], bind, f);
    if (r == 0 && (r = compose_container_path(parts[1], f, c->err)) == 0)
        r = compose_set_dup(&m->target, parts[1], c->err);
    if (r < 0)
        return r;
    if (n == 3 && strcmp(parts[2], "ro") != 0 && strcmp(parts[2], "rw") != 0)
        return dms_error_set(c->err, DMS_E_INVALID, f, "%s: the mode must be ro or rw", f);
    if (bind && n == 3 && strcmp(parts[2], "rw") == 0)
        return dms_error_set(c->err, DMS_E_INVALID, f, "%s: paths of the repository are mounted read-only",
                             f);
    m->read_only = bind || (n == 3 && strcmp(parts[2], "ro") == 0);
    return 0;
}

/* {type: volume|bind, source, target, read_only}. */
static int mount_long(compose_svc *c, compose_mount *m, json_t *v, const char *f)
{
    static const char *const keys[] = {"type", "source", "target", "read_only", NULL};
    char g[COMPOSE_PATH_MAX];
    const char *type = NULL, *src = NULL, *target = NULL;
    int r = compose_known_keys(v, f, keys, c->err);
    compose_path(g, sizeof(g), f, "type");
    if (r == 0 && (r = compose_need_str(json_object_get(v, "type"), g, &type, c->err)) == 0 &&
        strcmp(type, "volume") != 0 && strcmp(type, "bind") != 0)
        r = dms_error_set(c->err, DMS_E_INVALID, g, "%s must be volume or bind", g);
    compose_path(g, sizeof(g), f, "source");
    if (r == 0 && (r = compose_need_str(json_object_get(v, "source"), g, &src, c->err)) == 0)
        r = mount_source(c, m, src, strcmp(type, "bind") == 0, g);
    compose_path(g, sizeof(g), f, "target");
    if (r == 0 && (r = compose_need_str(json_object_get(v, "target"), g, &target, c->err)) == 0 &&
        (r = compose_container_path(target, g, c->err)) == 0)
        r = compose_set_dup(&m->target, target, c->err);
    json_t *ro = json_object_get(v, "read_only");
    bool read_only = m->type == COMPOSE_MOUNT_BIND;
    compose_path(g, sizeof(g), f, "read_only");
    if (r == 0 && ro && (r = compose_parse_bool(compose_str(ro), g, &read_only, c->err)) == 0 && !read_only &&
        m->type == COMPOSE_MOUNT_BIND)
        r = dms_error_set(c->err, DMS_E_INVALID, g, "%s: paths of the repository are mounted read-only", g);
    m->read_only = read_only;
    return r;
}

int compose_read_volumes(compose_svc *c, json_t *v, const char *field)
{
    compose_service *s = c->svc;
    size_t i;
    json_t *item;
    int r = compose_check_list(v, field, c->err);
    if (r < 0)
        return r;
    if (!(s->volumes = calloc(json_array_size(v) + 1, sizeof(compose_mount))))
        return compose_nomem(c->err);
    json_array_foreach(v, i, item)
    {
        char f[COMPOSE_PATH_MAX];
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        compose_mount *m = &s->volumes[s->n_volumes++];
        if (json_is_object(item))
            r = mount_long(c, m, item, f);
        else if (json_is_string(item))
            r = mount_short(c, m, json_string_value(item), f);
        else
            r = dms_error_set(c->err, DMS_E_INVALID, f, "%s must be a string or a mapping", f);
        if (r < 0)
            return r;
    }
    return 0;
}

/* deploy: resources.limits.{memory, cpus} and replicas (1 only: one container per service here). */
int compose_read_deploy(compose_svc *c, json_t *v, const char *field)
{
    static const char *const keys[] = {"resources", "replicas", NULL}, *const res_keys[] = {"limits", NULL},
                             *const lim_keys[] = {"memory", "cpus", NULL};
    char f[COMPOSE_PATH_MAX], g[COMPOSE_PATH_MAX];
    int r = compose_known_keys(v, field, keys, c->err);
    json_t *replicas = json_object_get(v, "replicas"), *res = json_object_get(v, "resources");
    compose_path(f, sizeof(f), field, "replicas");
    int64_t n;
    if (r == 0 && replicas && (r = compose_parse_int(compose_str(replicas), f, 1, 1, &n, c->err)) < 0)
        return dms_error_set(c->err, DMS_E_INVALID, f, "%s must be 1: dms runs one container per service", f);
    if (r < 0 || !res || json_is_null(res))
        return r;
    compose_path(f, sizeof(f), field, "resources");
    if ((r = compose_known_keys(res, f, res_keys, c->err)) < 0)
        return r;
    json_t *lim = json_object_get(res, "limits"), *x;
    compose_path(g, sizeof(g), f, "limits");
    if (!lim || json_is_null(lim) || (r = compose_known_keys(lim, g, lim_keys, c->err)) < 0)
        return r;
    compose_path(f, sizeof(f), g, "memory");
    if ((x = json_object_get(lim, "memory")) && !json_is_null(x) &&
        (r = compose_parse_bytes(compose_str(x), f, &c->svc->memory_bytes, c->err)) < 0)
        return r;
    compose_path(f, sizeof(f), g, "cpus");
    if ((x = json_object_get(lim, "cpus")) && !json_is_null(x))
        r = compose_parse_cpus_millis(compose_str(x), f, &c->svc->cpu_millis, c->err);
    return r;
}
