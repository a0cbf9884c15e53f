/* compose.c - the top level of a compose file: services (each read by service.c), volumes, x-dms, the start
 * order that depends_on implies, and the routed service. */
#include "compose_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define VOLUME_NAME_MAX 63
#define PORT_MAX        65535

static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

static bool valid_volume_name(const char *s)
{
    static const char rest[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    size_t n = strlen(s);
    return n > 0 && n <= VOLUME_NAME_MAX && strchr(alnum, s[0]) && strspn(s, rest) == n;
}

static int vol_cmp(const void *a, const void *b)
{
    return strcmp(((const compose_volume *)a)->name, ((const compose_volume *)b)->name);
}

/* volumes.<name>: null, {} or {labels}; driver, external, driver_opts and name are refused. names gets each
 * volume's name for the services' mounts. */
static int read_volumes(compose_file *f, json_t *vols, char ***names, dms_error *err)
{
    static const char *const keys[] = {"labels", NULL};
    char p[COMPOSE_PATH_MAX], q[COMPOSE_PATH_MAX];
    const char *k;
    json_t *v;
    int r = 0;
    if (!vols || json_is_null(vols))
        return 0;
    if (!json_is_object(vols) || json_object_size(vols) > COMPOSE_LIST_MAX)
        return dms_error_set(err, DMS_E_INVALID, "volumes", "volumes must be a mapping of at most %d volumes",
                             COMPOSE_LIST_MAX);
    if (!(f->volumes = calloc(json_object_size(vols) + 1, sizeof(compose_volume))))
        return compose_nomem(err);
    json_object_foreach(vols, k, v)
    {
        compose_volume *vol = &f->volumes[f->n_volumes];
        json_t *labels;
        compose_path(p, sizeof(p), "volumes", k);
        if (!valid_volume_name(k))
            return dms_error_set(err, DMS_E_INVALID, p,
                                 "%s: a volume name is [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most %d", p,
                                 VOLUME_NAME_MAX);
        if (!(vol->name = strdup(k)))
            return compose_nomem(err);
        f->n_volumes++;
        if (dmsu_strv_push(names, k) < 0)
            return compose_nomem(err);
        if (json_is_null(v))
            continue;
        if ((r = compose_known_keys(v, p, keys, err)) < 0)
            return r;
        compose_path(q, sizeof(q), p, "labels");
        if ((labels = json_object_get(v, "labels")) && !json_is_null(labels) &&
            (r = compose_labels(labels, q, &vol->labels, err)) < 0)
            return r;
    }
    qsort(f->volumes, f->n_volumes, sizeof(compose_volume), vol_cmp);
    return 0;
}

static int svc_cmp(const void *a, const void *b)
{
    return strcmp(((const compose_service *)a)->name, ((const compose_service *)b)->name);
}

/* services: a non-empty mapping of at most COMPOSE_SERVICES_MAX, read in name order. */
static int read_services(compose_file *f, json_t *svcs, char *const *env, char *const *vol_names,
                         dms_error *err)
{
    char p[COMPOSE_PATH_MAX];
    const char *k;
    json_t *v;
    if (!svcs || !json_is_object(svcs) || json_object_size(svcs) == 0)
        return dms_error_set(err, DMS_E_INVALID, "services", "services is required: a mapping of services");
    if (json_object_size(svcs) > COMPOSE_SERVICES_MAX)
        return dms_error_set(err, DMS_E_INVALID, "services", "services has %zu services; at most %d",
                             json_object_size(svcs), COMPOSE_SERVICES_MAX);
    if (!(f->services = calloc(json_object_size(svcs), sizeof(compose_service))))
        return compose_nomem(err);
    json_object_foreach(svcs, k, v)
    {
        compose_path(p, sizeof(p), "services", k);
        if (!compose_valid_service_name(k))
            return dms_error_set(
                err, DMS_E_INVALID, p,
                "%s: a service name is [a-z0-9][a-z0-9_-]*, at most %d characters (a DNS name)", p,
                COMPOSE_NAME_MAX);
        int r = compose_service_parse(k, v, env, vol_names, &f->services[f->n_services++], err);
        if (r < 0)
            return r;
    }
    qsort(f->services, f->n_services, sizeof(compose_service), svc_cmp);
    return 0;
}

static int index_of(const compose_file *f, const char *name)
{
    for (size_t i = 0; i < f->n_services; i++)
        if (strcmp(f->services[i].name, name) == 0)
            return (int)i;
    return -1;
}

const compose_service *compose_find(const compose_file *f, const char *name)
{
    int i = f && name ? index_of(f, name) : -1;
    return i < 0 ? NULL : &f->services[i];
}

static bool all_placed(const compose_file *f, size_t i, const bool *placed)
{
    for (size_t d = 0; d < f->services[i].n_depends_on; d++)
        if (!placed[index_of(f, f->services[i].depends_on[d].service)])
            return false;
    return true;
}

/* Called when nothing unplaced is ready: every unplaced service waits on another unplaced one, so following
 * the first such dependency from any of them runs into a cycle, which the error names. */
static int cycle_error(const compose_file *f, const bool *placed, dms_error *err)
{
    int seen[COMPOSE_SERVICES_MAX] = {0}, n = 0, at = 0;
    while (placed[at])
        at++;
    for (;;) {
        for (int j = 0; j < n; j++) {
            if (seen[j] != at)
                continue;
            char msg[DMS_ERROR_MSG_MAX] = "", field[COMPOSE_PATH_MAX];
            for (int k = j; k < n; k++)
                snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s -> ", f->services[seen[k]].name);
            snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s", f->services[at].name);
            snprintf(field, sizeof(field), "services.%s.depends_on", f->services[at].name);
            return dms_error_set(err, DMS_E_INVALID, field, "depends_on has a cycle: %s", msg);
        }
        seen[n++] = at;
        const compose_service *s = &f->services[at];
        for (size_t d = 0; d < s->n_depends_on; d++) {
            int t = index_of(f, s->depends_on[d].service);
            if (!placed[t]) {
                at = t;
                break;
            }
        }
    }
}

/* Every dependency names a service of the file; then the services in start order (Kahn's algorithm, taking
 * the first ready service by name each round, so the order is stable). */
static int order_services(compose_file *f, dms_error *err)
{
    bool placed[COMPOSE_SERVICES_MAX] = {false};
    compose_service sorted[COMPOSE_SERVICES_MAX];
    for (size_t i = 0; i < f->n_services; i++)
        for (size_t d = 0; d < f->services[i].n_depends_on; d++)
            if (index_of(f, f->services[i].depends_on[d].service) < 0) {
                char field[COMPOSE_PATH_MAX];
                snprintf(field, sizeof(field), "services.%s.depends_on", f->services[i].name);
                return dms_error_set(err, DMS_E_INVALID, field,
                                     "services.%s depends on %s, which is not a service", f->services[i].name,
                                     f->services[i].depends_on[d].service);
            }
    for (size_t n = 0; n < f->n_services; n++) {
        size_t i = 0;
        while (i < f->n_services && (placed[i] || !all_placed(f, i, placed)))
            i++;
        if (i == f->n_services)
            return cycle_error(f, placed, err);
        placed[i] = true;
        sorted[n] = f->services[i];
    }
    memcpy(f->services, sorted, f->n_services * sizeof(compose_service));
    return 0;
}

/* The only TCP port of s into *port, else INVALID at x-dms.route.port. */
static int only_port(const compose_service *s, int *port, dms_error *err)
{
    if (s->n_ports == 1 && s->ports[0].proto == COMPOSE_PROTO_TCP) {
        *port = s->ports[0].port;
        return 0;
    }
    return dms_error_set(err, DMS_E_INVALID, "x-dms.route.port",
                         "services.%s has %s; say which port dms routes with x-dms.route.port", s->name,
                         s->n_ports ? "several ports (or a udp one)" : "no ports or expose");
}

/* x-dms.route: {service, port}, or false (workers only); else the only service with ports or expose. */
static int explicit_route(compose_file *f, json_t *route, dms_error *err)
{
    static const char *const keys[] = {"service", "port", NULL};
    const char *name;
    int r;
    if (compose_str(route) && strcmp(compose_str(route), "false") == 0) {
        f->route_service = -1;
        return 0;
    }
    if (!json_is_object(route))
        return dms_error_set(err, DMS_E_INVALID, "x-dms.route",
                             "x-dms.route must be {service, port} or false");
    if ((r = compose_known_keys(route, "x-dms.route", keys, err)) < 0 ||
        (r = compose_need_str(json_object_get(route, "service"), "x-dms.route.service", &name, err)) < 0)
        return r;
    if ((f->route_service = index_of(f, name)) < 0)
        return dms_error_set(err, DMS_E_INVALID, "x-dms.route.service",
                             "x-dms.route.service names no service");
    json_t *port = json_object_get(route, "port");
    if (!port || json_is_null(port))
        return only_port(&f->services[f->route_service], &f->route_port, err);
    int64_t n;
    if ((r = compose_parse_int(compose_str(port), "x-dms.route.port", 1, PORT_MAX, &n, err)) < 0)
        return r;
    f->route_port = (int)n;
    return 0;
}

static int find_route(compose_file *f, json_t *xdms, dms_error *err)
{
    static const char *const keys[] = {"route", NULL};
    json_t *route = NULL;
    int r, found = -1, count = 0;
    char names[DMS_ERROR_MSG_MAX / 2] = "";
    if (xdms && !json_is_null(xdms)) {
        if ((r = compose_known_keys(xdms, "x-dms", keys, err)) < 0)
            return r;
        route = json_object_get(xdms, "route");
    }
    if (route && !json_is_null(route))
        return explicit_route(f, route, err);
    for (size_t i = 0; i < f->n_services; i++) {
        if (f->services[i].n_ports == 0)
            continue;
        found = (int)i, count++;
        snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", count > 1 ? ", " : "",
                 f->services[i].name);
    }
    if (count == 1) {
        f->route_service = found;
        return only_port(&f->services[found], &f->route_port, err);
    }
    if (count == 0)
        return dms_error_set(
            err, DMS_E_INVALID, "x-dms.route",
            "no service has ports or expose: say which one dms routes with x-dms.route: {service, "
            "port}, or x-dms.route: false for a droid of workers only");
    return dms_error_set(err, DMS_E_INVALID, "x-dms.route",
                         "services %s have ports: say which one dms routes with x-dms.route: {service, port}",
                         names);
}

