/* router/caddycfg.h - the JSON that dmsd gives Caddy (https://caddyserver.com/docs/json/): one route per
 * droid, addressed by its "@id" so that it can be replaced or removed alone through the admin API (/id/<id>),
 * and the whole config a Caddy is started with.
 *
 *   {"@id": "dms-<droid id>", "match": [{"host": ["<name>.localhost"]}], "terminal": true, "handle": [...]}
 *
 * A route is one of three kinds:
 *   PROXY  reverse_proxy to the container's address on the droid network. During a swap the previous
 *          container is listed second under the "first" selection policy: it gets no new request, but Caddy
 *          keeps counting the requests still in flight to it (GET /reverse_proxy/upstreams), which is how
 *          dmsd drains it. An upstream that is in no config any more drops out of that list even while
 *          requests to it run.
 *   WAKE   reverse_proxy to dmsd's wake listener with the droid's id in the X-Dms-Wake header; the wake
 *          handler holds the request and splices its connection to the woken container.
 *   DOWN   a 503 with a short text: stopped, failed, starting, not built yet.
 * A droid without a route (deleted) falls through to the catch-all: 404 "no droid here".
 *
 * Pure functions; thread-safe.
 */
#ifndef DMSD_ROUTER_CADDYCFG_H
#define DMSD_ROUTER_CADDYCFG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "../droids/droid.h"

#define CADDY_SERVER_NAME     "dms"
#define CADDY_ADMIN_ORIGIN    "dms-admin" /* the Host dmsd sends to the admin API (the only one it allows) */
#define CADDY_ROUTE_ID_PREFIX "dms-"
#define CADDY_CATCHALL_ID     "dms-catchall"
#define CADDY_ACCESS_LOGGER   "dmsaccess" /* access entries are logged as http.log.access.dmsaccess */
#define CADDY_WAKE_HEADER     "X-Dms-Wake"
#define CADDY_HOST_SUFFIX     ".localhost"
#define CADDY_LOG_FILE        "caddy.log"
#define CADDY_ACCESS_LOG_FILE "access.log"
#define CADDY_LOG_ROLL_MB     10 /* caddy.log and access.log roll at this size; one old file is kept */
#define ROUTE_DIAL_MAX        64
#define ROUTE_HOST_MAX        (DROID_NAME_MAX + sizeof(CADDY_HOST_SUFFIX))
#define ROUTE_MESSAGE_MAX     160

typedef enum route_kind {
    ROUTE_PROXY = 1,
    ROUTE_WAKE = 2,
    ROUTE_DOWN = 3,
} route_kind;

typedef struct route_spec {
    route_kind kind;
    char droid_id[DROID_ID_SIZE];
    char host[ROUTE_HOST_MAX];       /* "<name>.localhost" */
    char dial[ROUTE_DIAL_MAX];       /* PROXY: the container "ip:port"; WAKE: the wake listener */
    char drain[ROUTE_DIAL_MAX];      /* an earlier upstream still finishing its requests, or "" */
    char message[ROUTE_MESSAGE_MAX]; /* DOWN: the text of the 503 */
} route_spec;

bool route_spec_equal(const route_spec *a, const route_spec *b);
const char *route_kind_name(route_kind k);

/* "dms-<droid id>" into buf. */
void caddycfg_route_id(const char *droid_id, char *buf, size_t size);

/* The route object of one droid. Caller owns; NULL on OOM. */
json_t *caddycfg_route(const route_spec *r);

/* The catch-all route (last): 404 for a host no droid has. Caller owns. */
json_t *caddycfg_catchall(void);

typedef struct caddycfg_base {
    const char *admin;     /* Caddy's admin listen address: "unix//path/admin.sock" or "127.0.0.1:2999" */
    const char *listen;    /* the proxy's listen address: "127.0.0.1:8000" */
    const char *state_dir; /* caddy.log, access.log and Caddy's storage go here */
} caddycfg_base;

/* The whole config: admin on b->admin (only Host CADDY_ADMIN_ORIGIN accepted, nothing persisted), logs to
 * files in state_dir (the access log, JSON, apart), one HTTP server on b->listen with automatic HTTPS off,
 * the routes in order, then the catch-all. Caller owns; NULL on OOM. */
json_t *caddycfg_full(const caddycfg_base *b, const route_spec *routes, size_t n);

#endif
