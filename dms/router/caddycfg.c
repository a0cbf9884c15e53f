/* caddycfg.c - Caddy JSON for dmsd's routes (see caddycfg.h). */
#include "caddycfg.h"

#include <stdio.h>
#include <string.h>

bool route_spec_equal(const route_spec *a, const route_spec *b)
{
    return a->kind == b->kind && strcmp(a->droid_id, b->droid_id) == 0 && strcmp(a->host, b->host) == 0 &&
           strcmp(a->dial, b->dial) == 0 && strcmp(a->drain, b->drain) == 0 &&
           strcmp(a->message, b->message) == 0;
}

const char *route_kind_name(route_kind k)
{
    switch (k) {
    case ROUTE_PROXY:
        return "proxy";
    case ROUTE_WAKE:
        return "wake";
    case ROUTE_DOWN:
        return "down";
    }
    return "none";
}

void caddycfg_route_id(const char *droid_id, char *buf, size_t size)
{
    snprintf(buf, size, CADDY_ROUTE_ID_PREFIX "%s", droid_id);
}

static json_t *upstreams(const route_spec *r)
{
    json_t *u = json_array();
    json_array_append_new(u, json_pack("{s:s}", "dial", r->dial));
    if (r->drain[0] && strcmp(r->drain, r->dial) != 0)
        json_array_append_new(u, json_pack("{s:s}", "dial", r->drain));
    return u;
}

static json_t *handler(const route_spec *r)
{
    switch (r->kind) {
    case ROUTE_PROXY:
        /* "first": the first upstream that is available, i.e. always the new one; the second only drains. */
        return json_pack("{s:s, s:o, s:{s:{s:s}}}", "handler", "reverse_proxy", "upstreams", upstreams(r),
                         "load_balancing", "selection_policy", "policy", "first");
    case ROUTE_WAKE:
        /* Caddy's default transport: measured with Caddy 2.6.2, a request held by the upstream survives a
         * config change (the route moving on once the droid is awake) only with keep-alive on and
         * flush_interval left alone; with either changed it ends in a 502 at the reload. A connection the
         * wake handler spliced to a container may be reused by this route's own pool: it leads to the same
         * droid. */
        return json_pack("{s:s, s:o, s:{s:{s:s}}, s:{s:{s:{s:[s]}}}}", "handler", "reverse_proxy",
                         "upstreams", upstreams(r), "load_balancing", "selection_policy", "policy", "first",
                         "headers", "request", "set", CADDY_WAKE_HEADER, r->droid_id);
    case ROUTE_DOWN:
        return json_pack("{s:s, s:i, s:s, s:{s:[s]}}", "handler", "static_response", "status_code", 503,
                         "body", r->message, "headers", "Content-Type", "text/plain; charset=utf-8");
    }
    return NULL;
}

json_t *caddycfg_route(const route_spec *r)
{
    char id[ROUTE_DIAL_MAX];
    caddycfg_route_id(r->droid_id, id, sizeof(id));
    json_t *h = handler(r);
    if (!h)
        return NULL;
    return json_pack("{s:s, s:[{s:[s]}], s:[o], s:b}", "@id", id, "match", "host", r->host, "handle", h,
                     "terminal", 1);
}

json_t *caddycfg_catchall(void)
{
    return json_pack("{s:s, s:[{s:s, s:i, s:s, s:{s:[s]}}], s:b}", "@id", CADDY_CATCHALL_ID, "handle",
                     "handler", "static_response", "status_code", 404, "body",
                     "no droid is served at this host name\n", "headers", "Content-Type",
                     "text/plain; charset=utf-8", "terminal", 1);
}

static json_t *file_writer(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return json_pack("{s:s, s:s, s:i, s:i}", "output", "file", "filename", path, "roll_size_mb",
                     CADDY_LOG_ROLL_MB, "roll_keep", 1);
}

json_t *caddycfg_full(const caddycfg_base *b, const route_spec *routes, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        json_t *r = caddycfg_route(&routes[i]);
        if (!r || json_array_append_new(list, r) < 0) {
            json_decref(list);
            return NULL;
        }
    }
    if (!list || json_array_append_new(list, caddycfg_catchall()) < 0) {
        json_decref(list);
        return NULL;
    }
    char storage[4096];
    snprintf(storage, sizeof(storage), "%s/data", b->state_dir);
    char access[64];
    snprintf(access, sizeof(access), "http.log.access.%s", CADDY_ACCESS_LOGGER);
    json_error_t jerr;
    json_t *cfg = json_pack_ex(
        &jerr, 0,
        "{s:{s:s, s:[s], s:{s:b}},"                                   /* admin */
        " s:{s:{s:{s:o, s:s, s:[s]}, s:{s:o, s:{s:s}, s:s, s:[s]}}}," /* logging */
        " s:{s:s, s:s},"                                              /* storage */
        " s:{s:{s:{s:{s:[s], s:{s:b}, s:{s:s}, s:o}}}}}",             /* apps.http.servers.dms */
        "admin", "listen", b->admin, "origins", CADDY_ADMIN_ORIGIN, "config", "persist", 0, /* */
        "logging", "logs", "default", "writer", file_writer(b->state_dir, CADDY_LOG_FILE), "level", "WARN",
        "exclude", access, CADDY_ACCESS_LOGGER, "writer", file_writer(b->state_dir, CADDY_ACCESS_LOG_FILE),
        "encoder", "format", "json", "level", "INFO", "include", access, /* */
        "storage", "module", "file_system", "root", storage,             /* */
        "apps", "http", "servers", CADDY_SERVER_NAME, "listen", b->listen, "automatic_https", "disable", 1,
        "logs", "default_logger_name", CADDY_ACCESS_LOGGER, "routes", list);
    (void)jerr;
    return cfg;
}
