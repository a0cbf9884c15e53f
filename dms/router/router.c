/* router.c - droid routes in Caddy, and Caddy's supervision (see router.h).
 *
 * Lock order: r->lock, then core's cache lock (core_get_copy). Nothing that holds a core lock calls in here.
 */
#include "router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "caddy.h"
#include "probe.h"

#define ACCESS_READ_MAX       (1024 * 1024) /* read at most this much of the access log per poll */
#define ACCESS_LINE_MAX       (64 * 1024)   /* a longer line is skipped */
#define ROUTER_RESTART_MIN_MS 500

typedef struct rentry {
    char id[DROID_ID_SIZE];
    route_spec spec;            /* what Caddy should have */
    char drain[ROUTE_DIAL_MAX]; /* an upstream kept listed while it drains (router_swap/router_sleep) */
    bool in_caddy;              /* Caddy has a route with this @id */
    bool dirty;                 /* spec is not programmed yet */
    bool gone;                  /* the droid has no route any more: delete it */
} rentry;

typedef struct access_tail {
    pthread_mutex_t lock;
    int fd;
    ino_t ino;
    bool started;
    dms_buf partial;
} access_tail;

struct router {
    core *core;
    caddy *caddy;
    char listen[64];
    int port;
    char admin[PATH_MAX];
    char wake_addr[ROUTE_DIAL_MAX];
    char state_dir[PATH_MAX];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    bool up; /* Caddy runs with our config */
    int64_t next_start_ms;
    int64_t backoff_ms;
    rentry *e;
    size_t n, cap;
    pthread_t thread;
    bool thread_started;
    access_tail access;
};

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

static rentry *find_or_add(router *r, const char *id)
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
    dms_buf resp = {0};
    int rc = caddy_admin(r->caddy, method, path, body, status, &resp, err);
    if (rc == 0 && *status != 200 && *status != 404)
        rc = dms_error_set(err, DMS_E_ENGINE, NULL, "caddy %s %s: %ld %.*s", method, path, *status,
                           (int)(resp.len > 300 ? 300 : resp.len), resp.data ? resp.data : "");
    dms_buf_free(&resp);
    return rc;
}

/* Programs one entry in Caddy. */
static int apply(router *r, rentry *e, dms_error *err)
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
        return apply(r, e, err);
    }
    if (!(e = find_or_add(r, droid_id)))
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if (!override)
        snprintf(spec.drain, sizeof(spec.drain), "%s", spec.kind == ROUTE_DOWN ? "" : e->drain);
    if (e->in_caddy && !e->dirty && !e->gone && route_spec_equal(&e->spec, &spec))
        return 0;
    e->spec = spec;
    e->gone = false;
    e->dirty = true;
    return apply(r, e, err);
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
        rentry *e = find_or_add(r, droid_id);
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
    dms_buf resp = {0};
    int rc = caddy_admin(r->caddy, "GET", "/reverse_proxy/upstreams", NULL, &status, &resp, err);
    if (rc == 0 && status != 200)
        rc = dms_error_set(err, DMS_E_ENGINE, NULL, "caddy GET /reverse_proxy/upstreams: %ld", status);
    json_t *j = rc == 0 ? json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL) : NULL;
    dms_buf_free(&resp);
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
    int64_t t0 = dmsd_mono_ms();
    for (;;) {
        router_upstream *u = NULL;
        size_t n = 0;
        int busy = 0;
        if (router_upstreams(r, &u, &n, NULL) == 0)
            for (size_t i = 0; i < n; i++)
                if (strcmp(u[i].addr, addr) == 0)
                    busy = u[i].num_requests;
        free(u);
        int64_t waited = dmsd_mono_ms() - t0;
        if (busy <= 0)
            return waited;
        if (waited >= timeout_ms)
            return -1;
        usleep(ROUTER_DRAIN_POLL_MS * 1000);
    }
}

/* ---- the access log ---- */