static int parse_tree(json_t *root, char *const *env, compose_file *f, dms_error *err)
{
    static const char *const keys[] = {"services", "volumes", "name", "version", "x-dms", NULL};
    _cleanup_strv_ char **vol_names = NULL;
    int r;
    if (!json_is_object(root))
        return dms_error_set(err, DMS_E_INVALID, NULL, "a compose file must be a mapping with services");
    if ((r = compose_known_keys(root, "", keys, err)) < 0 || (r = compose_interpolate(root, env, err)) < 0 ||
        (r = read_volumes(f, json_object_get(root, "volumes"), &vol_names, err)) < 0 ||
        (r = read_services(f, json_object_get(root, "services"), env, vol_names, err)) < 0 ||
        (r = order_services(f, err)) < 0)
        return r;
    return find_route(f, json_object_get(root, "x-dms"), err);
}

int compose_parse(const char *text, size_t len, char *const *env, compose_file **out, dms_error *err)
{
    json_t *root = NULL;
    compose_file *f = NULL;
    *out = NULL;
    int r = compose_yaml_to_json(text, len, &root, err);
    if (r == 0 && !(f = calloc(1, sizeof(*f))))
        r = compose_nomem(err);
    if (r == 0)
        r = parse_tree(root, env, f, err);
    json_decref(root);
    if (r < 0) {
        compose_file_free(f);
        return r;
    }
    *out = f;
    return 0;
}

void compose_file_free(compose_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_services; i++)
        compose_service_clear(&f->services[i]);
    free(f->services);
    for (size_t i = 0; i < f->n_volumes; i++) {
        free(f->volumes[i].name);
        dmsu_strv_free(f->volumes[i].labels);
    }
    free(f->volumes);
    free(f);
}
