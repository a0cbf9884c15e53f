/* router.c - droid routes in Caddy (see router.h): the desired route of a droid, the route table kept in
 * step with the droids, swaps and drains, the access log's polling. Caddy's (re)start, the supervisor thread
 * and the router's start and stop: supervise.c; the state they share: router_priv.h.
 *
 * Lock order: r->lock, then core's cache lock (core_get_copy). Nothing that holds a core lock calls in here.
 */
#include "router.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "caddy.h"
#include "router_priv.h"

/* ---- the desired route ---- */

bool router_desired(const droid *d, const char *wake_addr, route_spec *out)
{
    if (!d || d->deleting)
        return false;
    memset(out, 0, sizeof(*out));
    snprintf(out->droid_id, sizeof(out->droid_id), "%s", d->id);
    snprintf(out->host, sizeof(out->host), "%s" CADDY_HOST_SUFFIX, d->name ? d->name : d->id);
    /* Asleep, or on its way up with no container yet (woken, first start, restart after a crash): requests
     * are held by the wake handler until it serves, rather than refused. */
    if (d->want_running && (d->asleep || (!d->run_id && d->state == DROID_STARTING))) {
        out->kind = ROUTE_WAKE;
        snprintf(out->dial, sizeof(out->dial), "%s", wake_addr ? wake_addr : "");
        return true;
    }
    if (d->run_id && d->run_addr && *d->run_addr) {
        out->kind = ROUTE_PROXY;
        snprintf(out->dial, sizeof(out->dial), "%s", d->run_addr);
        return true;
    }
    if (d->run_id && d->host_port > 0) {
        out->kind = ROUTE_PROXY;
        snprintf(out->dial, sizeof(out->dial), "127.0.0.1:%d", d->host_port);
        return true;
    }
    /* Running with no port at all: a compose droid of workers only (x-dms.route: false) has nothing to route,
     * like a host no droid has. */
    if (d->run_id && d->state == DROID_RUNNING)
        return false;
    out->kind = ROUTE_DOWN;
    const char *what;
    switch (d->state) {
    case DROID_STOPPED:
        what = "is stopped";
        break;
    case DROID_FAILED:
        what = "has failed (see its events)";
        break;
    case DROID_PENDING:
    case DROID_BUILDING:
        what = "is being built";
        break;
    default:
        what = "is starting";
        break;
    }
    snprintf(out->message, sizeof(out->message), "droid %s %s\n", d->name ? d->name : d->id, what);
    return true;
}

/* ---- the table (under r->lock) ---- */

static rentry *find(router *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->e[i].id, id) == 0)
            return &r->e[i];
    return NULL;
}

rentry *router_find_or_add(router *r, const char *id)
{
    rentry *e = find(r, id);
    if (e)
        return e;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        rentry *ne = realloc(r->e, cap * sizeof(*ne));
        if (!ne)
            return NULL;
        r->e = ne;
        r->cap = cap;
    }
    e = &r->e[r->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%s", id);
    return e;
}

static void remove_entry(router *r, rentry *e)
{
    size_t i = (size_t)(e - r->e);
    r->e[i] = r->e[--r->n];
}

static int admin_ok(router *r, const char *method, const char *path, const char *body, long *status,
                    dms_error *err)
{
    dmsu_buf resp = {0};
    int rc = caddy_admin(r->caddy, method, path, body, status, &resp, err);
    if (rc == 0 && *status != 200 && *status != 404)
        rc = dms_error_set(err, DMS_E_ENGINE, NULL, "caddy %s %s: %ld %.*s", method, path, *status,
                           (int)(resp.len > 300 ? 300 : resp.len), resp.data ? resp.data : "");
    dmsu_buf_free(&resp);
    return rc;
}

/* Programs one entry in Caddy. */
int router_apply(router *r, rentry *e, dms_error *err)
{
    char id[ROUTE_DIAL_MAX], path[128];
    caddycfg_route_id(e->id, id, sizeof(id));
    long status = 0;
    int rc;
    if (!r->up)
        return dms_error_set(err, DMS_E_UNAVAILABLE, NULL,
                             "caddy is not running; the route is pushed once it is");
    if (e->gone) {
        snprintf(path, sizeof(path), "/id/%s", id);
        if ((rc = admin_ok(r, "DELETE", path, NULL, &status, err)) < 0)
            return rc;
        log_info("droid=%s op=route action=delete", e->id);
        remove_entry(r, e);
        return 0;
    }
    json_t *j = caddycfg_route(&e->spec);
    _cleanup_free_ char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if (e->in_caddy) {
        snprintf(path, sizeof(path), "/id/%s", id);
        if ((rc = admin_ok(r, "PATCH", path, body, &status, err)) < 0)
            return rc;
        if (status == 404)
            e->in_caddy = false;
    }
    if (!e->in_caddy) {
        /* PUT on an array index inserts there: before the catch-all, which stays last. */
        if ((rc = admin_ok(r, "PUT", "/config/apps/http/servers/" CADDY_SERVER_NAME "/routes/0", body,
                           &status, err)) < 0)
            return rc;
        if (status != 200)
            return dms_error_set(err, DMS_E_ENGINE, NULL, "caddy: insert route %s: %ld", id, status);
        e->in_caddy = true;
    }
    e->dirty = false;
    log_info("droid=%s op=route action=set kind=%s host=%s dial=%s drain=%s", e->id,
             route_kind_name(e->spec.kind), e->spec.host, e->spec.dial[0] ? e->spec.dial : "-",
             e->spec.drain[0] ? e->spec.drain : "-");
    return 0;
}