static void access_line(const char *line, size_t len, router_access_fn fn, void *ud)
{
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *req = json_object_get(j, "request");
    const char *host = json_string_value(json_object_get(req, "host"));
    json_t *ts = json_object_get(j, "ts");
    if (fn && host && json_is_number(ts)) {
        char h[ROUTE_HOST_MAX + 8];
        size_t k = 0;
        for (; host[k] && host[k] != ':' && k + 1 < sizeof(h); k++)
            h[k] = (char)(host[k] >= 'A' && host[k] <= 'Z' ? host[k] + 32 : host[k]);
        h[k] = '\0';
        fn(ud, h, (int64_t)(json_number_value(ts) * (double)NS_PER_SEC));
    }
    json_decref(j);
}

static void access_feed(router *r, const char *data, size_t len, router_access_fn fn, void *ud)
{
    access_tail *a = &r->access;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (a->partial.len) {
            dms_buf_append(&a->partial, data + start, i - start);
            if (!a->partial.overflow)
                access_line(a->partial.data, a->partial.len, fn, ud);
            dms_buf_reset(&a->partial);
            a->partial.overflow = false;
        } else {
            access_line(data + start, i - start, fn, ud);
        }
        start = i + 1;
    }
    if (start < len)
        dms_buf_append(&a->partial, data + start, len - start);
}

