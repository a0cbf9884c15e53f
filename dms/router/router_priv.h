/* router/router_priv.h - the router's state, shared by router.c (the route table, swaps and drains) and
 * supervise.c (Caddy's (re)start and supervisor thread, the router's start and stop). Private to router/.
 *
 * Lock order: r->lock, then core's cache lock (core_get_copy). Nothing that holds a core lock calls in here.
 */
#ifndef DMSD_ROUTER_ROUTER_PRIV_H
#define DMSD_ROUTER_ROUTER_PRIV_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>

#include "accesslog.h"
#include "caddy.h"
#include "router.h"

typedef struct rentry {
    char id[DROID_ID_SIZE];
    route_spec spec;            /* what Caddy should have */
    char drain[ROUTE_DIAL_MAX]; /* an upstream kept listed while it drains (router_swap/router_sleep) */
    bool in_caddy;              /* Caddy has a route with this @id */
    bool dirty;                 /* spec is not programmed yet */
    bool gone;                  /* the droid has no route any more: delete it */
} rentry;

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

/* Under r->lock: the entry of a droid, added (not yet in Caddy) if there was none; NULL on OOM. */
rentry *router_find_or_add(router *r, const char *id);
/* Under r->lock: programs one entry in Caddy (UNAVAILABLE while Caddy is down); a gone entry is deleted, and
 * removed from the table. */
int router_apply(router *r, rentry *e, dms_error *err);

#endif