/* Recomputes the entry from the cached droid; with override, that spec instead. Under r->lock. */
static int update(router *r, const char *droid_id, const route_spec *override, dms_error *err)
{
    route_spec spec;
    bool want;
    if (override) {
        spec = *override;
        want = true;
    } else {
        droid *d = core_get_copy(r->core, droid_id);
        want = router_desired(d, r->wake_addr, &spec);
        droid_free(d);
    }
    rentry *e = find(r, droid_id);
    if (!want) {
        if (!e)
            return 0;
        e->gone = true;
        e->dirty = true;
        return router_apply(r, e, err);
    }
    if (!(e = router_find_or_add(r, droid_id)))
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if (!override)
        snprintf(spec.drain, sizeof(spec.drain), "%s", spec.kind == ROUTE_DOWN ? "" : e->drain);
    if (e->in_caddy && !e->dirty && !e->gone && route_spec_equal(&e->spec, &spec))
        return 0;
    e->spec = spec;
    e->gone = false;
    e->dirty = true;
    return router_apply(r, e, err);
}

int router_sync(router *r, const char *droid_id, dms_error *err)
{
    pthread_mutex_lock(&r->lock);
    int rc = update(r, droid_id, NULL, err);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

static int set_with_drain(router *r, const char *droid_id, route_kind kind, const char *dial,
                          const char *old_addr, dms_error *err)
{
    pthread_mutex_lock(&r->lock);
    droid *d = core_get_copy(r->core, droid_id);
    route_spec spec;
    int rc = 0;
    if (!router_desired(d, r->wake_addr, &spec)) {
        rc = dms_error_set(err, DMS_E_NOT_FOUND, "id", "droid %s is gone", droid_id);
    } else {
        rentry *e = router_find_or_add(r, droid_id);
        if (!e) {
            rc = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        } else {
            snprintf(e->drain, sizeof(e->drain), "%s",
                     old_addr && strcmp(old_addr, dial) != 0 ? old_addr : "");
            spec.kind = kind;
            spec.message[0] = '\0';
            snprintf(spec.dial, sizeof(spec.dial), "%s", dial);
            snprintf(spec.drain, sizeof(spec.drain), "%s", e->drain);
            rc = update(r, droid_id, &spec, err);
        }
    }
    droid_free(d);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int router_swap(router *r, const char *droid_id, const char *new_addr, const char *old_addr, dms_error *err)
{
    return set_with_drain(r, droid_id, ROUTE_PROXY, new_addr, old_addr, err);
}

int router_sleep(router *r, const char *droid_id, const char *old_addr, dms_error *err)
{
    return set_with_drain(r, droid_id, ROUTE_WAKE, r->wake_addr, old_addr, err);
}

int router_release(router *r, const char *droid_id, dms_error *err)
{
    pthread_mutex_lock(&r->lock);
    rentry *e = find(r, droid_id);
    if (e)
        e->drain[0] = '\0';
    int rc = update(r, droid_id, NULL, err);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

/* ---- upstreams and draining ---- */

int router_upstreams(router *r, router_upstream **out, size_t *n, dms_error *err)
{
    *out = NULL;
    *n = 0;
    long status = 0;
    dmsu_buf resp = {0};
    int rc = caddy_admin(r->caddy, "GET", "/reverse_proxy/upstreams", NULL, &status, &resp, err);
    if (rc == 0 && status != 200)
        rc = dms_error_set(err, DMS_E_ENGINE, NULL, "caddy GET /reverse_proxy/upstreams: %ld", status);
    json_t *j = rc == 0 ? json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL) : NULL;
    dmsu_buf_free(&resp);
    if (rc < 0)
        return rc;
    if (!json_is_array(j)) {
        json_decref(j);
        return dms_error_set(err, DMS_E_PROTOCOL, NULL, "caddy /reverse_proxy/upstreams: not a JSON array");
    }
    size_t len = json_array_size(j);
    router_upstream *v = calloc(len ? len : 1, sizeof(*v));
    if (!v) {
        json_decref(j);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        json_t *u = json_array_get(j, i);
        snprintf(v[i].addr, sizeof(v[i].addr), "%s", json_string_value(json_object_get(u, "address")) ?: "");
        v[i].num_requests = (int)json_integer_value(json_object_get(u, "num_requests"));
    }
    json_decref(j);
    *out = v;
    *n = len;
    return 0;
}

int64_t router_drain(router *r, const char *addr, int64_t timeout_ms)
{
    int64_t t0 = dms_mono_ms();
    for (;;) {
        router_upstream *u = NULL;
        size_t n = 0;
        int busy = 0;
        if (router_upstreams(r, &u, &n, NULL) == 0)
            for (size_t i = 0; i < n; i++)
                if (strcmp(u[i].addr, addr) == 0)
                    busy = u[i].num_requests;
        free(u);
        int64_t waited = dms_mono_ms() - t0;
        if (busy <= 0)
            return waited;
        if (waited >= timeout_ms)
            return -1;
        usleep(ROUTER_DRAIN_POLL_MS * 1000);
    }
}

void router_access_poll(router *r, router_access_fn fn, void *ud)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" CADDY_ACCESS_LOG_FILE, r->state_dir);
    access_tail_poll(&r->access, path, fn, ud);
}

int router_port(const router *r)
{
    return r->port;
}

void router_url(const router *r, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "http://%s" CADDY_HOST_SUFFIX ":%d/", name, r->port);
}

bool router_up(router *r)
{
    pthread_mutex_lock(&r->lock);
    bool up = r->up;
    pthread_mutex_unlock(&r->lock);
    return up;
}