static void access_drain_fd(router *r, router_access_fn fn, void *ud)
{
    char buf[16384];
    size_t total = 0;
    while (total < ACCESS_READ_MAX) {
        ssize_t n = read(r->access.fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        access_feed(r, buf, (size_t)n, fn, ud);
        total += (size_t)n;
    }
}

void router_access_poll(router *r, router_access_fn fn, void *ud)
{
    access_tail *a = &r->access;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" CADDY_ACCESS_LOG_FILE, r->state_dir);
    pthread_mutex_lock(&a->lock);
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (a->fd >= 0)
        access_drain_fd(r, fn, ud);
    if (exists && (a->fd < 0 || st.st_ino != a->ino)) {
        /* First look, or Caddy rolled the file: read the new one from its start (from its end at the first
         * look: what happened before dmsd started is not activity it has to account for). */
        if (a->fd >= 0)
            close(a->fd);
        a->fd = open(path, O_RDONLY | O_CLOEXEC);
        a->ino = st.st_ino;
        dms_buf_reset(&a->partial);
        if (a->fd >= 0 && !a->started)
            lseek(a->fd, 0, SEEK_END);
        if (a->fd >= 0)
            access_drain_fd(r, fn, ud);
    }
    a->started = true;
    pthread_mutex_unlock(&a->lock);
}

/* ---- Caddy (re)start ---- */

static char *full_config(router *r)
{
    route_spec *specs = calloc(r->n ? r->n : 1, sizeof(*specs));
    if (!specs)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        if (!r->e[i].gone)
            specs[k++] = r->e[i].spec;
    caddycfg_base b = {.admin = r->admin, .listen = r->listen, .state_dir = r->state_dir};
    json_t *j = caddycfg_full(&b, specs, k);
    free(specs);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* Under r->lock. */
static int start_caddy(router *r, dms_error *err)
{
    _cleanup_free_ char *cfg = full_config(r);
    if (!cfg)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    bool adopted = false;
    int rc = caddy_ensure(r->caddy, cfg, r->listen, &adopted, err);
    if (rc < 0) {
        r->up = false;
        return rc;
    }
    /* Every route is in the config Caddy now runs. */
    for (size_t i = 0; i < r->n;) {
        if (r->e[i].gone) {
            r->e[i] = r->e[--r->n];
            continue;
        }
        r->e[i].in_caddy = true;
        r->e[i].dirty = false;
        i++;
    }
    r->up = true;
    r->backoff_ms = 0;
    log_info("component=router op=caddy action=%s routes=%zu listen=%s", adopted ? "adopted" : "started",
             r->n, r->listen);
    return 0;
}

static void try_start(router *r)
{
    dms_error err = {0};
    if (start_caddy(r, &err) == 0)
        return;
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : ROUTER_RESTART_MIN_MS;
    if (r->backoff_ms > ROUTER_RESTART_MAX_MS)
        r->backoff_ms = ROUTER_RESTART_MAX_MS;
    r->next_start_ms = dmsd_mono_ms() + r->backoff_ms;
    log_error("component=router op=caddy error=\"%s\" retry_in_ms=%lld", err.message,
              (long long)r->backoff_ms);
}

static void *supervise(void *arg)
{
    router *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)ROUTER_TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        if (r->stop)
            break;
        if (r->up && !caddy_alive(r->caddy)) {
            log_warn("component=router op=caddy note=\"caddy is gone; starting it again with every route\"");
            r->up = false;
            r->next_start_ms = 0;
        }
        if (!r->up) {
            if (dmsd_mono_ms() >= r->next_start_ms)
                try_start(r);
            continue;
        }
        for (size_t i = 0; i < r->n; i++) {
            if (!r->e[i].dirty)
                continue;
            dms_error err = {0};
            rentry *e = &r->e[i];
            bool gone = e->gone;
            if (apply(r, e, &err) < 0)
                log_warn("droid=%s op=route error=\"%s\"", e->id, err.message);
            else if (gone)
                i--; /* the entry was removed; another took its place */
        }
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ---- start/stop ---- */

/* Caddy 2.6 binds each config's listener with SO_REUSEPORT and closes the old one after a config change;
 * Linux resets the connections still queued on a closed listener, so a client connecting at the moment a
 * route changes got a "connection reset" (measured here: 10 and more per 100 reloads under a tight loop of
 * new connections). With net.ipv4.tcp_migrate_req=1 (Linux 5.14+) the kernel hands them to the new listener
 * instead: measured, 0 in 51104 requests over 100 reloads. The setting is per network namespace and only
 * changes what happens to those queued connections; dmsd turns it on when it can and says so
 * (DMS_PROXY_TCP_MIGRATE=off leaves it alone). */
#define TCP_MIGRATE_REQ_PATH "/proc/sys/net/ipv4/tcp_migrate_req"

static void ensure_tcp_migrate_req(void)
{
    const char *want = getenv("DMS_PROXY_TCP_MIGRATE");
    if (want && strcmp(want, "off") == 0)
        return;
    char cur[8] = "";
    FILE *f = fopen(TCP_MIGRATE_REQ_PATH, "r");
    if (!f) {
        log_warn(
            "component=router note=\"%s is missing (Linux < 5.14): connections queued at a route change may "
            "be reset\"",
            TCP_MIGRATE_REQ_PATH);
        return;
    }
    if (!fgets(cur, sizeof(cur), f))
        cur[0] = '\0';
    fclose(f);
    if (cur[0] == '1')
        return;
    f = fopen(TCP_MIGRATE_REQ_PATH, "w");
    bool ok = f && fputs("1\n", f) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok) {
        log_warn("component=router note=\"cannot set net.ipv4.tcp_migrate_req=1 (%s): connections queued at "
                 "a route "
                 "change may be reset; set it as root\"",
                 strerror(errno));
        return;
    }
    log_info("component=router op=sysctl net.ipv4.tcp_migrate_req=1 note=\"Caddy's reloads hand queued "
             "connections to the new listener instead of resetting them\"");
}

/* True if nothing listens on host:port (we could bind it). */
static bool port_free(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    bool ok =
        inet_pton(AF_INET, host, &sa.sin_addr) == 1 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* The port of a Caddy of ours still running from an earlier dmsd (same admin address), or 0. */
static int running_port(router *r, const char *host)
{
    long status = 0;
    dms_buf resp = {0};
    int port = 0;
    if (caddy_admin(r->caddy, "GET", "/config/apps/http/servers/" CADDY_SERVER_NAME "/listen", NULL, &status,
                    &resp, NULL) == 0 &&
        status == 200) {
        json_t *j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
        const char *a = json_string_value(json_array_get(j, 0));
        const char *colon = a ? strrchr(a, ':') : NULL;
        if (colon && (size_t)(colon - a) == strlen(host) && strncmp(a, host, strlen(host)) == 0)
            port = atoi(colon + 1);
        json_decref(j);
    }
    dms_buf_free(&resp);
    return port;
}

int router_start(router **out, core *c, const router_config *cfg, dms_error *err)
{
    const char *listen = cfg->listen && *cfg->listen ? cfg->listen : ROUTER_DEFAULT_LISTEN;
    const char *colon = strrchr(listen, ':');
    int64_t port = colon ? dms_parse_i64(colon + 1) : -1;
    char host[48];
    if (!colon || port < 0 || port > 65535 || (size_t)(colon - listen) >= sizeof(host))
        return dms_error_set(err, DMS_E_INVALID, "DMS_PROXY_LISTEN", "\"%s\" is not host:port (e.g. %s)",
                             listen, ROUTER_DEFAULT_LISTEN);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
    struct in_addr ia;
    if (inet_pton(AF_INET, host, &ia) != 1)
        return dms_error_set(err, DMS_E_INVALID, "DMS_PROXY_LISTEN",
                             "\"%s\": the host must be an IPv4 address", listen);
    ensure_tcp_migrate_req();
    router *r = calloc(1, sizeof(*r));
    if (!r)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    r->core = c;
    r->access.fd = -1;
    r->access.partial.max = ACCESS_LINE_MAX;
    pthread_mutex_init(&r->access.lock, NULL);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    snprintf(r->state_dir, sizeof(r->state_dir), "%s", cfg->state_dir);
    snprintf(r->wake_addr, sizeof(r->wake_addr), "%s", cfg->wake_addr ? cfg->wake_addr : "");
    if (cfg->admin && *cfg->admin)
        snprintf(r->admin, sizeof(r->admin), "%s", cfg->admin);
    else
        snprintf(r->admin, sizeof(r->admin), "unix/%s/admin.sock", cfg->state_dir);
    int rc = dms_mkdir_p(r->state_dir, true, err);
    caddy_config cc = {.bin = cfg->caddy_bin, .state_dir = r->state_dir, .admin = r->admin};
    if (rc < 0 || (rc = caddy_new(&r->caddy, &cc, err)) < 0) {
        router_stop(r);
        return rc;
    }
    if (port != 0 && cfg->listen_default && running_port(r, host) != port && !port_free(host, (int)port)) {
        /* The default was not asked for: several dmsd on one machine (tests, CI) must not fight over it. */
        log_warn(
            "component=router note=\"%s is taken; the proxy takes a free port instead (set DMS_PROXY_LISTEN "
            "to choose)\"",
            listen);
        port = 0;
    }
    if (port == 0) {
        /* Any free port; the one of our Caddy still running from an earlier dmsd if there is one, so that
         * URLs survive a dmsd restart. */
        port = running_port(r, host);
        if (!port)
            port = free_port();
        if (port <= 0) {
            router_stop(r);
            return dms_error_set(err, DMS_E_IO, "DMS_PROXY_LISTEN", "no free port on %s", host);
        }
    }
    r->port = (int)port;
    snprintf(r->listen, sizeof(r->listen), "%s:%d", host, r->port);
    /* Every route from the store, then Caddy with all of them. */
    char **ids = core_ids(c);
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; ids && ids[i]; i++) {
        droid *d = core_get_copy(c, ids[i]);
        route_spec spec;
        rentry *e = router_desired(d, r->wake_addr, &spec) ? find_or_add(r, ids[i]) : NULL;
        if (e) {
            e->spec = spec;
            e->dirty = true;
        }
        droid_free(d);
    }
    dms_strv_free(ids);
    try_start(r);
    pthread_mutex_unlock(&r->lock);
    router_access_poll(r, NULL,
                       NULL); /* positions the tail at the log's end; fn is not called at first look */
    if (pthread_create(&r->thread, NULL, supervise, r) != 0) {
        router_stop(r);
        return dms_error_set(err, DMS_E_IO, NULL, "cannot start the router's supervisor thread");
    }
    r->thread_started = true;
    *out = r;
    return 0;
}

void router_stop(router *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (r->thread_started)
        pthread_join(r->thread, NULL);
    if (r->caddy) {
        caddy_stop(r->caddy);
        caddy_free(r->caddy);
    }
    if (r->access.fd >= 0)
        close(r->access.fd);
    dms_buf_free(&r->access.partial);
    pthread_mutex_destroy(&r->access.lock);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r->e);
    free(r);
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
