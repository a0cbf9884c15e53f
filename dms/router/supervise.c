/* supervise.c - the router's life (see router.h): its start (the proxy's port, every route from the store,
 * Caddy started or taken over), the supervisor thread that restarts Caddy when it dies and pushes the routes
 * it missed, and its stop. The route table itself is router.c's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "caddy.h"
#include "router.h"
#include "router_priv.h"

#define ROUTER_RESTART_MIN_MS 500

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
    r->next_start_ms = dms_mono_ms() + r->backoff_ms;
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
            if (dms_mono_ms() >= r->next_start_ms)
                try_start(r);
            continue;
        }
        for (size_t i = 0; i < r->n; i++) {
            if (!r->e[i].dirty)
                continue;
            dms_error err = {0};
            rentry *e = &r->e[i];
            bool gone = e->gone;
            if (router_apply(r, e, &err) < 0)
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
    (void)fclose(f);
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
    dmsu_buf resp = {0};
    int port = 0;
    if (caddy_admin(r->caddy, "GET", "/config/apps/http/servers/" CADDY_SERVER_NAME "/listen", NULL, &status,
                    &resp, NULL) == 0 &&
        status == 200) {
        json_t *j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
        const char *a = json_string_value(json_array_get(j, 0));
        const char *colon = a ? strrchr(a, ':') : NULL;
        int64_t p = colon && (size_t)(colon - a) == strlen(host) && strncmp(a, host, strlen(host)) == 0
                        ? dmsu_parse_i64(colon + 1)
                        : -1;
        if (p > 0 && p <= 65535)
            port = (int)p;
        json_decref(j);
    }
    dmsu_buf_free(&resp);
    return port;
}

int router_start(router **out, core *c, const router_config *cfg, dms_error *err)
{
    const char *listen = cfg->listen && *cfg->listen ? cfg->listen : ROUTER_DEFAULT_LISTEN;
    const char *colon = strrchr(listen, ':');
    int64_t port = colon ? dmsu_parse_i64(colon + 1) : -1;
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
    access_tail_init(&r->access);
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
        rentry *e = router_desired(d, r->wake_addr, &spec) ? router_find_or_add(r, ids[i]) : NULL;
        if (e) {
            e->spec = spec;
            e->dirty = true;
        }
        droid_free(d);
    }
    dmsu_strv_free(ids);
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
    access_tail_destroy(&r->access);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r->e);
    free(r);
}
