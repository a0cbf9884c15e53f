/* router/router.h - routes <name>.localhost to droids through a Caddy that dmsd runs and supervises.
 *
 * The router keeps one route per droid, as its state says (router_desired): its container while it runs,
 * dmsd's wake handler while it sleeps, a 503 while it is stopped, failed or not built yet, none once deleted.
 * Routes are changed one at a time through Caddy's admin API (PATCH /id/dms-<id>, PUT .../routes/0, DELETE
 * /id/...), never by restarting Caddy. At startup every route is rebuilt from the droids in the store and
 * Caddy is started (or an earlier one taken over) with them; a supervisor thread restarts Caddy if it dies
 * (with every route) and pushes routes that could not be programmed while it was away.
 *
 * Upstreams are the containers' addresses on the droid network ("172.18.0.5:8080"), not their published
 * 127.0.0.1 ports: on the bridge a connection is refused until the app listens (docker-proxy accepts on a
 * published port whether or not anything listens behind it, which would make every health check pass), and
 * there is no docker-proxy hop per request. The published port stays as the fallback for a run without an
 * address.
 *
 * Thread-safe: one lock serialises route changes and Caddy restarts (admin calls are local and take ~10 ms).
 */
#ifndef DMSD_ROUTER_ROUTER_H
#define DMSD_ROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>

#include "../core/core.h"
#include "caddycfg.h"

#define ROUTER_DEFAULT_LISTEN "127.0.0.1:8000"
#define ROUTER_TICK_MS        500   /* the supervisor checks Caddy and pushes pending routes this often */
#define ROUTER_RESTART_MAX_MS 30000 /* backoff cap between attempts to (re)start Caddy */
#define ROUTER_DRAIN_POLL_MS  25

typedef struct router router;

typedef struct router_config {
    const char *caddy_bin; /* DMS_CADDY_BIN (default "caddy") */
    const char
        *listen; /* DMS_PROXY_LISTEN: "127.0.0.1:8000"; port 0: a free one, kept while its Caddy lives */
    bool listen_default; /* listen is the default, not asked for: if its port is taken, a free one is used */
    const char *admin;   /* DMS_CADDY_ADMIN: NULL = the unix socket <state_dir>/admin.sock */
    const char *state_dir; /* $DMS_DATA_DIR/caddy */
    const char *wake_addr; /* dmsd's wake listener, "127.0.0.1:PORT" */
} router_config;

/* Builds every route from core, starts (or takes over) Caddy and the supervisor. A Caddy that will not start
 * is not fatal: the error is logged and the supervisor keeps trying with backoff. INVALID for a bad listen or
 * admin address. Caller owns *out; router_stop() frees it. */
int router_start(router **out, core *c, const router_config *cfg, dms_error *err);
/* Stops the supervisor and Caddy (SIGTERM; open connections get CADDY_STOP_GRACE_MS). Accepts NULL. */
void router_stop(router *r);

int router_port(const router *r); /* the proxy's port */
/* "http://<name>.localhost:<port>/" into buf. */
void router_url(const router *r, const char *name, char *buf, size_t size);
bool router_up(router *r); /* Caddy runs and holds our config */

/* The route a droid should have; false for none (NULL or being deleted). wake_addr: the wake listener. */
bool router_desired(const droid *d, const char *wake_addr, route_spec *out);

/* Programs the droid's route as its cached state says (router_desired), keeping a draining upstream listed
 * until router_release(). Nothing is sent to Caddy when the route is already so. UNAVAILABLE while Caddy is
 * down (the route is pushed once it is back). */
int router_sync(router *r, const char *droid_id, dms_error *err);
/* Routes the droid to new_addr and keeps old_addr (may be NULL) listed to drain it. */
int router_swap(router *r, const char *droid_id, const char *new_addr, const char *old_addr, dms_error *err);
/* Routes the droid to the wake handler and keeps old_addr (may be NULL) listed to drain it. */
int router_sleep(router *r, const char *droid_id, const char *old_addr, dms_error *err);
/* Drops the draining upstream and syncs. */
int router_release(router *r, const char *droid_id, dms_error *err);

/* Waits until Caddy has no request in flight to addr, at most timeout_ms; an address Caddy does not list has
 * none. Returns the ms waited, or -1 if requests were still in flight at the deadline. */
int64_t router_drain(router *r, const char *addr, int64_t timeout_ms);

typedef struct router_upstream {
    char addr[ROUTE_DIAL_MAX];
    int num_requests; /* requests in flight through Caddy to it now */
} router_upstream;
/* GET /reverse_proxy/upstreams. Caller frees *out. */
int router_upstreams(router *r, router_upstream **out, size_t *n, dms_error *err);

/* Calls fn for every request Caddy finished since the previous call (from its access log): the Host without
 * port, lower case, and the end time. Health checks never appear here: they do not go through Caddy. */
typedef void (*router_access_fn)(void *ud, const char *host, int64_t end_ns);
void router_access_poll(router *r, router_access_fn fn, void *ud);

#endif
